"""The baseline routers: every query to one tier, a seeded coin, and the oracle that
knows both answers. The curves of a learned router are drawn between them."""

import logging
import random

from edgellm.models.tiers import answer_all
from edgellm.records import response_score
from edgellm.routing.base import Router, note_scores

LOG = logging.getLogger(__name__)


class EdgeOnly(Router):
    """Every query to the edge model."""

    def __call__(self, data=None):
        return False

    def route_batch(self, samples):
        return [False] * len(samples)


class CloudOnly(Router):
    """Every query to the cloud model."""

    def __call__(self, data=None):
        return True

    def route_batch(self, samples):
        return [True] * len(samples)


class RandomRouter(Router):
    """Sends each query to the cloud with probability ``cloud_probability``, from a
    generator seeded by ``seed``. Ianvs' RandomRouter calls its parameter
    ``threshold`` and means the *edge* probability; it is accepted as such.

    Its score per query is 1 - u, u the uniform draw (cloud when u <
    ``cloud_probability``, i.e. when the score exceeds 1 - ``cloud_probability``):
    written on the sample (``note_scores``) so that a test case's APGR is that of a
    random router, about 0.5."""

    def __init__(self, cloud_probability=None, seed=0, threshold=None, **kwargs):
        super().__init__(**kwargs)
        if cloud_probability is not None and threshold is not None:
            raise ValueError("give RandomRouter either cloud_probability or threshold, not both")
        if cloud_probability is None:
            cloud_probability = 0.5 if threshold is None else 1.0 - float(threshold)
        if not 0.0 <= float(cloud_probability) <= 1.0:
            raise ValueError(f"cloud_probability must be in [0, 1], got {cloud_probability}")
        self.cloud_probability = float(cloud_probability)
        self.seed = seed
        self._rng = random.Random(seed)

    def __call__(self, data=None):
        draw = self._rng.random()
        note_scores([data], [1.0 - draw])
        return draw < self.cloud_probability


class OracleRouter(Router):
    """Knows both answers: the cloud only when its answer scores higher than the
    edge's (for multiple choice and labels: the edge is wrong and the cloud right;
    for generated text: item scores as in edgellm.tasks.scoring). Ties stay on the
    edge, the cheaper tier.

    Ianvs injects ``edgemodel`` and ``cloudmodel`` into a router named exactly
    ``OracleRouter``; it needs samples with ``gold``, so mining-then-inference."""

    def __init__(self, edgemodel=None, cloudmodel=None, **kwargs):
        super().__init__(**kwargs)
        if edgemodel is None or cloudmodel is None:
            raise ValueError("OracleRouter needs the edge and cloud models; register it "
                             "under the alias 'OracleRouter' so Ianvs injects them")
        self.edge_model, self.cloud_model = edgemodel, cloudmodel
        self.counts = {"both_right": 0, "both_wrong": 0, "edge_better": 0, "cloud_better": 0,
                       "tie": 0}

    @classmethod
    def check_config(cls, params, source):
        # the runner injects the two models, as Ianvs does
        cls(**dict(params, edgemodel=object(), cloudmodel=object()))
        return True

    def _decide(self, sample, edge, cloud):
        if not isinstance(sample, dict) or "gold" not in sample:
            raise ValueError("OracleRouter needs samples with 'gold' (mining-then-inference "
                             "mode and a dataset processor that keeps the answer)")
        edge_score, cloud_score = response_score(sample, edge), response_score(sample, cloud)
        key = ("cloud_better" if cloud_score > edge_score else
               "edge_better" if edge_score > cloud_score else
               "both_right" if edge_score >= 1.0 else "both_wrong" if edge_score <= 0.0
               else "tie")
        self.counts[key] += 1
        return key == "cloud_better"

    def __call__(self, data=None):
        return self._decide(data, self.edge_model.predict(data), self.cloud_model.inference(data))

    def route_batch(self, samples):
        edge = answer_all(self.edge_model, "edge", samples)
        cloud = answer_all(self.cloud_model, "cloud", samples)
        return [self._decide(s, e, c) for s, e, c in zip(samples, edge, cloud)]

    def cleanup(self):
        LOG.info("OracleRouter: %s", ", ".join(f"{k}={v}" for k, v in self.counts.items()))

