"""The printed leaderboard: it fits 120 columns, keeps its SIMULATED title, shows each
configuration's latest run, its intervals and rows within noise; --wide is Ianvs'
table; progress off a terminal is plain lines."""

import csv
import os
import subprocess
import sys

from conftest import JOB, REPO, edit
from edgellm.bench.rank import latest_rows
from edgellm.bench.runner import BenchmarkRunner, TableOptions
from edgellm.bench.table import TableView, render
from edgellm.cli import main

RANK = "workspace/query-routing/rank"


def _rows(name):
    with open(f"{RANK}/{name}", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_main_jobs_table_fits_120_columns_with_its_simulated_title(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].startswith("edgellm leaderboard: query-routing (SIMULATED models")
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 11  # the header and ten rows
    assert "Acc" in table[0] and "algorithm" in table[0] and "edge model" in table[0]
    assert "oracle-router" in table[1]
    assert "columns: " in out and "Acc = Accuracy" in out
    assert "every row: paradigm=jointinference, cloudmodel-model=gpt-4o-mini" in out
    assert "not shown (--wide" in out and "url" in out.split("not shown")[1]
    # 160 questions: several neighbours on the leaderboard are within the noise
    assert "within noise at 95 % by Accuracy (paired bootstrap, same queries): rows" in out


def test_wide_prints_ianvs_full_table(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress", "--wide"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "| rank |" in line)
    for column in ("Time to First Token", "E2E Latency P99", "hard_example_mining",
                   "edgemodel-model", "simulated", "time", "url"):
        assert column in header
    assert max(len(line) for line in out.splitlines()) > 300
    assert "SIMULATED" in out.splitlines()[1]  # the title, inside the frame


def test_narrow_table_at_80_columns_moves_long_values_to_a_legend():
    rows = [{"algorithm": "fleet", "Accuracy": "80.5", "Edge Ratio": "90.0",
             "paradigm": "jointinference", "edgemodel-topology": f"./topologies/{name}.yaml",
             "edgemodel-center_url": f"http://127.0.0.1:870{i}/a/very/long/path",
             "time": "t", "url": f"./workspace/job/fleet/{i}"}
            for i, name in enumerate(("small", "large"))]
    header = ["algorithm", "Accuracy", "Edge Ratio", "paradigm", "edgemodel-topology",
              "edgemodel-center_url", "time", "url"]
    text = render(TableView("job", rows, header, ["Accuracy", "Edge Ratio"], ["Accuracy"],
                            [True, False]), width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "rows marked SIM" in text and "| SIM" in text
    assert "small.yaml" in text and "[1] http://127.0.0.1:8700/a/very/long/path" in text


def test_a_rerun_prints_the_newest_rows(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    first = {r["url"] for r in _rows("all_rank.csv")}
    capsys.readouterr()
    report = BenchmarkRunner(JOB, progress=False, table=TableOptions(wide=True)).run()
    everything = _rows("all_rank.csv")
    assert len(everything) == 20  # all_rank.csv still accumulates, as Ianvs'
    newest = {r["url"] for r in everything} - first
    assert {r["url"] for r in _rows("selected_rank.csv")} == newest
    assert {r["url"] for r in report.standings.rows} == newest
    assert all(url in report.table for url in newest)
    assert not any(url in report.table for url in first)


def test_each_configuration_once_from_its_latest_run():
    key = ["algorithm", "edgemodel-model"]
    rows = [{"algorithm": "a", "edgemodel-model": "m1", "Accuracy": "80", "time": "2026-01-02"},
            {"algorithm": "a", "edgemodel-model": "m1", "Accuracy": "75", "time": "2026-01-03"},
            {"algorithm": "a", "edgemodel-model": "m2", "Accuracy": "70", "time": "2026-01-01"},
            {"algorithm": "a", "edgemodel-model": "m1", "Accuracy": "60", "time": "2026-01-01"}]
    assert [r["Accuracy"] for r in latest_rows(rows, key)] == ["75", "70"]


def test_confidence_columns_from_the_flag_and_the_rank_section(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress", "--confidence", "Accuracy"]) == 0
    out = capsys.readouterr().out
    assert "Acc±" in out and "Acc± = half the 95 % interval of Accuracy" in out
    edit(JOB, '    save_mode: "selected_and_all"',
         '    save_mode: "selected_and_all"\n    confidence: ["Edge Ratio"]')
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    assert "Edge%±" in capsys.readouterr().out
    edit(JOB, 'confidence: ["Edge Ratio"]', 'confidence: ["Edge Ration"]')
    assert main(["run", "-f", JOB, "--no-progress"]) == 2
    assert "key 'benchmarkingjob.rank.confidence[0]': 'Edge Ration' is not a metric" in \
        capsys.readouterr().err


def test_progress_off_a_terminal_is_plain_lines(example):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "edgellm", "run", "-f", JOB, "-j", "2"],
                          capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    err = done.stderr.decode()
    assert "\x1b" not in err and "\r" not in err
    lines = [line for line in err.splitlines() if " queries in " in line]
    assert len(lines) == 10 and all(line.startswith("[") for line in lines)
    assert "\x1b" not in done.stdout.decode() and "\r" not in done.stdout.decode()


def test_a_confidence_name_the_table_cannot_show_is_said(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    rows = len(_rows("all_rank.csv"))
    capsys.readouterr()
    # a misspelt name: one line naming the option, before anything runs or is written
    assert main(["run", "-f", JOB, "--no-progress", "--confidence", "Nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--confidence: 'Nope' is not a metric of the testenv" in err[0]
    assert len(_rows("all_rank.csv")) == rows
    assert main(["report", "-f", JOB, "--confidence", "Nope", "--out", "rep"]) == 2
    assert "--confidence: 'Nope'" in capsys.readouterr().err and not os.path.exists("rep")
    # a metric of the job that is not a column of its leaderboard: no column, and a note
    assert main(["report", "-f", JOB, "--confidence", "Request Throughput",
                 "--out", "rep"]) == 0
    out = capsys.readouterr().out
    assert "Request Throughput: no interval column (not a column of this leaderboard" in out


def test_a_narrow_table_keeps_the_columns_whose_interval_was_asked_for():
    rows = [{"algorithm": f"router-{i}", "Accuracy": "80.5", "Edge Ratio": "90.0",
             "Cloud Cost": "1.25", "edgemodel-model": f"m{i}", "time": "t", "url": "u"}
            for i in range(2)]
    header = ["algorithm", "Accuracy", "Edge Ratio", "Cloud Cost", "edgemodel-model",
              "time", "url"]
    view = TableView("job", rows, header, ["Accuracy", "Edge Ratio", "Cloud Cost"],
                     ["Accuracy"], [True, True])
    view.intervals = {"Cloud Cost": [None, None]}
    text = render(view, width=50)
    header = next(line for line in text.splitlines() if line.startswith("| #"))
    assert "| CloudUSD | CloudUSD± |" in header and "Edge%" not in header
    assert "not shown (--wide shows every selected column): Edge Ratio" in text


def test_rows_the_selected_columns_cannot_tell_apart_are_named():
    """Two configurations that differ only in a setting rank.selected_dataitem leaves
    out would print as the same row twice."""
    rows = [{"algorithm": "long-router", "Accuracy": acc, "paradigm": "jointinference",
             "hard_example_mining": "LengthRouter", "hard_example_mining-max_chars": chars,
             "edgemodel-model": "m7", "time": "t", "url": f"u{chars}"}
            for acc, chars in (("80.5", "100"), ("78.0", "200"))]
    rows.append({**rows[0], "edgemodel-model": "m3", "url": "u3"})
    header = ["algorithm", "Accuracy", "edgemodel-model", "time", "url"]
    for wide in (False, True):
        text = render(TableView("job", rows, header, ["Accuracy"], ["Accuracy"],
                                [True] * 3), width=120, wide=wide)
        assert "rows 1, 2: alike in every selected column; they differ in " \
               "hard_example_mining-max_chars" in text.replace("\n  ", " ")
    header.append("hard_example_mining-max_chars")
    assert "alike" not in render(TableView("job", rows, header, ["Accuracy"], ["Accuracy"],
                                           [True] * 3))


def test_a_sort_metric_no_pair_could_be_tested_for_noise_says_why():
    from edgellm.bench.confidence import leaderboard_view
    from edgellm.bench.rank import Standings

    rows = [{"algorithm": name, "Accuracy": acc, "paradigm": "jointinference", "url": ""}
            for name, acc in (("a", "80"), ("b", "70"))]
    view = leaderboard_view("job", Standings("f", ["algorithm", "Accuracy"], rows,
                                             ["Accuracy"], ["Accuracy"]))
    assert view.notes == ["Accuracy: adjacent rows not tested for noise (the row names no "
                          "case folder (url))"]
