"""edgellm report: a job's test cases and learned routers on an outcome matrix, as
curves.csv, two PNG plots and an HTML page; bad input is one line and writes nothing."""

import csv
import json
import os

import numpy as np
import pytest

from conftest import JOB
from edgellm.cli import main
from edgellm.metrics.routing_curves import apgr, sweep
from edgellm.outcomes import OutcomeSet, synthetic
from edgellm.report import router_curves

REPORT = "workspace/query-routing/report"
EDGE, CLOUD = synthetic.EDGE_MODEL, synthetic.CLOUD_MODEL


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class SubjectPrior:
    """A learned router in the shape of a ScoringRouter (fit/score), for the report's
    plumbing: the share of train items of the subject that are positive."""

    seen = []

    def __init__(self, label="edge_wrong"):
        self.label = label

    def fit(self, samples, labels):
        SubjectPrior.seen.append({s["id"] for s in samples})
        self.prior = {}
        for sample, label in zip(samples, labels):
            self.prior.setdefault(sample["subject"], []).append(label)
        self.prior = {k: float(np.mean(v)) for k, v in self.prior.items()}
        return self

    def score(self, samples):
        return np.array([self.prior.get(s["subject"], 0.5) for s in samples])


@pytest.fixture
def matrix_csv(tmp_path, monkeypatch):
    monkeypatch.setattr(router_curves, "learned_router_classes",
                        lambda: {"SubjectPrior": SubjectPrior})
    monkeypatch.setattr(router_curves, "training_labels",
                        lambda part, label: (part.cloud_score > part.edge_score).astype(int))
    path = tmp_path / "matrix.csv"
    assert main(["dataset", "synthesize", str(path), "--items", "1000", "--seed", "3"]) == 0
    return str(path)


def test_outcomes_report_fits_on_train_and_draws_on_test(matrix_csv, tmp_path, capsys):
    out = tmp_path / "report"
    SubjectPrior.seen.clear()
    assert main(["report", "--outcomes", matrix_csv, "--edge-model", EDGE, "--cloud-model",
                 CLOUD, "--router", "SubjectPrior", "--out", str(out), "--target-share",
                 "0.3"]) == 0
    printed = capsys.readouterr().out
    assert "report written to" in printed
    # the figures, in the terminal too: a row per router, APGR to AIQ
    figures = printed.splitlines()
    assert figures[0].split()[:5] == ["router", "APGR", "CPT(50%)", "CPT(80%)", "AIQ"]
    assert [line.split()[0] for line in figures[1:4]] == ["SubjectPrior", "random", "oracle"]
    assert sorted(os.listdir(out)) == ["accuracy_vs_cost.png", "accuracy_vs_share.png",
                                       "curves.csv", "index.html"]
    for png in ("accuracy_vs_cost.png", "accuracy_vs_share.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    outcomes = OutcomeSet.from_matrix(matrix_csv, EDGE, CLOUD)
    train, test = outcomes.split(0.5, seed=0)
    assert SubjectPrior.seen == [set(train.ids)]  # fitted on the train items only
    expected = sweep(SubjectPrior().fit(train.samples(), (train.cloud_score > train.edge_score)
                                        .astype(int)).score(test.samples()), test)

    rows = read_csv(out / "curves.csv")
    router = [r for r in rows if r["curve"] == "SubjectPrior"]
    assert [float(r["cloud_share"]) for r in router] == pytest.approx(expected.cloud_share)
    assert [float(r["accuracy"]) for r in router] == pytest.approx(expected.accuracy)
    assert float(router[0]["accuracy"]) == pytest.approx(test.cloud_accuracy)
    assert float(router[-1]["accuracy"]) == pytest.approx(test.edge_accuracy)
    assert any(r["pareto"] == "True" for r in router)
    random = [r for r in rows if r["kind"] == "random"]
    oracle = [r for r in rows if r["kind"] == "oracle"]
    assert len(random) >= 11 and len(oracle) >= 11
    either = np.mean(np.maximum(test.edge_score, test.cloud_score))
    assert max(float(r["accuracy"]) for r in oracle) == pytest.approx(either)

    page = (out / "index.html").read_text()
    assert "500 train / 500 test (fraction 0.5, seed 0)" in page
    assert f"{apgr(expected):.4g}" in page
    assert "threshold @ 30% train share" in page
    assert "<img src='accuracy_vs_share.png'" in page and "<img src='accuracy_vs_cost.png'" in page


def test_job_report_points_are_the_test_cases(example, capsys, monkeypatch):
    from edgellm.report import plots

    # the PNGs are checked with the outcome matrix above; drawing them again here
    # would only double the time
    monkeypatch.setattr(plots, "render", lambda report, axis: b"\x89PNG " + axis.encode())
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    assert main(["report", "-f", JOB, "--edge-model", "Qwen/Qwen2.5-1.5B-Instruct"]) == 0
    ranked = read_csv("workspace/query-routing/rank/all_rank.csv")
    rows = read_csv(f"{REPORT}/curves.csv")
    cases = [r for r in rows if r["kind"] == "case"]
    assert len(cases) == len(ranked) == 10
    assert sorted(float(r["accuracy"]) for r in cases) == pytest.approx(
        sorted(float(r["Accuracy"]) / 100 for r in ranked))
    assert sorted(float(r["cloud_share"]) for r in cases) == pytest.approx(
        sorted(1 - float(r["Edge Ratio"]) / 100 for r in ranked), abs=1e-4)  # rounded there

    # the oracle reaches the share of queries either model answers right, from the
    # edge-only and cloud-only cases' own records
    def right(algorithm, model):
        row = next(r for r in ranked if r["algorithm"] == algorithm
                   and (model is None or r["edgemodel-model"] == model))
        with open(os.path.join(row["url"], "results.jsonl")) as handle:
            records = [json.loads(line) for line in handle]
        side = "edge" if algorithm == "edge-only" else "cloud"
        return np.array([r[side]["prediction"] == r["gold"] for r in records])

    either = np.mean(right("edge-only", "Qwen/Qwen2.5-1.5B-Instruct") | right("cloud-only", None))
    oracle = [float(r["accuracy"]) for r in rows if r["curve"] == "oracle"]
    assert max(oracle) == pytest.approx(either)
    # the other edge models get their own random and oracle curves
    for model in ("Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct"):
        theirs = [float(r["accuracy"]) for r in rows if r["curve"] == f"oracle ({model})"]
        assert max(theirs) == pytest.approx(np.mean(right("edge-only", model)
                                                    | right("cloud-only", None)))
        assert any(r["curve"] == f"random ({model})" for r in rows)
    # the oracle router's cases are on the Pareto front; no case beats the front
    front = [r for r in cases if r["pareto"] == "True"]
    assert any(r["curve"].startswith("oracle-router") for r in front)
    best = max(cases, key=lambda r: float(r["accuracy"]))
    assert best["pareto"] == "True"

    page = open(f"{REPORT}/index.html").read()
    assert "<h2>Leaderboard</h2>" in page and "E2E Latency P99" in page
    assert "Qwen/Qwen2.5-1.5B-Instruct" in page
    assert "<h1>edgellm report: job query-routing (SIMULATED)</h1>" in page

    # no baseline for a model no case answered every query with: one line, no change
    before = os.path.getmtime(f"{REPORT}/index.html")
    capsys.readouterr()
    assert main(["report", "-f", JOB, "--edge-model", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'test_object.algorithms'" in err and "'nope'" in err
    assert os.path.getmtime(f"{REPORT}/index.html") == before


@pytest.mark.parametrize("argv, message", [
    (["report"], "-f/--outcomes: give either -f benchmarkingjob.yaml or --outcomes"),
    (["report", "-f", JOB], "no rank file"),
    (["report", "--outcomes", "{m}", "--edge-model", EDGE, "--cloud-model", CLOUD],
     "--out: required with --outcomes"),
    (["report", "--outcomes", "{m}", "--edge-model", EDGE, "--cloud-model", "other", "--out",
      "{o}"], "field 'model': no rows for 'other'"),
    (["report", "--outcomes", "{m}", "--edge-model", EDGE, "--cloud-model", CLOUD, "--out",
      "{o}", "--router", "Nope"], "--router: unknown learned router 'Nope' (known: SubjectPrior)"),
])
def test_bad_input_is_one_line_and_writes_nothing(example, matrix_csv, tmp_path, capsys, argv,
                                                  message):
    out = tmp_path / "out"
    argv = [a.format(m=matrix_csv, o=out) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgellm: error: ") and err.count("\n") == 1
    assert message in err
    assert not out.exists() and not os.path.exists(REPORT)


def test_bad_matrix_row_names_file_line_and_column(matrix_csv, tmp_path, capsys):
    rows = read_csv(matrix_csv)
    rows[2]["correct"] = "7"  # the second item's edge row, starting on line 14 (6 per row)
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    assert main(["report", "--outcomes", str(bad), "--edge-model", EDGE, "--cloud-model", CLOUD,
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:14: field 'correct': '7'" in err
    assert not (tmp_path / "o").exists()


def test_plot_labels_show_only_the_router_settings_that_vary():
    from edgellm.report.job_results import _label, varying_router_settings

    rows = [{"algorithm": "tfidf", "hard_example_mining": "TfidfRouter",
             "hard_example_mining-train_outcomes": "./w/train.csv",
             "hard_example_mining-cloud_share": share, "edgemodel-model": "Qwen/Qwen2.5-7B"}
            for share in ("0.2", "0.5")]
    rows.append({"algorithm": "random", "hard_example_mining": "RandomRouter",
                 "hard_example_mining-train_outcomes": "", "hard_example_mining-cloud_share": "",
                 "hard_example_mining-seed": "0", "edgemodel-model": "Qwen/Qwen2.5-7B"})
    varying = varying_router_settings(rows)
    assert varying == {"TfidfRouter": {"hard_example_mining-cloud_share"}, "RandomRouter": set()}
    assert [_label(r, True, varying) for r in rows] == [
        "tfidf (TfidfRouter, cloud_share=0.2, Qwen2.5-7B)",
        "tfidf (TfidfRouter, cloud_share=0.5, Qwen2.5-7B)", "random (RandomRouter, Qwen2.5-7B)"]
    assert "train_outcomes=./w/train.csv" in _label(rows[0])  # without varying: every setting


@pytest.fixture
def small_matrix(tmp_path):
    path = tmp_path / "matrix.csv"
    assert main(["dataset", "synthesize", str(path), "--items", "600", "--seed", "1"]) == 0
    return str(path)


def test_autorouter_is_the_default_and_says_what_it_chose(small_matrix, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--outcomes", small_matrix, "--edge-model", EDGE, "--cloud-model",
                 CLOUD, "--out", str(out), "--router-setting", "folds=3",
                 "--router-setting", "n_jobs=1", "--router-setting",
                 "families=[MetadataRouter]"]) == 0
    printed = capsys.readouterr().out
    assert "AutoRouter chose MetadataRouter(" in printed and "cross-validated APGR" in printed
    rows = read_csv(out / "curves.csv")
    assert {r["curve"] for r in rows if r["kind"] == "router"} == {"AutoRouter"}
    page = (out / "index.html").read_text()
    assert "<th>chosen</th>" in page and "<th>CV APGR</th>" in page
    assert "MetadataRouter(label=" in page and "by=[&#x27;subject&#x27;]" in page
    # the curve is the chosen configuration's, fitted on train
    from edgellm.routing.auto import AutoRouter

    outcomes = OutcomeSet.from_matrix(small_matrix, EDGE, CLOUD)
    train, test = outcomes.split(0.5, seed=0)
    router = AutoRouter(folds=3, n_jobs=1, families=["MetadataRouter"]).fit(
        train.samples(), router_curves.training_labels(train, "expected_gain"))
    curve = sweep(router.score(test.samples()), test)
    assert [float(r["accuracy"]) for r in rows if r["curve"] == "AutoRouter"] == \
        pytest.approx(curve.accuracy)


def test_router_settings_reproduce_a_configuration(small_matrix, tmp_path):
    from edgellm.routing.tfidf import TfidfRouter

    out = tmp_path / "report"
    assert main(["report", "--outcomes", small_matrix, "--edge-model", EDGE, "--cloud-model",
                 CLOUD, "--out", str(out), "--router", "TfidfRouter", "--router-setting",
                 "C=0.03", "--router-setting", 'metadata=["subject"]', "--router",
                 "MetadataRouter", "--router-setting", "smoothing=2"]) == 0
    outcomes = OutcomeSet.from_matrix(small_matrix, EDGE, CLOUD)
    train, test = outcomes.split(0.5, seed=0)
    labels = router_curves.training_labels(train, "cloud_right_edge_wrong")
    rows = read_csv(out / "curves.csv")
    for name, router in (("TfidfRouter", TfidfRouter(C=0.03, metadata=["subject"])),
                         ("MetadataRouter", router_curves.ROUTERS.get("MetadataRouter")(
                             smoothing=2))):
        router.label = "cloud_right_edge_wrong"
        curve = sweep(router.fit(train.samples(), labels).score(test.samples()), test)
        assert [float(r["accuracy"]) for r in rows if r["curve"] == name] == \
            pytest.approx(curve.accuracy)
    # another C draws another curve: the setting reached the router
    plain = TfidfRouter(metadata=["subject"], label="cloud_right_edge_wrong").fit(
        train.samples(), labels)
    assert [float(r["accuracy"]) for r in rows if r["curve"] == "TfidfRouter"] != \
        pytest.approx(sweep(plain.score(test.samples()), test).accuracy)


@pytest.mark.parametrize("extra, message", [
    (["--router", "TfidfRouter", "--router-setting", "treshold=0.3"],
     "--router-setting: TfidfRouter: unknown setting 'treshold'; did you mean 'threshold'?"),
    (["--router-setting", "fold=3"],
     "--router-setting: AutoRouter: unknown setting 'fold'; did you mean 'folds'?"),
    (["--router-setting", "folds=0"],  # the router's own message, its name said once
     "edgellm: error: --router: AutoRouter: folds must be a whole number >= 2, got 0"),
    (["--router-setting", "C=0.1", "--router", "TfidfRouter"],
     "--router-setting: given before the first --router"),
    (["--router", "TfidfRouter", "--router-setting", "metadata=[subject"],
     "argument --router-setting: metadata: '[subject' is not a YAML value"),
    (["--router", "TfidfRouter", "--router-setting", "C"],
     "argument --router-setting: expected KEY=VALUE"),
    # a job file's YAML checks: nesting that would overflow the composer's stack (this
    # libyaml's own limit or edgellm's, whichever speaks first), the value shortened
    (["--router", "TfidfRouter", "--router-setting", "C=" + "[" * 100_000],
     "C: '" + "[" * 80 + "' is not a YAML value (line 1: "),
])
def test_bad_router_settings_are_one_line_with_exit_2(small_matrix, tmp_path, capsys, extra,
                                                      message):
    out = tmp_path / "out"
    argv = ["report", "--outcomes", small_matrix, "--edge-model", EDGE, "--cloud-model",
            CLOUD, "--out", str(out), *extra]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert message in err.splitlines()[-1]  # one line (argparse's own errors: after usage)
    assert err.startswith("edgellm: error: ") == (err.count("\n") == 0)
    assert not out.exists()


def test_report_counts_each_configuration_once_from_its_latest_run(example, capsys,
                                                                   monkeypatch):
    from edgellm.report import plots

    monkeypatch.setattr(plots, "render", lambda report, axis: b"\x89PNG " + axis.encode())
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    older = {r["url"] for r in read_csv("workspace/query-routing/rank/all_rank.csv")}
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    ranked = read_csv("workspace/query-routing/rank/all_rank.csv")
    assert len(ranked) == 20
    capsys.readouterr()
    assert main(["report", "-f", JOB]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("edgellm leaderboard: query-routing (SIMULATED")
    assert max(len(line) for line in printed.splitlines()) <= 120
    cases = [r for r in read_csv(f"{REPORT}/curves.csv") if r["kind"] == "case"]
    assert len(cases) == 10
    page = open(f"{REPORT}/index.html").read()
    newest = {r["url"] for r in ranked} - older
    assert len(newest) == 10 and all(u not in page for u in older)
    assert all(u in page for u in newest)


def test_point_labels_never_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from edgellm.report.labels import label_boxes, place_labels

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.02, 25), rng.uniform(0, 1, 15)])
    y = np.concatenate([rng.normal(0.5, 0.02, 25), rng.uniform(0, 1, 15)])
    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.scatter(x, y)
    placed = place_labels(ax, x, y, [str(i) for i in range(1, 41)])
    boxes = label_boxes(placed)
    assert len(placed) >= 20  # the spread-out points all get theirs
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
