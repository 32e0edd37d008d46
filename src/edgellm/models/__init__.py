"""LLM backends, looked up by the ``backend`` hyperparameter."""

import importlib

# name -> "module:class"; imported only when used, so optional extras stay optional.
BACKENDS = {
    "simulated": "edgellm.models.simulated:SimulatedLLM",
}


def create_backend(name, **params):
    """Instantiate backend ``name`` with the module's hyperparameters."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**params)
