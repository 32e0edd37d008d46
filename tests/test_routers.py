import importlib.util
import subprocess
import sys

import pytest

from conftest import EXAMPLE, sample
from edgellm.models.tiers import CloudModel, EdgeModel
from edgellm.registry import ClassFactory, ClassType
from edgellm.routing import ROUTERS
from edgellm.routing.base import Router
from edgellm.routing.baselines import CloudOnly, EdgeOnly, OracleRouter, RandomRouter


def test_fixed_routers():
    data = [sample(i) for i in range(5)]
    assert EdgeOnly()(data[0]) is False and EdgeOnly().route_batch(data) == [False] * 5
    assert CloudOnly()(data[0]) is True and CloudOnly().route_batch(data) == [True] * 5


def test_random_router_is_seeded_and_batch_matches_per_call():
    data = [sample(i) for i in range(4000)]
    per_call = [RandomRouter(cloud_probability=0.3, seed=5)(s) for s in data[:1]]
    r = RandomRouter(cloud_probability=0.3, seed=5)
    sequential = [r(s) for s in data]
    assert per_call[0] == sequential[0]
    assert RandomRouter(cloud_probability=0.3, seed=5).route_batch(data) == sequential
    assert RandomRouter(cloud_probability=0.3, seed=6).route_batch(data) != sequential
    assert abs(sum(sequential) / len(data) - 0.3) < 0.03


def test_random_router_accepts_ianvs_threshold_as_edge_probability():
    assert RandomRouter(threshold=0.8).cloud_probability == pytest.approx(0.2)
    with pytest.raises(ValueError, match="either"):
        RandomRouter(threshold=0.8, cloud_probability=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RandomRouter(cloud_probability=1.5)


class FixedModel:
    """Answers with a fixed letter per item id."""

    def __init__(self, letters):
        self.letters = letters

    def predict(self, data, **kw):
        return {"prediction": self.letters[data["id"]]}

    inference = predict


def test_oracle_goes_to_cloud_only_when_edge_wrong_and_cloud_right():
    # gold A everywhere; (edge, cloud): right/right, wrong/wrong, right/wrong, wrong/right
    data = [sample(i, gold="A") for i in range(4)]
    oracle = OracleRouter(edgemodel=FixedModel("ABAB"), cloudmodel=FixedModel("ACCA"))
    assert oracle.route_batch(data) == [False, False, False, True]
    assert oracle.counts == {"both_right": 1, "both_wrong": 1, "edge_better": 1,
                             "cloud_better": 1, "tie": 0}
    again = OracleRouter(edgemodel=FixedModel("ABAB"), cloudmodel=FixedModel("ACCA"))
    assert [again(s) for s in data] == [False, False, False, True]


def test_oracle_needs_models_and_gold():
    with pytest.raises(ValueError, match="needs the edge and cloud models"):
        OracleRouter()
    oracle = OracleRouter(edgemodel=FixedModel("A"), cloudmodel=FixedModel("A"))
    with pytest.raises(ValueError, match="gold"):
        oracle({"id": 0, "query": "q"})


def test_oracle_with_simulated_models_reaches_union_accuracy():
    data = [sample(i, gold="ABCD"[i % 4]) for i in range(3000)]
    edge = EdgeModel(model="Qwen/Qwen2.5-1.5B-Instruct")
    cloud = CloudModel(model="gpt-4o-mini")
    hard = OracleRouter(edgemodel=edge, cloudmodel=cloud).route_batch(data)
    e, c = edge.predict_batch(data), cloud.inference_batch(data)
    answered = [c[i] if h else e[i] for i, h in enumerate(hard)]
    oracle_acc = sum(r["prediction"] == s["gold"] for r, s in zip(answered, data))
    either = sum(a["prediction"] == s["gold"] or b["prediction"] == s["gold"]
                 for a, b, s in zip(e, c, data))
    assert oracle_acc == either


def test_oracle_compares_recorded_scores():
    from edgellm.records import make_response

    def outcome(score):
        r = make_response(None, None, 1, 1, ttft=0.1, itl=0.0, e2e=0.1, tier="edge",
                          node="edge", model="m")
        r["score"] = score
        return r

    class Recorded:
        def __init__(self, scores):
            self.scores = scores

        def predict(self, sample, **kw):
            return outcome(self.scores[sample["id"]])

        inference = predict

    router = OracleRouter(edgemodel=Recorded([0, 1, 0, 1]), cloudmodel=Recorded([1, 1, 0, 0]))
    samples = [{"id": i, "query": "q", "gold": "A"} for i in range(4)]
    assert router.route_batch(samples) == [True, False, False, False]
    assert router.counts == {"both_right": 1, "both_wrong": 1, "edge_better": 1,
                             "cloud_better": 1, "tie": 0}


def test_every_shipped_router_is_registered_lazily_and_the_example_registers_them_all():
    """edgellm.routing.ROUTERS names every shipped router without importing one (nor
    scikit-learn); the example's query_routers.py registers each with ClassFactory."""
    code = ("import sys, edgellm.routing as r; "
            "print(sorted(m for m in sys.modules if m.startswith(('edgellm.routing.', "
            "'sklearn', 'scipy', 'torch'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
    names = ROUTERS.names()
    assert {"EdgeOnly", "CloudOnly", "RandomRouter", "OracleRouter", "TfidfRouter",
            "MetadataRouter", "EmbeddingRouter", "EmbeddingKnnRouter", "BERTRouter",
            "CascadeRouter", "AutoRouter"} == set(names)
    for name in names:
        cls = ROUTERS.get(name)
        assert cls.__name__ == name and issubclass(cls, Router)
    spec = importlib.util.spec_from_file_location(
        "query_routers_under_test", f"{EXAMPLE}/testalgorithms/query-routing/query_routers.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    for name in names:
        assert ClassFactory.get_cls(ClassType.HEM, name) is ROUTERS.get(name)
