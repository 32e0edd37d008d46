"""Edge-vs-cloud routers (Ianvs: hard example mining). ``__call__(x) -> bool``,
True meaning hard, i.e. send to the cloud.

``ROUTERS`` names every shipped router, each entry lazy (``"module:Class"``), so that
importing this package loads none of them. A new router goes in a module of its own
here and gets a line below (docs/routers.md, "Where a new router goes").
"""

from edgellm.registry import Registry

ROUTERS = Registry("router")
ROUTERS.register("EdgeOnly", "edgellm.routing.baselines:EdgeOnly")
ROUTERS.register("CloudOnly", "edgellm.routing.baselines:CloudOnly")
ROUTERS.register("RandomRouter", "edgellm.routing.baselines:RandomRouter")
ROUTERS.register("OracleRouter", "edgellm.routing.baselines:OracleRouter")
ROUTERS.register("TfidfRouter", "edgellm.routing.tfidf:TfidfRouter")
ROUTERS.register("MetadataRouter", "edgellm.routing.metadata:MetadataRouter")
ROUTERS.register("EmbeddingRouter", "edgellm.routing.embedding:EmbeddingRouter")
ROUTERS.register("EmbeddingKnnRouter", "edgellm.routing.embedding:EmbeddingKnnRouter")
ROUTERS.register("BERTRouter", "edgellm.routing.bert:BERTRouter")
ROUTERS.register("CascadeRouter", "edgellm.routing.cascade:CascadeRouter")
ROUTERS.register("AutoRouter", "edgellm.routing.auto:AutoRouter")
