"""LLM backends, looked up by the ``backend`` hyperparameter of an edge or cloud model."""

from edgellm.models.setting_kinds import check_kinds
from edgellm.registry import Registry, SettingError, check_settings

# Lazy entries: a backend's module (and its optional extra) is imported only when used.
BACKENDS = Registry("backend")
for _name, _target in (("simulated", "edgellm.models.simulated:SimulatedLLM"),
                       ("huggingface", "edgellm.models.huggingface:HuggingFaceLLM"),
                       ("vllm", "edgellm.models.vllm_backend:VLLMBackend"),
                       ("openai", "edgellm.models.openai_compatible:OpenAICompatibleLLM"),
                       ("replay", "edgellm.models.replay:ReplayLLM")):
    BACKENDS.register(_name, _target)


def check_backend(name, params):
    """Raise ValueError when backend ``name`` cannot run with ``params``: an unknown
    setting (``UnknownSetting``), a setting of the wrong kind (``seed: "abc"``:
    edgellm.models.setting_kinds), then the backend's own ``check``: a missing API
    key, vLLM or GPU missing, no such model folder. Called before any test case
    runs, so a run never fails midway on what could be known at the start."""
    cls = BACKENDS.get(name)
    check_settings(cls, params, owner=f"backend {name!r}")
    check_kinds(cls, params, owner=f"backend {name!r}")
    check = getattr(cls, "check", None)
    if callable(check):
        try:
            check(dict(params))
        except SettingError:
            raise
        except ValueError as err:
            raise ValueError(f"backend {name!r}: {err}") from None


def create_backend(name, **params):
    """Instantiate backend ``name`` with the module's hyperparameters."""
    return BACKENDS.create(name, **params)
