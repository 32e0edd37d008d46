"""The edge and cloud model modules Ianvs' joint inference calls.

sedna calls ``edgemodel.predict(data, **kw)`` and ``cloudmodel.inference(data, **kw)``;
``edgellm run`` also uses the ``*_batch`` methods to answer a chunk at once, with
the same results.
"""

import os

from edgellm.records import ROUTER_SCORE
from edgellm.models import create_backend


def with_router_scores(samples, responses):
    """The responses, each carrying its sample's ``router_score`` where the router
    wrote one (edgellm.routing.routers.note_scores): the routing-curve metrics read
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

    def __init__(self, backend="simulated", **params):
        super().__init__(backend, **params)
        # sedna's JointInference refuses to start unless env `model_path` names an
        # existing file or a hub-style "org/name"; point it at a file that exists
        # (this one) when the model is not a local path, as Ianvs' example does.
        model = str(params.get("model", ""))
        os.environ["model_path"] = model if os.path.exists(model) else os.path.abspath(__file__)

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
