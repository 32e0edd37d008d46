"""Routers (Ianvs: hard example mining). True from a router means: send to the cloud.

The learned routers (docs/routers.md) fit themselves on first use from an outcome
matrix (hyperparameters train_outcomes, edge_model, cloud_model, label, split,
split_seed) or load a saved one (model_path); CascadeRouter runs in
hard_example_mining_mode inference-then-mining."""
from edgellm.registry import ClassFactory, ClassType
from edgellm.routing.learned import (BERTRouter, CascadeRouter, EmbeddingKnnRouter,
                                     EmbeddingRouter, MetadataRouter, TfidfRouter)
from edgellm.routing.baselines import CloudOnly, EdgeOnly, OracleRouter, RandomRouter

for _router in (EdgeOnly, CloudOnly, RandomRouter, OracleRouter, TfidfRouter, EmbeddingRouter,
                EmbeddingKnnRouter, MetadataRouter, BERTRouter, CascadeRouter):
    ClassFactory.register_cls(_router, ClassType.HEM, alias=_router.__name__)
