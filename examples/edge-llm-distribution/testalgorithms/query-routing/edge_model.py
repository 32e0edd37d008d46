"""Edge model module: hyperparameter `backend` picks the backend, the rest configure it."""
from edgellm.models.tiers import EdgeModel
from edgellm.registry import ClassFactory, ClassType

ClassFactory.register_cls(EdgeModel, ClassType.GENERAL, alias="EdgeModel")
