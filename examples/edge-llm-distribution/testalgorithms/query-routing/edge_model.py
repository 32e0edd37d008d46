"""Edge model module: hyperparameter `backend` picks the backend, the rest configure it."""
import os

from edgellm.models.tiers import EdgeModel
from edgellm.registry import ClassFactory, ClassType

# For sedna under real Ianvs, as Ianvs' own LLM example sets them: its default backend
# would import tensorflow, and its JointInference starts only when env `model_path`
# names an existing file (it passes it to EdgeModel.load, which loads lazily anyway).
os.environ.setdefault("BACKEND_TYPE", "UNKNOWN")
os.environ["model_path"] = os.path.abspath(__file__)

ClassFactory.register_cls(EdgeModel, ClassType.GENERAL, alias="EdgeModel")
