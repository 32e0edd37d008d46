"""Routers (Ianvs: hard example mining). True from a router means: send to the cloud.
Every router of edgellm.routing.ROUTERS is registered here under its alias.

The learned routers (docs/routers.md) fit themselves on first use from an outcome
matrix (hyperparameters train_outcomes, edge_model, cloud_model, label, split,
split_seed) or load a saved one (model_path); CascadeRouter runs in
hard_example_mining_mode inference-then-mining."""
from edgellm.registry import ClassFactory, ClassType
from edgellm.routing import ROUTERS

for _alias in ROUTERS:
    ClassFactory.register_cls(ROUTERS.get(_alias), ClassType.HEM, alias=_alias)
