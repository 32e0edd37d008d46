"""Every per-query definition (edgellm.metrics.per_item) gives its metric's value on
real test cases of the shipped jobs: the intervals are intervals of the figures the
leaderboard shows."""

import glob
import json
import math
import os

import pytest

from conftest import EXAMPLE, JOB, edit
from edgellm.bench.case_items import CaseItems
from edgellm.cli import main
from edgellm.metrics.catalog import METRICS, item_statistic
from edgellm.metrics.per_item import DEFINITIONS, WHY_NONE, NoItemValues

FLEET = f"{EXAMPLE}/testalgorithms/multi-edge-offloading"


def _decimals(value):
    text = repr(float(value))
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def _check_cases(folders):
    checked = set()
    for folder in folders:
        case = CaseItems.read(folder)
        with open(os.path.join(folder, "metrics.json")) as handle:
            metrics = json.load(handle)
        for name, value in metrics.items():
            try:
                statistic = item_statistic(name, case.y_true, case.y_pred)
            except NoItemValues:
                assert name not in DEFINITIONS or name == "Accuracy" or "Throughput" in name
                continue
            estimate = statistic.estimate()
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert math.isnan(estimate), (folder, name)
            elif isinstance(value, int):
                assert estimate == pytest.approx(value, abs=1e-6), (folder, name)
            else:  # the metric rounds; the statistic does not
                assert abs(estimate - value) <= 0.50001 * 10 ** -_decimals(value) + 1e-12, \
                    (folder, name, value, estimate)
            checked.add(name)
    return checked


def test_every_metric_is_defined_or_says_why_not():
    assert set(METRICS) == set(DEFINITIONS) | set(WHY_NONE)
    assert not set(DEFINITIONS) & set(WHY_NONE)


def test_definitions_reproduce_the_main_and_five_task_jobs(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    five = f"{EXAMPLE}/benchmarkingjob-five-tasks.yaml"
    for algorithm in ("cloud-only", "oracle-router"):  # two algorithms are enough here
        edit(five, f'      - name: "{algorithm}"\n        url: "./examples/edge-llm-distribution/'
                   f'testalgorithms/query-routing/{algorithm}.yaml"\n', "")
    assert main(["run", "-f", five, "--no-progress"]) == 0
    checked = _check_cases(glob.glob("workspace/query-routing*/*/*-*-*"))
    assert {"Accuracy", "Edge Ratio", "Throughput", "TTFT P99", "E2E Latency P99", "Cost",
            "QA F1", "SG ROUGE-L", "TC Accuracy", "Request Throughput",
            "Cloud Prompt Tokens", "Internal Token Latency"} <= checked


def test_definitions_reproduce_a_fleet_job(example, capsys):
    edit(f"{FLEET}/multi-edge.yaml", '["RoundRobin", "LeastLoaded", "QualityGreedy", '
         '"LinUCB", "MLPPredictor"]', '["LeastLoaded"]')
    edit(f"{FLEET}/multi-edge.yaml", '["Static", "LRU", "LFU", "DemandKnapsack"]', '["LRU"]')
    assert main(["run", "-f", f"{EXAMPLE}/benchmarkingjob-multi-edge.yaml", "--no-progress"]) == 0
    checked = _check_cases(glob.glob("workspace/multi-edge-offloading/multi-edge/*-*-*"))
    assert {"SLO Attainment", "Cache Hit Ratio", "E2E Latency P95", "Edge Ratio",
            "Cloud Cost"} <= checked
    # the fleet's duration is a makespan: no per-query definition, and it says so
    case = CaseItems.read(glob.glob("workspace/multi-edge-offloading/multi-edge/*-*-*")[0])
    with pytest.raises(NoItemValues, match="makespan"):
        item_statistic("Request Throughput", case.y_true, case.y_pred)
