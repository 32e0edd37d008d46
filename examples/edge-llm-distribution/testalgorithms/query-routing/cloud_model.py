"""Cloud model module: hyperparameter `backend` picks the backend, the rest configure it."""
from edgellm.models.tiers import CloudModel
from edgellm.registry import ClassFactory, ClassType

ClassFactory.register_cls(CloudModel, ClassType.GENERAL, alias="CloudModel")
