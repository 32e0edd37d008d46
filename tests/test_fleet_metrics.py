"""Fleet metrics and the tier-aware joint-inference metrics, on results built by hand
as the fleet's edge module returns them (make_response plus the fleet extras)."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from edgellm.bench.loader import ModuleLoader
from edgellm.metrics import catalog
from edgellm.metrics import fleet as f
from edgellm.metrics import joint_inference as m
from edgellm.records import make_response
from edgellm.registry import ClassFactory, ClassType

REPO = Path(__file__).resolve().parents[1]
TESTENV = REPO / "examples/edge-llm-distribution/testenv"


def task(node, arrival, e2e, busy, *, slo=3.0, hit=None, fleet=None, prompt=10,
         completion=5, cost=0.0, error=None):
    """A fleet response: node "cloud" is a cloud fallback."""
    tier = "cloud" if node == "cloud" else "edge"
    r = make_response("x", "A", prompt, completion, ttft=0.1 * e2e, itl=0.01, e2e=e2e,
                      tier=tier, node=node, model="m", cost_usd=cost, error=error)
    r["perf"].update(arrival_s=arrival, start_s=arrival, finish_s=arrival + e2e, busy_s=busy)
    r.update(round=0, slo_s=slo, cache_hit=hit)
    if fleet is not None:
        r["fleet"] = fleet
    return r


def served(*responses):
    """Ianvs results of the fleet as the edge module: every task is the edge
    module's result, cloud fallbacks included ([False, res, res, None])."""
    return [[False, r, r, None] for r in responses]


NODES = {"a": 2, "b": 1, "c": 1}  # c never serves anything
TRANSFERS = [{"node": "b", "model": "m2", "gb": 1.9, "seconds": 5.0},
             {"node": "c", "model": "m1", "gb": 3.3, "seconds": 7.5}]


@pytest.fixture
def fleet_run():
    t1 = task("a", 0.0, 2.0, 1.5, hit=True, fleet={"nodes": NODES})       # finish 2.0, in SLO
    t2 = task("b", 1.0, 4.0, 3.0, hit=False, fleet={"transfers": TRANSFERS})  # 5.0, missed
    t3 = task("cloud", 2.0, 2.5, 0.0, prompt=20, completion=7, cost=0.002)  # 4.5, in SLO
    t4 = task("a", 3.0, 1.0, 0.5, hit=True)                                # 4.0, in SLO
    return ["A"] * 4, served(t1, t2, t3, t4)


def test_cloud_fallback_counts_as_cloud_not_as_edge(fleet_run):
    assert m.edge_ratio(*fleet_run) == 75.0  # is_hard is False for all four
    assert (m.edge_prompt_tokens(*fleet_run), m.edge_completion_tokens(*fleet_run)) == (30, 15)
    assert (m.cloud_prompt_tokens(*fleet_run), m.cloud_completion_tokens(*fleet_run)) == (20, 7)
    assert m.cloud_cost(*fleet_run) == pytest.approx(0.002)
    assert m.edge_cost(*fleet_run) == 0.0
    assert m.cost(*fleet_run) == pytest.approx(0.002)


def test_throughput_over_the_makespan_when_requests_overlap(fleet_run):
    # first arrival 0.0, last finish 5.0 (t2); the E2E sum would be 9.5
    assert m.request_throughput(*fleet_run) == 0.8
    assert m.output_token_throughput(*fleet_run) == round(22 / 5.0, 4)


def test_throughput_falls_back_to_the_sequential_sum_without_timestamps(fleet_run):
    y_true, y_pred = fleet_run
    del y_pred[3][1]["perf"]["finish_s"]
    assert m.request_throughput(y_true, y_pred) == round(4 / 9.5, 4)


def test_slo_attainment_and_goodput(fleet_run):
    assert f.slo_attainment(*fleet_run) == 75.0  # t2 took 4.0 s against 3.0
    assert f.goodput(*fleet_run) == 0.6  # 3 within SLO over 5.0 s


def test_slo_counts_only_requests_with_an_slo_and_answered(fleet_run):
    y_true, y_pred = fleet_run
    y_pred[0][1]["slo_s"] = None
    y_pred.append(served(task("a", 4.0, 0.5, 0.5, error="timeout"))[0])
    assert f.slo_attainment(y_true, y_pred) == round(100 * 2 / 3, 2)
    assert f.goodput(y_true, y_pred) == 0.4


def test_no_slo_is_nan_not_zero(fleet_run):
    y_true, y_pred = fleet_run
    for r in y_pred:
        r[1]["slo_s"] = None
    assert math.isnan(f.slo_attainment(y_true, y_pred))
    assert math.isnan(f.goodput(y_true, y_pred))


def test_cache_hit_ratio_over_edge_tasks_only(fleet_run):
    assert f.cache_hit_ratio(*fleet_run) == round(100 * 2 / 3, 2)  # cloud t3 has None


def test_transfers_summed_over_responses(fleet_run):
    y_true, y_pred = fleet_run
    assert f.models_transferred(y_true, y_pred) == 2
    assert f.transfer_gb(y_true, y_pred) == 5.2
    assert f.transfer_seconds(y_true, y_pred) == 12.5
    # a later caching round charged to a task that failed still counts
    later = task("b", 6.0, 1.0, 1.0, error="HTTP 500",
                 fleet={"transfers": [{"node": "a", "model": "m3", "gb": 0.8, "seconds": 2.0}]})
    y_pred.append(served(later)[0])
    assert (f.models_transferred(y_true, y_pred), f.transfer_gb(y_true, y_pred)) == (3, 6.0)


def test_load_balance_is_jains_index_with_idle_nodes_as_zero(fleet_run):
    # busy seconds per slot: a (1.5 + 0.5) / 2 = 1, b 3 / 1 = 3, c idle 0
    assert f.load_balance(*fleet_run) == round(4 ** 2 / (3 * (1 + 9 + 0)), 4)


def test_node_utilisation_over_slots_and_makespan(fleet_run):
    # makespan 5 s: a 2 / (2 x 5), b 3 / (1 x 5), c 0
    assert f.node_utilisation_by_node(fleet_run[1]) == {"a": 20.0, "b": 60.0, "c": 0.0}
    assert f.node_utilisation(*fleet_run) == round((20 + 60 + 0) / 3, 2)
    assert f.max_node_utilisation(*fleet_run) == 60.0


def test_perfectly_even_load_is_one():
    y_pred = served(task("a", 0.0, 2.0, 2.0, fleet={"nodes": {"a": 1, "b": 2}}),
                    task("b", 0.0, 2.0, 2.0), task("b", 0.0, 2.0, 2.0))
    assert f.load_balance(None, y_pred) == 1.0
    assert f.node_utilisation_by_node(y_pred) == {"a": 100.0, "b": 100.0}


def test_all_cloud():
    y_pred = served(task("cloud", 0.0, 1.0, 0.0, fleet={"nodes": NODES}),
                    task("cloud", 0.5, 1.0, 0.0))
    assert m.edge_ratio(None, y_pred) == 0.0
    assert m.edge_prompt_tokens(None, y_pred) == 0
    assert m.cloud_prompt_tokens(None, y_pred) == 20
    assert math.isnan(f.cache_hit_ratio(None, y_pred))
    assert math.isnan(f.load_balance(None, y_pred))  # no node worked: nothing to balance
    assert f.node_utilisation(None, y_pred) == 0.0
    assert f.max_node_utilisation(None, y_pred) == 0.0
    assert f.models_transferred(None, y_pred) == 0


def test_a_response_on_a_node_outside_the_fleet_is_an_error():
    y_pred = served(task("a", 0.0, 1.0, 1.0, fleet={"nodes": {"a": 1}}),
                    task("z", 0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="'z'"):
        f.load_balance(None, y_pred)


def plain(tier, p, c, e2e, cost=0.0, with_tier=True):
    """A response of the one-edge-model paradigm (no fleet extras)."""
    r = make_response("x", "A", p, c, ttft=0.1, itl=0.01, e2e=e2e, tier=tier, node=tier,
                      model="m", cost_usd=cost)
    if not with_tier:
        r["tier"] = None  # imported outcome records carry none
    return r


@pytest.fixture
def one_edge_model():
    """Both hard-example-mining modes, and responses without a tier."""
    e1, e2 = plain("edge", 10, 3, 0.5), plain("edge", 12, 4, 0.7, cost=0.001)
    c1, c2 = plain("cloud", 20, 6, 1.0, cost=0.01), plain("cloud", 30, 2, 1.5, cost=0.02)
    e3, c3 = plain("edge", 8, 1, 0.2, with_tier=False), plain("cloud", 9, 2, 0.9, with_tier=False)
    y_pred = [[False, e1, e1, None],   # mining-then-inference, easy
              [True, c1, None, c1],    # mining-then-inference, hard
              [True, c2, e2, c2],      # inference-then-mining, escalated
              [False, e3, e3, None],   # no tier: by side and by is_hard
              [True, c3, None, c3]]
    return ["A"] * 5, y_pred


def test_one_edge_model_results_keep_their_values(one_edge_model):
    assert m.edge_ratio(*one_edge_model) == 40.0
    assert m.edge_prompt_tokens(*one_edge_model) == 10 + 12 + 8
    assert m.edge_completion_tokens(*one_edge_model) == 3 + 4 + 1
    assert m.cloud_prompt_tokens(*one_edge_model) == 20 + 30 + 9
    assert m.cloud_completion_tokens(*one_edge_model) == 6 + 2 + 2
    assert m.edge_cost(*one_edge_model) == pytest.approx(0.001)
    assert m.cloud_cost(*one_edge_model) == pytest.approx(0.03)
    # no timestamps: requests one after another, duration = sum of the answers' E2E
    assert m.request_throughput(*one_edge_model) == round(5 / 4.1, 4)


def test_fleet_metrics_on_one_edge_model_results(one_edge_model):
    assert math.isnan(f.slo_attainment(*one_edge_model))
    assert math.isnan(f.cache_hit_ratio(*one_edge_model))
    assert math.isnan(f.load_balance(*one_edge_model))
    assert math.isnan(f.node_utilisation(*one_edge_model))
    assert f.node_utilisation_by_node(one_edge_model[1]) == {}
    assert f.models_transferred(*one_edge_model) == 0


def test_p95_percentiles(fleet_run):
    e2e = [2.0, 4.0, 2.5, 1.0]
    assert m.METRICS["E2E Latency P95"](*fleet_run) == round(float(np.percentile(e2e, 95)), 4)
    ttft = [0.1 * e for e in e2e]
    assert m.METRICS["TTFT P95"](*fleet_run) == round(float(np.percentile(ttft, 95)), 4)


NEW_SCRIPTS = {
    "ttft_p95.py": "TTFT P95", "e2e_latency_p95.py": "E2E Latency P95",
    "slo_attainment.py": "SLO Attainment", "goodput.py": "Goodput",
    "cache_hit_ratio.py": "Cache Hit Ratio", "models_transferred.py": "Models Transferred",
    "transfer_gb.py": "Transfer GB", "transfer_seconds.py": "Transfer Seconds",
    "load_balance.py": "Load Balance", "node_utilisation.py": "Node Utilisation",
    "max_node_utilisation.py": "Max Node Utilisation",
    "redispatched_tasks.py": "Redispatched Tasks", "node_failures.py": "Node Failures",
    "transfer_retries.py": "Transfer Retries"}


def test_metric_scripts_register_the_library_functions():
    loader = ModuleLoader()
    try:
        for script, name in NEW_SCRIPTS.items():
            metric = loader.resolve(ClassType.GENERAL, name, str(TESTENV / script), "test",
                                    "metric")
            assert metric is catalog.METRICS[name]
        assert ClassFactory.get_cls(ClassType.GENERAL, "Goodput") is f.goodput
    finally:
        loader.unload()
    assert set(f.METRICS) <= set(NEW_SCRIPTS.values())
    # what a job's files registered is forgotten with the job
    assert not ClassFactory.is_exists(ClassType.GENERAL, "Goodput")


def test_every_metric_has_a_row_in_the_docs_table():
    doc = (REPO / "docs/metrics.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1] for line in doc.splitlines() if line.startswith("| ")]
    documented = set()
    for cell in rows:  # "TTFT P50 / P90 / P95 / P99" and "Cost, Cloud Cost, Edge Cost"
        for part in re.split(r",\s*", cell.strip()):
            head, *quantiles = [q.strip() for q in part.split("/")]
            documented.add(head)
            stem = head.rsplit(" ", 1)[0]
            documented.update(f"{stem} {q}" for q in quantiles)
    missing = [name for name in catalog.METRICS if name not in documented
               and name.split(" ")[0] not in {"MC", "TC", "NER", "QA", "TS", "SG"}]
    assert missing == []
