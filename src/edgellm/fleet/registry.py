"""Offloaders and caching policies, looked up by the alias a grid names them by."""

import inspect


class PolicyRegistry:
    """alias -> class; ``create`` passes each class only the settings it takes (a grid
    holds every part's hyperparameters side by side)."""

    def __init__(self, what):
        self.what = what
        self.classes = {}

    def register(self, alias):
        """Class decorator: make a class selectable by its alias."""
        def wrapper(cls):
            self.classes[alias] = cls
            return cls
        return wrapper

    def create(self, alias, **params):
        if alias not in self.classes:
            raise ValueError(f"unknown {self.what} {alias!r} "
                             f"(available: {', '.join(self.classes)})")
        cls = self.classes[alias]
        return cls(**accepted_params(cls, params))


def accepted_params(cls, params):
    """The subset of ``params`` that ``cls.__init__`` takes."""
    if cls.__init__ is object.__init__:
        return {}
    signature = inspect.signature(cls.__init__)
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in signature.parameters}
