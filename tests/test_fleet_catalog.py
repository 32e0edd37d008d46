"""The shipped fleet topologies, read as plain YAML (independent of the fleet loader):
they fit, name known profiles, and have the shape the fleet benchmark relies on."""

from functools import lru_cache
from itertools import combinations

import numpy as np
import pytest
import yaml

from conftest import EXAMPLE, REPO, sample
from edgellm.models.pricing import price_for
from edgellm.models.simulated import PROFILES_PATH, SimulatedLLM, load_profile

TOPOLOGIES = REPO / EXAMPLE / "testalgorithms" / "multi-edge-offloading" / "topologies"
TASK_TYPES = ("text_classification", "named_entity_recognition", "question_answering",
              "translation", "summarization", "multiple_choice")
NEW_PROFILES = ("Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct",
                "google/gemma-2-2b-it", "meta-llama/Llama-3.2-3B-Instruct",
                "microsoft/Phi-3.5-mini-instruct", "meta-llama/Llama-3.1-8B-Instruct")


def topology(name):
    with open(TOPOLOGIES / f"{name}.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=None)
def profiles():
    with open(PROFILES_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)["models"]


def deployed_gb(model):
    """Size of the deployed quantisation (default: the smallest)."""
    sizes = model["sizes_gb"]
    return sizes[model["quantization"]] if "quantization" in model else min(sizes.values())


def quality(model, task_type):
    override = model.get("quality") or {}
    if task_type in override:
        return override[task_type]
    return profiles()[model["profile"]]["accuracy"][task_type]


def best_per_task(models):
    return {t: max(models, key=lambda m: quality(m, t))["id"] for t in TASK_TYPES}


@pytest.mark.parametrize("name", ["small", "large"])
def test_topology_is_consistent(name):
    topo = topology(name)
    nodes, models = topo["nodes"], topo["models"]
    node_ids, model_ids = [n["id"] for n in nodes], [m["id"] for m in models]
    assert len(set(node_ids)) == len(node_ids) and len(set(model_ids)) == len(model_ids)
    by_id = {m["id"]: m for m in models}
    known = profiles()
    for m in models:
        assert m["profile"] in known, m["profile"]
        assert m["quantization"] in m["sizes_gb"]
        sizes = m["sizes_gb"]  # fp16 ~2, q8_0 ~1.07, q4_k_m ~0.6 bytes per parameter
        assert sizes["fp16"] > sizes["q8_0"] > sizes["q4_k_m"]
        assert sizes["fp16"] == pytest.approx(2 * m["params_b"], rel=0.05)
        for key in ("load_s_per_gb", "prefill_tokens_per_s", "decode_tokens_per_s"):
            assert m[key] > 0
        SimulatedLLM(m["profile"])  # the simulated backend has the profile
        assert price_for(m["profile"]).cost(10**6, 10**6, 3600) == 0.0  # edge is free
    for n in nodes:
        assert n["speed"] > 0 and n["slots"] >= 1
        assert n["link"]["bandwidth_mbps"] > 0 and n["link"]["rtt_ms"] >= 0
        assert set(n["models"]) <= set(by_id), n["id"]
        assert sum(deployed_gb(by_id[m]) for m in n["models"]) <= n["memory_gb"], n["id"]
    cloud = topo["cloud"]
    assert cloud["profile"] in known and known[cloud["profile"]]["tier"] == "cloud"
    assert price_for(cloud["profile"]).input_per_mtok > 0
    # the cloud stays the best model at every task type
    for t in TASK_TYPES:
        assert known[cloud["profile"]]["accuracy"][t] > max(quality(m, t) for m in models), t


def test_small_catalog_specialises_and_memory_holds_few_models():
    topo = topology("small")
    assert len(topo["nodes"]) == 3 and len(topo["models"]) == 4
    best = best_per_task(topo["models"])
    assert len(set(best.values())) >= 3, best
    sizes = [deployed_gb(m) for m in topo["models"]]
    smallest_three = min(sum(c) for c in combinations(sizes, 3))
    for n in topo["nodes"]:
        assert min(sizes) <= n["memory_gb"] < smallest_three, n["id"]  # one or two at once
    # the initial placement leaves some task type's best model unloaded: caching can help
    loaded = {m for n in topo["nodes"] for m in n["models"]}
    assert set(best.values()) - loaded


def test_large_fleet_is_heterogeneous():
    topo = topology("large")
    assert len(topo["nodes"]) == 10 and len(topo["models"]) == 8
    speeds = [n["speed"] for n in topo["nodes"]]
    assert 4 <= max(speeds) / min(speeds) <= 10
    assert len({n["slots"] for n in topo["nodes"]}) >= 3
    # the best model depends on the task type here too
    assert len(set(best_per_task(topo["models"]).values())) >= 2


@pytest.mark.parametrize("model", NEW_PROFILES)
def test_new_profiles_reach_their_reported_mmlu(model):
    data = [sample(i, gold="ABCD"[i % 4], subject=f"subject{i % 57}") for i in range(800)]
    responses = SimulatedLLM(model).generate_batch(data)
    accuracy = np.mean([r["prediction"] == s["gold"] for r, s in zip(responses, data)])
    target = load_profile(model).accuracy["multiple_choice"]
    assert abs(accuracy - target) < 0.05, (accuracy, target)
