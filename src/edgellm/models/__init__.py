"""LLM backends, looked up by the ``backend`` hyperparameter."""

import importlib

# name -> "module:class"; imported only when used, so optional extras stay optional.
BACKENDS = {
    "simulated": "edgellm.models.simulated:SimulatedLLM",
    "huggingface": "edgellm.models.huggingface:HuggingFaceLLM",
    "vllm": "edgellm.models.vllm_backend:VLLMBackend",
    "openai": "edgellm.models.openai_compatible:OpenAICompatibleLLM",
    "replay": "edgellm.models.replay:ReplayLLM",
}


def backend_class(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def check_backend(name, params):
    """Raise ValueError when backend ``name`` cannot run with ``params`` (a missing API
    key, vLLM or GPU missing, no such model folder): called before any test case runs,
    so a run never fails midway on what could be known at the start."""
    check = getattr(backend_class(name), "check", None)
    if callable(check):
        check(dict(params))


def create_backend(name, **params):
    """Instantiate backend ``name`` with the module's hyperparameters."""
    return backend_class(name)(**params)
