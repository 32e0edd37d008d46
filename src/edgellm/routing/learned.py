"""The learned routers under their old module path, for saved routers only.

A router saved with ``save`` is a joblib pickle, and a pickle names each class by its
module path: routers saved before the learned routers moved into their own modules
(edgellm.routing.tfidf, .metadata, .embedding, .bert, .cascade) refer to
``edgellm.routing.learned.TfidfRouter`` and so on, and their fitted state to
``edgellm.routing.learned._MetadataFeatures`` and ``_CorrectnessModel``. This module
keeps those paths loadable. New code imports from the modules themselves; nothing in
edgellm imports this one.
"""

from edgellm.routing.bert import BERTRouter
from edgellm.routing.cascade import CascadeRouter
from edgellm.routing.embedding import EmbeddingKnnRouter, EmbeddingRouter
from edgellm.routing.features import _CorrectnessModel, _MetadataFeatures
from edgellm.routing.metadata import MetadataRouter
from edgellm.routing.scoring import ScoringRouter
from edgellm.routing.tfidf import TfidfRouter

__all__ = ["BERTRouter", "CascadeRouter", "EmbeddingKnnRouter", "EmbeddingRouter",
           "MetadataRouter", "ScoringRouter", "TfidfRouter", "_CorrectnessModel",
           "_MetadataFeatures"]
