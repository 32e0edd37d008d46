"""``edgellm report -f`` of the fleet job: its cases as points (quality vs cost and vs
p95 latency, SLO attainment), each named and linked to its round plots, which say
which case they show; ``edgellm export -f`` reads the job's own store."""

import csv
import os

from conftest import EXAMPLE
from edgellm.cli import main

FLEET = f"{EXAMPLE}/testalgorithms/multi-edge-offloading"
MULTI_JOB = f"{EXAMPLE}/benchmarkingjob-multi-edge.yaml"
REPORT = "workspace/multi-edge-offloading/report"


def test_fleet_job_report(example, capsys, monkeypatch):
    import edgellm.fleet.module as module

    edit_grid()
    captions = []
    real = module.plot_rounds
    monkeypatch.setattr(module, "plot_rounds", lambda frame, folder, caption=None: (
        captions.append(caption), real(frame, folder, caption))[1])
    assert main(["run", "-f", MULTI_JOB, "--no-progress", "-j", "1"]) == 0
    assert sorted(captions) == sorted(
        f"offloader {o}, caching {c}, topology {name} ({t}.yaml) - SIMULATED"
        for o in ("RoundRobin", "QualityGreedy") for c in ("Static",)
        for t, name in (("small", "small-3x4"), ("large", "large-10x8")))
    capsys.readouterr()
    assert main(["report", "-f", MULTI_JOB]) == 0  # no cloud-only algorithm needed
    printed = capsys.readouterr().out
    assert "edgellm leaderboard: multi-edge-offloading (SIMULATED" in printed
    assert "report written to" in printed
    assert sorted(os.listdir(REPORT)) == ["fleet_cases.csv", "index.html",
                                          "quality_vs_cost.png", "quality_vs_p95.png"]
    with open(f"{REPORT}/fleet_cases.csv", newline="") as handle:
        cases = list(csv.DictReader(handle))
    with open("workspace/multi-edge-offloading/rank/all_rank.csv", newline="") as handle:
        ranked = {r["url"]: r for r in csv.DictReader(handle)}
    assert len(cases) == len(ranked) == 4
    for case in cases:
        row = ranked[case["folder"]]
        assert float(case["accuracy"]) == float(row["Accuracy"])
        assert float(case["p95_latency"]) == float(row["E2E Latency P95"])
        assert float(case["slo_attainment"]) == float(row["SLO Attainment"])
        assert case["offloader"] == row["edgemodel-offloader"]
        assert case["topology"] in ("small.yaml", "large.yaml")
    assert any(c["pareto"] == "True" for c in cases)
    page = open(f"{REPORT}/index.html").read()
    assert "<h1>edgellm report: job multi-edge-offloading (SIMULATED)</h1>" in page
    assert "No random or oracle baselines" in page
    for png in ("quality_vs_cost.png", "quality_vs_p95.png"):
        assert f"<img src='{png}'" in page
        assert open(f"{REPORT}/{png}", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # every case's round plots, linked from the page and there
    links = [part.split("'")[0] for part in page.split("<a href='")[1:]]
    plots = [link for link in links if link.endswith(".png")]
    assert len(plots) == 3 * 4
    assert all(os.path.isfile(os.path.join(REPORT, link)) for link in plots)


def edit_grid():
    path = f"{FLEET}/multi-edge.yaml"
    text = open(path).read()
    text = text.replace('["RoundRobin", "LeastLoaded", "QualityGreedy", "LinUCB", '
                        '"MLPPredictor"]', '["RoundRobin", "QualityGreedy"]')
    text = text.replace('["Static", "LRU", "LFU", "DemandKnapsack"]', '["Static"]')
    open(path, "w").write(text)


def test_export_defaults_to_the_jobs_workspace(example, capsys, tmp_path):
    job = f"{EXAMPLE}/benchmarkingjob.yaml"
    assert main(["export", str(tmp_path / "out.jsonl"), "-f", job]) == 2
    assert "workspace/responses.sqlite: no response store here" in capsys.readouterr().err
    with open("outcomes.csv", "w") as handle:
        handle.write("id,model,correct\n1,edge-a,1\n1,cloud-b,0\n2,edge-a,0\n2,cloud-b,1\n")
    assert main(["import", "outcomes.csv", "--store", "workspace/responses.sqlite"]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "out.jsonl"), "-f", job]) == 0
    assert "exported 4 responses from " + os.path.abspath("workspace/responses.sqlite") in \
        capsys.readouterr().out
