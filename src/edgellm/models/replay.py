"""The replay backend: answers from the response store only, never from a model.

It is how recorded runs, Ianvs cache.json files and routing studies' outcome
matrices are replayed (``edgellm import`` brings the latter two in). In the
algorithm yaml: ``backend: replay``, ``model: <the identity the responses were
stored under>`` and the sampling settings they were recorded with.
"""

import os

from edgellm.context import current_context
from edgellm.models import BACKENDS
from edgellm.models.chat import ChatBackend, messages_for
from edgellm.models.pricing import price_for
from edgellm.models.setting_kinds import MAPPING, TEXT
from edgellm.models.store import store_path
from edgellm.records import COUNTERPART
from edgellm.registry import accepted_settings, check_settings
from edgellm.tasks.extraction import extract_prediction

OTHER_TIER = {"edge": "cloud", "cloud": "edge"}


class ReplayLLM(ChatBackend):
    """Hyperparameters: those of ``ChatBackend`` (``store_mode`` is always replay),
    plus ``output_settings``: the options the recording backend added to the store
    key (its ``output_settings()``, e.g. ``{dtype: bfloat16}``), so that they match;
    and ``counterpart_model``: the other tier's model in the same store (the cloud
    model, for the edge module). Each replayed response then also carries that
    model's recorded outcome of the same item as ``counterpart`` (``model``, ``tier``,
    ``score`` or ``prediction``, ``cost_usd``, ``e2e_latency``, ``error``), looked
    up as its own replay would look it up: the routing-curve metrics (APGR, CPT,
    AIQ; edgellm.metrics.routing) need both models' outcomes of every query. It is
    for evaluation only: a router must not read it (the CascadeRouter does not).
    Items the store has no counterpart for get none (those metrics are then NaN).
    The settings of the other backends (a recording backend's device, API address...)
    are accepted and ignored, so that a recorded algorithm replays by changing its
    ``backend`` only: they do not change outputs. A name no backend takes is an error."""

    backend_name = "replay"
    SETTING_KINDS = {"output_settings": MAPPING, "counterpart_model": TEXT}

    def __init__(self, model, store_mode=None, output_settings=None, counterpart_model=None,
                 **params):
        check_settings(type(self), params, owner="backend 'replay'")
        own = accepted_settings(ChatBackend)
        super().__init__(model, store_mode="replay",
                         **{k: v for k, v in params.items() if k in own})
        self._output_settings = dict(output_settings or {})
        self.counterpart_model = str(counterpart_model) if counterpart_model else None
        if self.counterpart_model == self.identity:
            raise ValueError(f"counterpart_model is the replayed model itself "
                             f"({self.identity!r}): name the other tier's model")
        self._counterpart_price = None

    @classmethod
    def extra_settings(cls):
        """Every other backend's settings: accepted, and ignored."""
        return [name for backend in BACKENDS if backend != cls.backend_name
                for name in accepted_settings(BACKENDS.get(backend))]

    def output_settings(self):
        return dict(self._output_settings)

    def complete(self, messages):
        # generate_batch raises the store's replay-miss error before getting here
        raise RuntimeError("the replay backend answers from the response store only")

    def generate_batch(self, samples):
        samples = list(samples)
        responses = super().generate_batch(samples)
        if self.counterpart_model and responses:
            messages = [messages_for(s, self.system_prompt) for s in samples]
            found = self.store.lookup(self.counterpart_model, self.store_settings(), messages,
                                      samples)
            for sample, response, record in zip(samples, responses, found):
                if record is not None:
                    response[COUNTERPART] = self._counterpart(sample, record)
        return responses

    def _counterpart(self, sample, record):
        """The outcome of the other model's stored record, as the metrics read it."""
        task_type = sample.get("task_type") or "multiple_choice"
        prediction = record.get("prediction")
        completion = record.get("completion")
        if completion is not None and (prediction is None
                                       or record.get("task_type") != task_type):
            prediction = extract_prediction(sample, completion)
        usage = record.get("usage") or {}
        perf = record.get("perf") or {}
        cost = record.get("cost_usd")
        if not record.get("cost_recorded"):
            if self._counterpart_price is None:
                self._counterpart_price = price_for(self.counterpart_model)
            cost = self._counterpart_price.cost(usage.get("prompt_tokens", 0),
                                                usage.get("completion_tokens", 0),
                                                perf.get("e2e_latency"))
        return {"model": self.counterpart_model, "tier": OTHER_TIER.get(self.tier),
                "score": record.get("score"), "prediction": prediction,
                "cost_usd": float(cost or 0.0), "e2e_latency": perf.get("e2e_latency"),
                "error": record.get("error"), "task_type": task_type}

    @staticmethod
    def check(params):
        """A replay needs a store; one named up front (hyperparameter ``store`` or the
        run's, ``edgellm run --store``) must exist. The workspace default is checked
        when the case runs."""
        mode = params.get("store_mode")
        if mode not in (None, "replay"):
            raise ValueError(f"the replay backend only replays: store_mode {mode!r} is "
                             "not possible (use the recording backend for auto or record)")
        store = params.get("store")
        if str(store or "").lower() == "none":
            raise ValueError("the replay backend needs a response store: store 'none' "
                             "turns it off")
        named = store or current_context().store_path
        if named and not os.path.isfile(store_path(named)):
            raise ValueError(f"no response store at {store_path(named)}: record a run or "
                             "'edgellm import' responses there first")
