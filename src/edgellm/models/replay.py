"""The replay backend: answers from the response store only, never from a model.

It is how recorded runs, Ianvs cache.json files and routing studies' outcome
matrices are replayed (``edgellm import`` brings the latter two in). In the
algorithm yaml: ``backend: replay``, ``model: <the identity the responses were
stored under>`` and the sampling settings they were recorded with.
"""

import os

from edgellm.models.chat import ChatBackend
from edgellm.models.store import store_path


class ReplayLLM(ChatBackend):
    """Hyperparameters: those of ``ChatBackend`` (``store_mode`` is always replay),
    plus ``output_settings``: the options the recording backend added to the store
    key (its ``output_settings()``, e.g. ``{dtype: bfloat16}``), so that they match.
    Other hyperparameters (a recording backend's device, API address...) are ignored:
    they do not change outputs."""

    backend_name = "replay"

    def __init__(self, model, store_mode=None, output_settings=None, **params):
        super().__init__(model, store_mode="replay", **params)
        self._output_settings = dict(output_settings or {})

    def output_settings(self):
        return dict(self._output_settings)

    def complete(self, messages):
        # generate_batch raises the store's replay-miss error before getting here
        raise RuntimeError("the replay backend answers from the response store only")

    @staticmethod
    def check(params):
        """A replay needs a store; one named up front (hyperparameter ``store`` or env
        EDGELLM_STORE) must exist. The workspace default is checked when the case runs."""
        mode = params.get("store_mode")
        if mode not in (None, "replay"):
            raise ValueError(f"the replay backend only replays: store_mode {mode!r} is "
                             "not possible (use the recording backend for auto or record)")
        store = params.get("store")
        if str(store or "").lower() == "none":
            raise ValueError("the replay backend needs a response store: store 'none' "
                             "turns it off")
        named = store or os.environ.get("EDGELLM_STORE")
        if named and not os.path.isfile(store_path(named)):
            raise ValueError(f"no response store at {store_path(named)}: record a run or "
                             "'edgellm import' responses there first")
