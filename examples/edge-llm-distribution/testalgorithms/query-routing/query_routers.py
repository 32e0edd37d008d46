"""Routers (Ianvs: hard example mining). True from a router means: send to the cloud."""
from edgellm.registry import ClassFactory, ClassType
from edgellm.routing.routers import CloudOnly, EdgeOnly, OracleRouter, RandomRouter

for _router in (EdgeOnly, CloudOnly, RandomRouter, OracleRouter):
    ClassFactory.register_cls(_router, ClassType.HEM, alias=_router.__name__)
