"""The whole job through the CLI: rank files, per-case folders, failures, determinism."""

import csv
import json
import os

from conftest import EXAMPLE, JOB, edit
from edgellm.cli import main

RANK = "workspace/query-routing/rank"
ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
N_ITEMS = 160
METRICS_9 = ["Accuracy", "Edge Ratio", "Time to First Token", "Throughput",
             "Internal Token Latency", "Cloud Prompt Tokens", "Cloud Completion Tokens",
             "Edge Prompt Tokens", "Edge Completion Tokens"]


def rows(name):
    with open(f"{RANK}/{name}", newline="") as handle:
        return list(csv.DictReader(handle))


def case_key(row):
    return (row["algorithm"], row["hard_example_mining"], row["edgemodel-model"])


def test_example_job_end_to_end(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "oracle-router" in out
    all_rows = rows("all_rank.csv")
    assert len(all_rows) == 10
    header = list(all_rows[0])
    assert header[:2] == ["rank", "algorithm"]
    assert header[-2:] == ["time", "url"]
    for column in ["paradigm", "dataset_processor", "edgemodel", "cloudmodel",
                   "hard_example_mining", "edgemodel-model", "edgemodel-backend",
                   "hard_example_mining-cloud_probability", *METRICS_9]:
        assert column in header
    accuracy = [float(r["Accuracy"]) for r in all_rows]
    assert accuracy == sorted(accuracy, reverse=True)
    assert [r["rank"] for r in all_rows] == [str(i) for i in range(1, 11)]

    by_case = {case_key(r): r for r in all_rows}
    for model in ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct"):
        oracle = float(by_case[("oracle-router", "OracleRouter", model)]["Accuracy"])
        edge = float(by_case[("edge-only", "EdgeOnly", model)]["Accuracy"])
        assert oracle > edge
        assert oracle > float(by_case[("cloud-only", "CloudOnly",
                                       "Qwen/Qwen2.5-1.5B-Instruct")]["Accuracy"])
    cloud = by_case[("cloud-only", "CloudOnly", "Qwen/Qwen2.5-1.5B-Instruct")]
    assert cloud["Edge Ratio"] == "0.0" and cloud["Edge Prompt Tokens"] == "0"

    # every row traces to its raw records
    for row in all_rows:
        folder = row["url"]
        with open(os.path.join(folder, "results.jsonl")) as handle:
            records = [json.loads(line) for line in handle]
        assert len(records) == N_ITEMS
        metrics = json.load(open(os.path.join(folder, "metrics.json")))
        assert str(metrics["Accuracy"]) == row["Accuracy"]
        edge_share = 100 * sum(not r["is_hard"] for r in records) / N_ITEMS
        assert float(row["Edge Ratio"]) == round(edge_share, 2)
        assert os.path.exists(os.path.join(folder, "config.yaml"))

    selected = rows("selected_rank.csv")
    assert list(selected[0]) == ["rank", "algorithm", "Accuracy", "Edge Ratio",
                                 "Time to First Token", "Throughput", "Internal Token Latency",
                                 "Cloud Prompt Tokens", "Cloud Completion Tokens",
                                 "Edge Prompt Tokens", "Edge Completion Tokens", "TTFT P99",
                                 "E2E Latency P99", "paradigm", "hard_example_mining",
                                 "edgemodel-model", "cloudmodel-model", "simulated", "time",
                                 "url"]
    # edgellm's own column: the simulated backend answered every row of this job
    assert {r["simulated"] for r in all_rows} == {"True"}


def test_same_job_twice_gives_identical_metrics_and_rows_accumulate(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    first = {case_key(r): {m: r[m] for m in METRICS_9} for r in rows("all_rank.csv")}
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    all_rows = rows("all_rank.csv")
    assert len(all_rows) == 20  # rows accumulate across runs, as in Ianvs
    for row in all_rows:
        assert {m: row[m] for m in METRICS_9} == first[case_key(row)]
    assert len(rows("selected_rank.csv")) == 10  # duplicates apart from time/url dropped


def test_seed_changes_outcomes(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    before = {case_key(r): r["Accuracy"] for r in rows("all_rank.csv")}
    for name in ("edge-only", "cloud-only", "random-router", "oracle-router"):
        edit(f"{ROUTING}/{name}.yaml", "- seed:\n            values: [0]",
             "- seed:\n            values: [1]")
    os.remove(f"{RANK}/all_rank.csv")
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    after = {case_key(r): r["Accuracy"] for r in rows("all_rank.csv")}
    assert before != after


def test_failing_case_is_reported_and_others_ranked(example, capsys):
    # a profile that loads (the checks before the run pass) but fails when it answers
    from edgellm.models.simulated import PROFILES_PATH

    with open(PROFILES_PATH) as handle:
        profiles = handle.read()
    template = 'answer_template: "The correct answer is {letter}. {option}"'
    assert template in profiles  # Qwen2.5-3B's: filled in when it answers
    with open("profiles.yaml", "w") as handle:
        handle.write(profiles.replace(template, template[:-1] + ' {oops}"'))
    edit(f"{ROUTING}/edge-only.yaml", "        - seed:\n            values: [0]\n",
         "        - seed:\n            values: [0]\n"
         "        - profiles_path:\n            values: [profiles.yaml]\n")
    assert main(["run", "-f", JOB, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "FAILED test case 2/10 edge-only (EdgeOnly, Qwen2.5-3B-Instruct, gpt-4o-mini)" in err
    assert "KeyError: 'oops'" in err and "error.txt" in err
    assert "1 of 10 test cases failed" in err
    assert len(rows("all_rank.csv")) == 9
    failed = [d for d in os.listdir("workspace/query-routing/edge-only")
              if os.path.exists(f"workspace/query-routing/edge-only/{d}/error.txt")]
    assert len(failed) == 1


def test_inference_then_mining_mode(example, capsys):
    edit(f"{EXAMPLE}/testenv/testenv.yaml", '"mining-then-inference"', '"inference-then-mining"')
    # the oracle needs the query's gold answer, which a router after inference never sees
    edit(JOB, "      - name: \"oracle-router\"\n        url: \"./examples/edge-llm-distribution/"
              "testalgorithms/query-routing/oracle-router.yaml\"\n", "")
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    by_case = {case_key(r): r for r in rows("all_rank.csv")}
    random_row = by_case[("random-router", "RandomRouter", "Qwen/Qwen2.5-1.5B-Instruct")]
    # edge answered every query first; the router then escalated some to the cloud
    assert random_row["Edge Prompt Tokens"] == by_case[
        ("edge-only", "EdgeOnly", "Qwen/Qwen2.5-1.5B-Instruct")]["Edge Prompt Tokens"]
    assert 0 < float(random_row["Edge Ratio"]) < 100
    assert int(random_row["Cloud Prompt Tokens"]) > 0


def test_parallel_workers_give_the_same_rows(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress", "--jobs", "1"]) == 0
    serial = {case_key(r): {m: r[m] for m in METRICS_9} for r in rows("all_rank.csv")}
    os.remove(f"{RANK}/all_rank.csv")
    assert main(["run", "-f", JOB, "--no-progress", "--jobs", "2"]) == 0
    parallel = rows("all_rank.csv")
    assert len(parallel) == 10
    assert {case_key(r): {m: r[m] for m in METRICS_9} for r in parallel} == serial
    assert all(os.path.exists(os.path.join(r["url"], "results.jsonl")) for r in parallel)


def test_rank_files_are_readable_like_any_file_the_user_writes(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(f"{RANK}/all_rank.csv").st_mode & 0o777 == 0o666 & ~umask


def test_auto_jobs_use_every_core_only_for_simulated_models(example, monkeypatch):
    from edgellm.bench.runner import BenchmarkRunner

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    runner = BenchmarkRunner(JOB, progress=False)
    assert runner.run().failed == []
    assert runner._workers == 3
    # an edge model module of the user's own might hold a GPU: one process
    with open(f"{ROUTING}/edge_model.py", "w") as handle:
        handle.write(
            "from edgellm.models.tiers import EdgeModel\n"
            "from edgellm.registry import ClassFactory, ClassType\n\n\n"
            "@ClassFactory.register(ClassType.GENERAL, alias='EdgeModel')\n"
            "class OwnEdgeModel:\n"
            "    def __init__(self, **params):\n"
            "        self.inner = EdgeModel(**params)\n\n"
            "    def predict(self, data, **kwargs):\n"
            "        return self.inner.predict(data)\n")
    runner = BenchmarkRunner(JOB, progress=False)
    assert runner.run().failed == []
    assert runner._workers == 1


def test_verbose_shows_the_library_log_lines(example, capsys):
    assert main(["-v", "run", "-f", JOB, "--no-progress", "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "edgellm: OracleRouter: both_right=" in err  # an INFO line of a router's cleanup
    assert main(["run", "-f", JOB, "--no-progress", "--jobs", "1"]) == 0
    assert "OracleRouter: both_right=" not in capsys.readouterr().err


def test_the_run_leaves_the_environment_as_it_found_it(example, monkeypatch):
    """The runner tells modules where they run through the run context; the one
    variable it sets for modules written for Ianvs (RESULT_SAVED_URL) is put back.
    (The example's edge_model.py sets sedna's two on import, as Ianvs' example does.)"""
    for name in ("RESULT_SAVED_URL", "BACKEND_TYPE", "model_path"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    assert main(["run", "-f", JOB, "--no-progress", "--jobs", "1",
                 "--store", "elsewhere.sqlite", "--store-mode", "record"]) == 0
    after = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "model_path")}
    assert after == before
