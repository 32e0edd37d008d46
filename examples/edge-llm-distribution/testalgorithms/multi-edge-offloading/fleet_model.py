"""Edge model module: the fleet of edge nodes (offloading, model caching, timeline)."""
import os

from edgellm.fleet.module import FleetEdgeModel
from edgellm.registry import ClassFactory, ClassType

# For sedna under real Ianvs (see query-routing/edge_model.py): no tensorflow backend,
# and an existing file as `model_path`, without which its JointInference does not start.
os.environ.setdefault("BACKEND_TYPE", "UNKNOWN")
os.environ["model_path"] = os.path.abspath(__file__)

ClassFactory.register_cls(FleetEdgeModel, ClassType.GENERAL, alias="FleetEdgeModel")
