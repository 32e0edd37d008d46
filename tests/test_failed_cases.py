"""Through `edgellm run`, against the loopback server: a case whose requests (all, or
more than --max-failed-share of them) failed is a failed case, not ranked; a dead
endpoint fails the cases that use it within seconds, with one line; the console says
per case how many responses were replayed and how many called; nothing incomplete is
ever stored."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from edgellm.bench.case_requests import FailedRequests, check_failed_share, count_requests
from edgellm.cli import main
from edgellm.testing.openai_server import Fault, LoopbackOpenAIServer
from test_openai_backend import N_ITEMS, ROUTING, openai_job, ranked, records

EDGE_ONLY = f"{ROUTING}/edge-only.yaml"


@pytest.fixture(autouse=True)
def job_env(monkeypatch):
    for name in ("EDGELLM_STORE", "EDGELLM_STORE_MODE"):
        monkeypatch.delenv(name, raising=False)


def with_edge_only(job):
    """The job with the simulated edge-only cases (one per edge model: 3) after the
    openai one."""
    text = Path(job).read_text()
    Path(job).write_text(text.replace(
        '        url: "./examples/edge-llm-distribution/testalgorithms/query-routing/'
        'cloud-openai.yaml"\n',
        '        url: "./examples/edge-llm-distribution/testalgorithms/query-routing/'
        'cloud-openai.yaml"\n      - name: "edge-only"\n'
        f'        url: "./{EDGE_ONLY}"\n'))
    return job


class DeadServer:
    """Stands in for the loopback server at an address where nothing listens."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, never listening: refused, and ours
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_a_dead_endpoint_fails_its_case_in_one_line_and_the_others_are_ranked(example):
    with DeadServer() as dead:
        job = with_edge_only(openai_job(dead))
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "edgellm.cli", "run", "-f", job,
                                 "--no-progress"], capture_output=True, text=True)
    assert time.perf_counter() - start < 60
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert failed[0].startswith("FAILED test case 1/4 cloud-openai (CloudOnly, ")
    assert f"EndpointDown: {dead.base_url}/: 5 consecutive connection failures" in failed[0]
    assert "1 of 4 test cases failed; the others are ranked" in result.stderr
    assert [row["algorithm"] for row in ranked()] == ["edge-only"] * 3
    case_dirs = os.listdir("workspace/openai-job/cloud-openai")
    assert len(case_dirs) == 1
    assert os.path.exists(f"workspace/openai-job/cloud-openai/{case_dirs[0]}/error.txt")


def test_a_case_whose_every_request_failed_is_a_failed_case(example, capsys):
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001) as srv:
        srv.inject(Fault(500, times=None))  # reachable: the breaker stays shut
        job = with_edge_only(openai_job(srv, '\n        - max_retries:\n'
                                             '            values: [0]'))
        assert main(["run", "-f", job, "--no-progress"]) == 1
        assert srv.request_count == N_ITEMS
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert (f"FailedRequests: cloud model: {N_ITEMS} of {N_ITEMS} requests failed "
            "(first: InternalServerError: Error code: 500") in line
    assert [row["algorithm"] for row in ranked()] == ["edge-only"] * 3


def test_max_failed_share_sets_how_many_failures_fail_a_case(example, capsys):
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001) as srv:
        srv.inject(Fault(503, times=None, match="3x - 7 = 11"))  # 1 item of 40
        job = openai_job(srv, '\n        - max_retries:\n            values: [0]')
        assert main(["run", "-f", job, "--no-progress"]) == 0  # default: only if all fail
        assert main(["run", "-f", job, "--no-progress", "--max-failed-share", "0.05"]) == 0
        assert len(ranked()) == 2
        capsys.readouterr()
        assert main(["run", "-f", job, "--no-progress", "--max-failed-share", "0.01"]) == 1
    assert len(ranked()) == 2  # the third run is not ranked
    err = capsys.readouterr().err
    assert (f"FailedRequests: cloud model: 1 of {N_ITEMS} requests failed, more than "
            "--max-failed-share 0.01 allows (first: InternalServerError: Error code: 503 - "
            "Injected fault: HTTP 503. (after 1 attempt))") in err
    assert "1 of 1 test cases failed" in err


@pytest.mark.parametrize("value", ["1.5", "-0.1", "some"])
def test_max_failed_share_must_be_a_share(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-f", "job.yaml", "--max-failed-share", value])
    assert exit_.value.code == 2
    assert "--max-failed-share: expected a share between 0 and 1" in capsys.readouterr().err


def test_the_console_says_per_case_what_was_replayed_and_what_called(example, capsys):
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001) as srv:
        srv.inject(Fault(503, times=None, match="3x - 7 = 11"))
        job = with_edge_only(openai_job(srv, '\n        - max_retries:\n'
                                             '            values: [0]'))
        assert main(["run", "-f", job, "--no-progress"]) == 0
        first = capsys.readouterr().out
        assert main(["run", "-f", job, "--no-progress"]) == 0
        second = capsys.readouterr().out
    label = "test case 1/4 cloud-openai (CloudOnly, Qwen2.5-1.5B-Instruct, gpt-4o-mini)"
    # one line per case with a real model; the simulated edge-only cases say nothing new
    assert [line for line in first.splitlines() if line.startswith("test case ")] == [
        f"{label}: cloud model {N_ITEMS} called (1 failed), 0 replayed from the response "
        "store"]
    # the failed request was not stored: it is called again, the others replayed
    assert [line for line in second.splitlines() if line.startswith("test case ")] == [
        f"{label}: cloud model 1 called (1 failed), {N_ITEMS - 1} replayed from the "
        "response store"]


def test_nothing_incomplete_is_ever_stored(example, capsys):
    """Streams cut early (half of them, seeded) and a single retry: some requests
    fail, and every stored answer is the server's whole answer."""
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001) as srv:
        srv.inject(Fault("early", times=None, share=0.5, seed=1))
        job = openai_job(srv, '\n        - max_retries:\n            values: [1]')
        assert main(["run", "-f", job, "--no-progress"]) == 0
        (row,) = ranked()
        failed = [r for r in records(row) if r["cloud"]["error"]]
        assert 0 < len(failed) < N_ITEMS and row["Errors"] == str(len(failed))
        assert all(r["cloud"]["error"].startswith("IncompleteStream: ") for r in failed)
        with closing(sqlite3.connect("workspace/responses.sqlite")) as conn:
            rows = conn.execute("SELECT messages, response FROM responses").fetchall()
        assert len(rows) == N_ITEMS - len(failed)
        for messages, response in rows:
            tokens, _ = srv.completion_for(json.loads(messages))
            response = json.loads(response)
            assert response["completion"] == "".join(tokens)
            assert response["usage"]["completion_tokens"] == len(tokens)
            assert response["finish_reason"] == "stop"
        answered = [r["cloud"] for r in records(row) if not r["cloud"]["error"]]
        assert len(answered) == len(rows)
        assert all(r["usage"]["completion_tokens"] == 8 and r["finish_reason"] == "stop"
                   for r in answered)


def test_requests_are_counted_per_model_and_a_simulated_one_says_so():
    def response(replayed=False, error=None):
        return {"replayed": replayed, "error": error}

    results = [[False, response(), response(), None],
               [True, response(True), None, response(True)],
               [True, response(error="boom\nmore"), None, response(error="boom\nmore")],
               [True, response(), None, response()]]
    counts = count_requests(results, lambda side: side == "edge")
    assert "; ".join(c.describe() for c in counts.values()) == (
        "edge model simulated; cloud model 2 called (1 failed), 1 replayed from the "
        "response store")
    cloud = counts["cloud"]
    assert (cloud.total, cloud.failed, cloud.first_error) == (3, 1, "boom")
    check_failed_share(counts)  # not all failed
    check_failed_share(counts, 0.34)  # 1 of 3 is not more than 0.34
    with pytest.raises(FailedRequests, match="1 of 3 requests failed, more than "):
        check_failed_share(counts, 0.3)
    assert count_requests([[False, None, None, None]], lambda side: False) == {}
