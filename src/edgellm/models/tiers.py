"""The edge and cloud model modules Ianvs' joint inference calls.

sedna calls ``edgemodel.predict(data, **kw)`` and ``cloudmodel.inference(data, **kw)``;
``edgellm run`` also uses the ``*_batch`` methods to answer a chunk at once, with
the same results.
"""

from edgellm.models import BACKENDS, check_backend, create_backend
from edgellm.records import ROUTER_SCORE
from edgellm.registry import SettingError


def with_router_scores(samples, responses):
    """The responses, each carrying its sample's ``router_score`` where the router
    wrote one (edgellm.routing.base.note_scores): the routing-curve metrics read
    it from the results. A response is copied before the key is added."""
    out = []
    for sample, response in zip(samples, responses):
        if isinstance(sample, dict) and ROUTER_SCORE in sample and isinstance(response, dict):
            response = dict(response, **{ROUTER_SCORE: sample[ROUTER_SCORE]})
        out.append(response)
    return out


class TierModel:
    """A backend serving one tier. Hyperparameters other than ``backend`` go to it."""

    tier = "edge"

    @classmethod
    def check_config(cls, params, source=None):
        """Before the first test case: the backend exists and takes these settings
        (edgellm.models.check_backend). True when it is simulated (no real model)."""
        params = dict(params)
        name = params.pop("backend", "simulated")
        if name not in BACKENDS:
            raise SettingError(cls.__name__, "backend", BACKENDS.unknown_message(name))
        check_backend(name, params)
        return name == "simulated"

    def __init__(self, backend="simulated", **params):
        self.backend = backend
        self.params = params
        self._llm = None

    @property
    def llm(self):
        if self._llm is None:  # lazy: sedna calls load() only in some set-ups
            self._llm = create_backend(self.backend, tier=self.tier, **self.params)
        return self._llm

    @property
    def simulated(self):
        return bool(getattr(self.llm, "simulated", False))

    def load(self, **kwargs):
        return self.llm

    def generate_batch(self, samples):
        samples = list(samples)
        return with_router_scores(samples, self.llm.generate_batch(samples))

    def generate(self, sample):
        return with_router_scores([sample], [self.llm.generate(sample)])[0]

    def cleanup(self):
        close = getattr(self._llm, "close", None)
        if callable(close):
            close()
        self._llm = None


class EdgeModel(TierModel):
    tier = "edge"

    def predict(self, data, **kwargs):
        return self.generate(data)

    predict_batch = TierModel.generate_batch


class CloudModel(TierModel):
    tier = "cloud"

    def inference(self, data, **kwargs):
        return self.generate(data)

    inference_batch = TierModel.generate_batch


# The call sedna makes per sample, and the batch method that answers many at once.
_CALLS = {"edge": ("predict_batch", "predict"), "cloud": ("inference_batch", "inference")}


def answer_all(module, tier, samples, **kwargs):
    """Responses of an edge or cloud module to ``samples``, in one batch call when the
    module has one, else sample by sample as sedna calls it (with ``kwargs``)."""
    batch_name, single_name = _CALLS[tier]
    batch = getattr(module, batch_name, None)
    if callable(batch):
        return batch(samples)
    single = getattr(module, single_name)
    return [single(s, **kwargs) for s in samples]
