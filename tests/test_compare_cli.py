"""``edgellm compare``: runs matched by configuration, differences with intervals and
p-values, and bad input on one line."""

import csv
import glob
import json
import os
import shutil

import numpy as np
import pytest

from conftest import EXAMPLE, JOB, edit
from edgellm.bench.case_items import CaseItems
from edgellm.cli import main
from edgellm.stats.mcnemar import exact_p_value

ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
SEEDS = ["--ignore", "edgemodel-seed", "--ignore", "cloudmodel-seed"]


def _run_twice(capsys):
    """The main job in ./workspace, then with the simulated models' seed 1 in ./other."""
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    edit(JOB, 'workspace: "./workspace"', 'workspace: "./other"')
    for name in ("edge-only", "cloud-only", "random-router", "oracle-router"):
        path = f"{ROUTING}/{name}.yaml"
        text = open(path).read()
        # the models' seeds (the router's stays)
        text = text.replace("- seed:\n            values: [0]", "- seed:\n            values: [1]", 2)
        open(path, "w").write(text)
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    capsys.readouterr()


def _correct(folder):
    """Per query, 1 when the answer's letter is the gold one (independently of the
    library's per-item definition)."""
    out = []
    with open(os.path.join(folder, "results.jsonl")) as handle:
        for line in handle:
            record = json.loads(line)
            answer = record["cloud"] if record["is_hard"] else record["edge"]
            out.append(float(answer["prediction"] == record["gold"]))
    return np.array(out)


def test_two_workspaces_matched_by_configuration(example, capsys):
    _run_twice(capsys)
    # the seeds are part of the configuration: nothing matches until they are ignored
    assert main(["compare", "workspace", "other"]) == 2
    assert "no configuration" in capsys.readouterr().err
    assert main(["compare", "workspace", "other", *SEEDS, "--metric", "Accuracy",
                 "--metric", "E2E Latency P99", "--json", "--resamples", "2000"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in report["runs"]] == ["A", "B"]
    assert len(report["configurations"]) == 10 and report["resamples"] == 2000
    rows_a = {r["url"]: r for r in csv.DictReader(open(
        "workspace/query-routing/rank/all_rank.csv"))}
    seen_difference = False
    for config in report["configurations"]:
        accuracy = config["metrics"]["Accuracy"]
        a, b = accuracy["values"]
        (low_a, high_a), (low_b, high_b) = accuracy["intervals"]
        assert low_a <= a <= high_a and low_b <= b <= high_b
        delta = accuracy["differences"][0]
        assert abs(delta["difference"] - (b - a)) <= 0.01 + 1e-9  # a, b rounded
        assert delta["paired"] and delta["low"] <= delta["difference"] <= delta["high"]
        assert 0 < delta["p_value"] <= 1
        seen_difference |= delta["difference"] != 0
        p95 = config["metrics"]["E2E Latency P99"]
        assert "mcnemar" not in p95["differences"][0]
        # McNemar on the discordant queries, counted here from the two cases' answers
        folders = [f for f in glob.glob("*/query-routing/*/*-*-*")
                   if _matches(f, config["configuration"])]
        assert len(folders) == 2
        first = next(f for f in folders if f.startswith("workspace"))
        second = next(f for f in folders if f.startswith("other"))
        x, y = _correct(first), _correct(second)
        # the difference of the accuracies, not of the leaderboard's rounded figures
        assert delta["difference"] == pytest.approx(100 * (y.mean() - x.mean()), abs=1e-9)
        b_count, c_count = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
        assert delta["mcnemar"]["first_only"] == b_count
        assert delta["mcnemar"]["second_only"] == c_count
        assert delta["mcnemar"]["p_value"] == pytest.approx(exact_p_value(b_count, c_count))
    assert seen_difference and rows_a


def _matches(folder, configuration):
    import yaml
    config = yaml.safe_load(open(os.path.join(folder, "config.yaml")))
    models = {m["type"]: m for m in config["modules"]}
    return config["algorithm"]["name"] == configuration["algorithm"] and \
        models["edgemodel"]["hyperparameters"]["model"] == configuration["edgemodel-model"]


def test_text_output_and_case_folders(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    capsys.readouterr()
    cases = {os.path.basename(os.path.dirname(f)): f for f in
             glob.glob("workspace/query-routing/*/*-*-*")}
    edge = CaseItems.read(cases["edge-only"])
    assert edge.n == 160
    # two configurations on the same queries: paired, with McNemar
    assert main(["compare", cases["edge-only"], cases["cloud-only"], "--metric", "Accuracy",
                 "--resamples", "1000"]) == 0
    out = capsys.readouterr().out
    assert "paired on the same queries" in out and "McN" in out
    assert "different configurations, compared as given" in out
    assert "Accuracy" in out and "B-A" in out


def test_rows_without_results_show_values_without_intervals(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    shutil.copytree("workspace", "copy")
    for folder in glob.glob("copy/query-routing/*/*-*-*"):
        shutil.rmtree(folder)
    rank = "copy/query-routing/rank/all_rank.csv"
    text = open(rank).read().replace("./workspace/", "./copy/")
    open(rank, "w").write(text)
    capsys.readouterr()
    assert main(["compare", "workspace", "copy/query-routing/rank", "--metric", "Accuracy",
                 "--json", "--resamples", "500"]) == 0
    report = json.loads(capsys.readouterr().out)
    for config in report["configurations"]:
        accuracy = config["metrics"]["Accuracy"]
        assert accuracy["intervals"][0] is not None and accuracy["intervals"][1] is None
        assert accuracy["differences"][0]["difference"] == 0
        assert accuracy["differences"][0]["p_value"] is None
    assert len(report["notes"]) == 1 and "B: no intervals" in report["notes"][0]


def test_the_job_every_workspace_holds(example, capsys):
    """A workspace where several jobs ran is compared by the one job the other holds."""
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    for job in ("query-routing", "extra"):
        shutil.copytree("workspace/query-routing/rank", f"several/{job}/rank")
    capsys.readouterr()
    assert main(["compare", "several", "workspace", "--metric", "Accuracy",
                 "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "A: several/query-routing/rank/all_rank.csv (10 configurations)" in out
    assert main(["compare", "several", "several"]) == 2  # two jobs in both: which one?
    assert "several jobs (extra, query-routing): give --job" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["compare", "workspace", "missing"], "missing: no such file or folder"),
    (["compare", "workspace", "empty"], "empty: no rank files"),
    (["compare", "workspace"], "two or more runs"),
    (["compare", "workspace", "workspace", "--metric", "Nope"], "'Nope' is not a metric"),
    (["compare", "workspace", "workspace", "--ignore", "nope"], "--ignore: 'nope'"),
    (["compare", "workspace", "README.md"], "README.md: not a rank file"),
    (["compare", "two-jobs", "workspace"], "several jobs (a, b): give --job"),
    (["compare", "two-jobs", "missing"], "missing: no such file or folder"),
    (["compare", "workspace", "ragged.csv"],
     "ragged.csv:2: 2 cells, but the header has 3 columns"),
    (["compare", "workspace", "case-twice"], "case-twice/config.yaml:"),
])
def test_bad_input_is_one_line_exit_2(example, capsys, argv, message):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    os.makedirs("empty")
    open("README.md", "w").write("not a rank file\n")
    for job in ("a", "b"):
        shutil.copytree("workspace/query-routing/rank", f"two-jobs/{job}/rank")
    open("ragged.csv", "w").write("algorithm,Accuracy,paradigm\nedge-only,0.5\n")
    shutil.copytree(glob.glob("workspace/query-routing/edge-only/*")[0], "case-twice")
    with open("case-twice/config.yaml", "a") as handle:  # a top-level key given twice
        handle.write("algorithm: {}\n")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_value_that_rounds_to_zero_prints_without_a_minus():
    from edgellm.compare.table import _number

    assert _number(-0.0004, 3) == "0.000" and _number(-0.0004, 3, sign=True) == "+0.000"
    assert _number(-1.25, 2, sign=True) == "-1.25" and _number(None, 2) == "-"
