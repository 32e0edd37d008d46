"""Runs under faults, for real: ``edgellm run`` processes side by side on one workspace.
Rank rows are never lost."""

import csv
import glob
import os
import re
import subprocess
import sys

from conftest import JOB
from edgellm.cli import main

OUT = "workspace/query-routing"


def edgellm(job, *args, **popen):
    return subprocess.Popen([sys.executable, "-m", "edgellm", "run", "-f", job,
                             "--no-progress", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def rows(job_out, name="all_rank.csv"):
    with open(f"{job_out}/rank/{name}", newline="") as handle:
        return list(csv.DictReader(handle))


def urls(ranked):
    return {os.path.normpath(r["url"]) for r in ranked}


def case_folders(job_out):
    return {p for p in glob.glob(f"{job_out}/*/*") if re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", os.path.basename(p))}


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
