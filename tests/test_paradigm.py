"""The joint-inference paradigm: Ianvs' call order, both mining modes, batching."""

import random

import pytest

from conftest import sample
from edgellm.bench import paradigm as paradigm_module
from edgellm.bench.paradigm import JointInference


class Model:
    """Per-sample only (as Ianvs modules are); records its calls."""

    def __init__(self, tier):
        self.tier, self.calls = tier, []

    def _answer(self, data, kwargs):
        self.calls.append((data["id"], dict(kwargs)))
        return {"tier": self.tier, "id": data["id"], "prediction": "A"}

    def predict(self, data, **kwargs):
        return self._answer(data, kwargs)

    def inference(self, data, **kwargs):
        return self._answer(data, kwargs)


class BatchModel(Model):
    def predict_batch(self, samples):
        return [self._answer(s, {}) for s in samples]

    inference_batch = predict_batch


class EvenIdsHard:
    """Router on samples (mining first): ids that are even go to the cloud."""

    def __init__(self):
        self.seen = []

    def __call__(self, x):
        self.seen.append(x)
        return x["id"] % 2 == 0


class SeededRandom:
    """A stateful per-call router, like Ianvs' RandomRouter."""

    def __init__(self):
        self.rng = random.Random(3)

    def __call__(self, x):
        return self.rng.random() < 0.5


def test_mining_then_inference_layout_and_kwargs():
    edge, cloud, router = Model("edge"), Model("cloud"), EvenIdsHard()
    out = JointInference(edge, cloud, router).run([sample(i) for i in range(5)])
    assert [r[0] for r in out] == [True, False, True, False, True]
    for hard, res, e, c in out:
        assert (res is c and e is None) if hard else (res is e and c is None)
    assert [i for i, _ in edge.calls] == [1, 3] and [i for i, _ in cloud.calls] == [0, 2, 4]
    # sedna passes the mode to both models, and post_process to the cloud
    assert edge.calls[0][1] == {"mining_mode": "mining-then-inference"}
    assert cloud.calls[0][1] == {"mining_mode": "mining-then-inference", "post_process": None}


def test_inference_then_mining_router_sees_edge_response():
    edge, cloud = Model("edge"), Model("cloud")
    router = lambda res: res["id"] in (1, 2)  # noqa: E731 - sees the edge response
    out = JointInference(edge, cloud, router, "inference-then-mining").run(
        [sample(i) for i in range(4)])
    assert [i for i, _ in edge.calls] == [0, 1, 2, 3]
    assert [i for i, _ in cloud.calls] == [1, 2]
    hard, res, e, c = out[1]
    assert hard and res is c and e["tier"] == "edge" and c["tier"] == "cloud"
    hard, res, e, c = out[0]
    assert not hard and res is e and c is None


@pytest.mark.parametrize("mode", ["mining-then-inference", "inference-then-mining"])
def test_chunked_batches_equal_per_sample_loop(monkeypatch, mode):
    monkeypatch.setattr(paradigm_module, "CHUNK", 7)  # several chunks
    data = [sample(i) for i in range(50)]
    per_sample = JointInference(Model("edge"), Model("cloud"), SeededRandom(), mode).run(data)
    batched = JointInference(BatchModel("edge"), BatchModel("cloud"), SeededRandom(), mode)
    assert batched.run(data) == per_sample


def test_model_returning_wrong_count_fails_loudly():
    class Short(BatchModel):
        def predict_batch(self, samples):
            return []

    with pytest.raises(RuntimeError, match="returned 0 responses for 2 samples"):
        JointInference(Short("edge"), Model("cloud"), lambda x: False).run(
            [sample(0), sample(1)])
