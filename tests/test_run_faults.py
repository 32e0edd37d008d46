"""Runs under faults, for real: ``edgellm run`` processes side by side on one workspace,
interrupted with SIGINT, killed with SIGKILL. Rank rows are never lost, finished cases
are ranked, leftovers are cleaned up by the next run and no worker outlives its run."""

import csv
import glob
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import EXAMPLE, JOB, edit
from edgellm.cli import main

OUT = "workspace/query-routing"
CASES = 10
ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
ALGORITHMS = ("edge-only", "cloud-only", "random-router", "oracle-router")


def slow_cases(seconds):
    """Each test case of the example job takes ``seconds`` (or env SLOW_CASE_S) longer
    (its dataset processor waits, as a real model would take its time) and leaves a
    ``started-<pid>`` file when it starts."""
    with open(f"{ROUTING}/data_processor.py", "a") as handle:
        handle.write(f"""

import os
import time


class SlowProcessor(SampleProcessor):
    def __call__(self, dataset):
        open(f"started-{{os.getpid()}}", "a").close()
        time.sleep(float(os.environ.get("SLOW_CASE_S", {seconds})))
        return super().__call__(dataset)


ClassFactory.register_cls(SlowProcessor, ClassType.GENERAL, alias="SlowProcessor")
""")
    for name in ALGORITHMS:
        edit(f"{ROUTING}/{name}.yaml", '"SampleProcessor"', '"SlowProcessor"')


def edgellm(job, *args, **popen):
    return subprocess.Popen([sys.executable, "-m", "edgellm", "run", "-f", job,
                             "--no-progress", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def _sigint_default():
    # as from a terminal: a test suite started in the background (``cmd &`` without job
    # control) ignores SIGINT, and its children would inherit that and run to the end
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class VerboseRun:
    """``edgellm -v run`` in a new process group, its log lines read as they come
    (a case is done when the run says so: after its last file is written, a worker
    still hands the case back)."""

    def __init__(self, job, *args, env=None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgellm", "-v", "run", "-f", job, "--no-progress", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env={**os.environ, **(env or {})},
            preexec_fn=_sigint_default)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line)

    def finished_cases(self):
        return [line for line in self.lines if re.match(r"edgellm: test case .*: finished$",
                                                        line.strip())]

    def wait(self, timeout=120):
        self.process.wait(timeout)
        self._reader.join(timeout)
        return "".join(self.lines)


def wait_for(condition, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rows(job_out, name="all_rank.csv"):
    with open(f"{job_out}/rank/{name}", newline="") as handle:
        return list(csv.DictReader(handle))


def partials(job_out):
    return {p for p in glob.glob(f"{job_out}/*/*") if p.endswith(".partial")}


def urls(ranked):
    return {os.path.normpath(r["url"]) for r in ranked}


def case_folders(job_out):
    return {p for p in glob.glob(f"{job_out}/*/*") if re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", os.path.basename(p))}


def children(pid):
    found = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        with open(task) as handle:
            found += [int(p) for p in handle.read().split()]
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_concurrent_runs_lose_no_rank_row(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    # a leaderboard with history: each run's read-modify-write of it takes a while
    with open(f"{OUT}/rank/all_rank.csv") as handle:
        header, *history = handle.readlines()
    with open(f"{OUT}/rank/all_rank.csv", "w") as handle:
        handle.writelines([header, *history * 300])
    before = case_folders(OUT)
    runs = [edgellm(JOB, "--jobs", "1") for _ in range(8)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    ranked = rows(OUT)
    assert len(ranked) == 3000 + 80
    assert urls(ranked) == case_folders(OUT) and len(case_folders(OUT) - before) == 80
    assert all(os.path.isfile(f"{r['url']}/results.jsonl") for r in ranked)
    assert len(rows(OUT, "selected_rank.csv")) == 10  # same cases, rows deduplicated
    assert sorted(os.listdir(f"{OUT}/rank")) == ["all_rank.csv", "selected_rank.csv"]


@pytest.mark.parametrize("jobs, whole_group", [("2", True), ("1", True), ("2", False)],
                         ids=["workers-ctrl-c", "one-process-ctrl-c", "workers-sigint-to-run"])
def test_interrupted_run_ranks_what_finished(example, jobs, whole_group):
    slow_cases(1)
    run = VerboseRun(JOB, "--jobs", jobs)
    wait_for(run.finished_cases, what="a finished case")
    if whole_group:  # Ctrl-C: the terminal signals every process of the group
        os.killpg(run.process.pid, signal.SIGINT)
    else:
        run.process.send_signal(signal.SIGINT)
    err = run.wait()
    assert run.process.returncode == 130, err
    assert "Traceback" not in err
    ranked = rows(OUT)
    interrupted = re.search(rf"interrupted: (\d+) of {CASES} test cases did not finish", err)
    assert interrupted, err
    # (a case that finished as the signal came may be ranked before its line is logged)
    assert len(ranked) >= len(run.finished_cases()) >= 1
    assert len(ranked) + int(interrupted[1]) == CASES
    assert all(os.path.isfile(f"{r['url']}/results.jsonl") for r in ranked)
    # the interrupted cases leave no half-written folder behind
    assert not partials(OUT)
    assert case_folders(OUT) == urls(ranked)


def test_killed_run_takes_its_workers_along(example):
    slow_cases(300)  # cases that take minutes, as a real model's may
    run = edgellm(JOB, "--jobs", "2")
    workers = []
    try:
        wait_for(lambda: len(glob.glob("started-*")) == 2, what="two cases started")
        workers = children(run.pid)
        assert sorted(workers) == sorted(int(p.split("-")[1]) for p in glob.glob("started-*"))
        run.kill()
        run.wait()
        wait_for(lambda: not any(alive(p) for p in workers), timeout=10,
                 what="the workers to end with their run")
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_next_run_cleans_up_after_a_killed_run(example):
    slow_cases(1)
    # a live run in the same workspace, slower: what it is writing is its own
    live = VerboseRun(JOB, "--jobs", "1", env={"SLOW_CASE_S": "60"})
    try:
        live_partials = wait_for(lambda: partials(OUT), what="a live case")
        killed = VerboseRun(JOB, "--jobs", "2")
        wait_for(lambda: len(killed.finished_cases()) >= 2, what="two finished cases")
        os.killpg(killed.process.pid, signal.SIGKILL)  # kill -9, the run and its workers
        killed.wait()
        left = set(glob.glob(f"{OUT}/*/*")) - live_partials
        assert len(left) >= 2
        # what a writer killed mid-write leaves, and a case folder no rank row names
        os.makedirs(f"{OUT}/rank")
        with open(f"{OUT}/rank/.all_rank.csv.k2x8q1ab.tmp", "w") as handle:
            handle.write("rank,algorithm\n")
        unranked = f"{OUT}/edge-only/{uuid.uuid4()}"
        os.makedirs(unranked)
        with open(f"{unranked}/metrics.json", "w") as handle:
            handle.write("{}")

        # then a quick one-case run of the same job
        for name in ("edge-only", "random-router", "oracle-router"):
            edit(JOB, f'      - name: "{name}"\n        url: "./{ROUTING}/{name}.yaml"\n', "")
        edit(f"{ROUTING}/cloud-only.yaml", '"SlowProcessor"', '"SampleProcessor"')
        one_case = subprocess.run([sys.executable, "-m", "edgellm", "run", "-f", JOB,
                                   "--no-progress"], capture_output=True, text=True,
                                  timeout=300)
        assert one_case.returncode == 0, one_case.stderr
        assert all(os.path.isdir(p) for p in live_partials)
    finally:
        os.killpg(live.process.pid, signal.SIGINT)
        live_err = live.wait()
    assert live.process.returncode == 130, live_err

    report = one_case.stderr.strip().splitlines()
    assert len(report) == 1, report
    assert f"removed {len(left)} unfinished test case folders" in report[0]
    assert "1 temporary rank file" in report[0]
    assert f"1 test case folder is in no rank row: ./{unranked}" in report[0]
    assert not partials(OUT) and not left & case_folders(OUT)
    assert sorted(os.listdir(f"{OUT}/rank")) == ["all_rank.csv", "selected_rank.csv"]
    assert os.path.isdir(unranked)  # reported, not removed: it may be someone's results
    assert urls(rows(OUT)) == case_folders(OUT) - {unranked}


def test_ranked_folder_of_a_run_killed_while_ranking_is_restored(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    folder = rows(OUT)[0]["url"]
    # a run killed between writing its rank rows and moving their folders into place
    os.rename(folder, f"{folder}.4242-0badf00d.partial")
    capsys.readouterr()
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    assert "restored 1 ranked test case folder" in capsys.readouterr().err
    assert os.path.isfile(f"{folder}/results.jsonl")
    assert not partials(OUT)


@pytest.mark.parametrize("use_prctl", [True, False], ids=["prctl", "watchdog"])
def test_a_worker_dies_with_its_parent(tmp_path, use_prctl):
    """The kernel's parent-death signal, and the watchdog where it is not offered."""
    script = f"""
import os, time
from edgellm.bench.workers import die_with_parent

parent = os.getpid()
child = os.fork()
if child == 0:
    die_with_parent(parent, use_prctl={use_prctl})
    with open("child.tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.rename("child.tmp", "child")
    time.sleep(120)
    os._exit(0)
while not os.path.exists("child"):
    time.sleep(0.01)
"""  # the parent ends here, without waiting for its child
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=60, check=True)
    child = int((tmp_path / "child").read_text())
    try:
        wait_for(lambda: not alive(child), timeout=10, what="the child to end with its parent")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
