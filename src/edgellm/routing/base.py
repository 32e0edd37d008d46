"""What sedna calls: a ``Router`` answers per query (``__call__(sample) -> bool``, True
meaning hard, i.e. send to the cloud) and per chunk (``route_batch``, used by
``edgellm run``) with the same decisions. ``note_scores`` writes a router's scores
where the routing-curve metrics find them."""

import os

from edgellm.records import ROUTER_SCORE
from edgellm.registry import check_settings


def note_scores(samples, scores):
    """Write each router score on its sample dict (``router_score``), where the edge
    or cloud module copies it onto the response, so that the routing-curve metrics
    (edgellm.metrics.routing) can sweep the router's threshold over a test case's
    results. sedna hands the router and then the model the same sample object.
    Samples that are not dicts (a raw query string) are left alone."""
    for sample, score in zip(samples, scores):
        if isinstance(sample, dict):
            sample[ROUTER_SCORE] = float(score)


class Router:
    """Base: a router decides per sample; subclasses override ``__call__``. Its
    settings are the keyword parameters of the ``__init__`` methods along its class
    tree (edgellm.registry.accepted_settings); any other is an ``UnknownSetting``:
    misspelt, it would be ignored silently. Subclasses pass the keyword arguments
    they do not take on to this ``__init__``."""

    FILE_SETTINGS = ()  # settings that name a file which must be there

    def __init__(self, **unknown):
        if unknown:
            check_settings(type(self), sorted(unknown))

    @classmethod
    def check_config(cls, params, source):
        """``edgellm run`` calls this before the first test case, so that a bad setting
        is one line naming the job's file, not a failed case: the router is built
        (``_check_settings``) and the files its ``FILE_SETTINGS`` name must be there.
        True: a router runs no model backend."""
        router = cls(**params)
        router._check_settings()
        for setting in cls.FILE_SETTINGS:
            path = getattr(router, setting)
            if path and not os.path.isfile(os.fspath(path)):
                raise ValueError(f"{cls.__name__}: {setting} {path}: file not found")
        return True

    def _check_settings(self):
        """Checks of the settings beyond what ``__init__`` does (none here)."""

    def __call__(self, data=None):
        raise NotImplementedError

    def route_batch(self, samples):
        return [self(s) for s in samples]
