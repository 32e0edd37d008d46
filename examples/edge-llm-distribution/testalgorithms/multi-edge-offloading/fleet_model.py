"""Edge model module: the fleet of edge nodes (offloading, model caching, timeline)."""
from edgellm.fleet.module import FleetEdgeModel
from edgellm.registry import ClassFactory, ClassType

ClassFactory.register_cls(FleetEdgeModel, ClassType.GENERAL, alias="FleetEdgeModel")
