"""The openai backend against our loopback OpenAI-compatible server: streamed timings,
token counts, concurrency, retries and backoff, timeouts, recorded failures, the API
key (checked up front, never stored), and a whole job through the runner and the
response store."""

import csv
import glob
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import EXAMPLE, edit, sample
from edgellm.cli import main
from edgellm.metrics.catalog import METRICS
from edgellm.models import check_backend
from edgellm.models.chat import messages_for
from edgellm.models.openai_compatible import OpenAICompatibleLLM, RetryPolicy
from edgellm.models.tokens import estimate_tokens
from edgellm.testing.openai_server import Fault, LoopbackOpenAIServer

FIRST_TOKEN = 0.1
PER_TOKEN = 0.01
TOKENS = 6


@pytest.fixture
def server():
    with LoopbackOpenAIServer(first_token_delay=0.02, token_delay=0.002,
                              completion_tokens=TOKENS) as srv:
        yield srv


@pytest.fixture
def backends():
    made = []

    def make(srv, **params):
        params = {"api_key_env": "none", "store": "none", "backoff_base": 0.02,
                  "tier": "cloud", **params}
        llm = OpenAICompatibleLLM("gpt-4o-mini", base_url=srv.base_url, **params)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        llm.close()


def expected(srv, s):
    tokens, lps = srv.completion_for(messages_for(s))
    return "".join(tokens), len(tokens), lps


# -- one request: timings and token counts -------------------------------------------


def test_streamed_timings_follow_the_server_and_counts_come_from_usage(backends):
    with LoopbackOpenAIServer(first_token_delay=FIRST_TOKEN, token_delay=PER_TOKEN,
                              completion_tokens=TOKENS) as srv:
        llm = backends(srv)
        s = sample(1)
        gen = llm.complete(messages_for(s))
        response = llm.generate(s)
    text, n, _ = expected(srv, s)
    assert gen.text == text and gen.completion_tokens == n == len(gen.token_times)
    assert gen.prompt_tokens == srv.prompt_tokens(messages_for(s))
    assert gen.details == {"usage_estimated": False, "usage_source": "server",
                           "finish_reason": "stop", "attempts": 1}
    # a token cannot arrive before the server sends it; loopback adds little more
    for i, t in enumerate(gen.token_times):
        assert t >= FIRST_TOKEN + i * PER_TOKEN
    assert gen.token_times[0] < FIRST_TOKEN + 0.1
    assert gen.e2e == gen.token_times[-1] < FIRST_TOKEN + (n - 1) * PER_TOKEN + 0.1

    perf = response["perf"]
    assert FIRST_TOKEN <= perf["time_to_first_token"] < FIRST_TOKEN + 0.1
    assert len(perf["itl"]) == n - 1
    assert perf["tpot"] == pytest.approx((perf["e2e_latency"] - perf["time_to_first_token"])
                                         / (n - 1))
    assert response["completion"] == text and response["prediction"] in "ABCD"
    assert response["usage"] == {"prompt_tokens": gen.prompt_tokens, "completion_tokens": n,
                                 "total_tokens": gen.prompt_tokens + n}
    assert response["error"] is None and response["replayed"] is False
    assert response["cost_usd"] > 0  # gpt-4o-mini's listed price
    assert "mean_logprob" not in response


def test_without_usage_the_backend_counts_chunks_and_says_so(backends):
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001, completion_tokens=5,
                              send_usage=False) as srv:
        s = sample(2)
        response = backends(srv).generate(s)
    assert response["usage"]["completion_tokens"] == 5 == len(response["perf"]["itl"]) + 1
    prompt = messages_for(s)[0]["content"]
    assert response["usage"]["prompt_tokens"] == estimate_tokens(prompt)
    assert response["usage_estimated"] is True


def test_logprobs_are_averaged_and_part_of_the_store_key(server, backends):
    s = sample(3)
    llm = backends(server, logprobs=True)
    response = llm.generate(s)
    _, _, lps = expected(server, s)
    assert response["mean_logprob"] == pytest.approx(sum(lps) / len(lps))
    assert llm.store_settings()["logprobs"] is True
    assert "logprobs" not in backends(server).store_settings()


def test_sampling_settings_reach_the_server(server, backends):
    response = backends(server, max_tokens=3).generate(sample(4))
    assert response["usage"]["completion_tokens"] == 3
    assert response["completion"] == "".join(server.completion_for(messages_for(sample(4)),
                                                                   max_tokens=3)[0])


# -- batches -----------------------------------------------------------------------------


@pytest.fixture
def slow_server():
    """Requests slow enough (0.1 s to the first token) to overlap even on a loaded
    machine, where 8 client threads may take tens of milliseconds to start."""
    with LoopbackOpenAIServer(first_token_delay=0.1, token_delay=0.002,
                              completion_tokens=TOKENS) as srv:
        yield srv


def test_concurrent_batch_gives_the_sequential_results(slow_server, backends):
    server = slow_server
    samples = [sample(i, query=f"Question: item {i}?\nA. w\nB. x\nC. y\nD. z")
               for i in range(16)]
    sequential = backends(server, max_concurrency=1).generate_batch(samples)
    assert server.max_in_flight == 1
    server.clear()

    llm = backends(server, max_concurrency=8)
    threads, done = set(), []

    def on_done(index, generation):
        threads.add(threading.current_thread())
        done.append(index)

    switch = sys.getswitchinterval()
    llm.complete_batch([messages_for(s) for s in samples], on_done)
    assert sys.getswitchinterval() == switch  # lowered only while requests run
    assert sorted(done) == list(range(16)) and threads == {threading.current_thread()}
    assert 4 <= server.max_in_flight <= 8
    server.clear()
    concurrent = llm.generate_batch(samples)
    assert server.request_count == 16

    def outputs(responses):
        return [(r["completion"], r["prediction"], r["usage"]) for r in responses]

    assert outputs(concurrent) == outputs(sequential)
    assert [r["completion"] for r in concurrent] == [expected(server, s)[0] for s in samples]
    assert len({r["completion"] for r in concurrent}) > 1


# -- retries, timeouts, failures ----------------------------------------------------------


def test_429_and_500_are_retried_with_exponential_backoff(server, backends):
    server.inject(Fault(429, times=2), Fault(500, times=1))
    response = backends(server, backoff_base=0.05).generate(sample(5))
    assert response["error"] is None and response["attempts"] == 4
    assert response["completion"] == expected(server, sample(5))[0]
    assert [r.fault for r in server.requests] == [429, 429, 500, None]
    arrived = [r.arrived for r in server.requests]
    for k, gap in enumerate(b - a for a, b in zip(arrived, arrived[1:])):
        cap = 0.05 * 2 ** k
        assert cap / 2 <= gap < cap + 0.15  # jittered in [cap/2, cap], plus the request


def test_retry_after_is_honoured(server, backends):
    server.inject(Fault(429, retry_after=0.2))
    response = backends(server, backoff_base=0.01).generate(sample(6))
    assert response["attempts"] == 2
    assert server.requests[1].arrived - server.requests[0].arrived >= 0.2


def test_retries_stop_at_the_bound_and_the_failure_is_recorded(server, backends):
    server.inject(Fault(500, times=None, match="item 3?"))
    samples = [sample(i) for i in range(6)]
    responses = backends(server, max_retries=2, max_concurrency=4).generate_batch(samples)
    failed = responses[3]
    assert failed["error"].startswith("InternalServerError: Error code: 500")
    assert failed["error"].endswith("(after 3 attempts)") and failed["attempts"] == 3
    assert failed["prediction"] is None and failed["cost_usd"] == 0.0
    assert sum(1 for r in server.requests if "item 3?" in r.prompt) == 3
    assert all(r["error"] is None for i, r in enumerate(responses) if i != 3)

    # counted as an error, left out of latency and accuracy, not scored as wrong
    y_pred = [[True, r, None, r] for r in responses]
    golds = [s["gold"] for s in samples]
    assert METRICS["Errors"](golds, y_pred) == 1
    ok = [r for r in responses if not r["error"]]
    assert METRICS["Time to First Token"](golds, y_pred) == pytest.approx(
        sum(r["perf"]["time_to_first_token"] for r in ok) / len(ok), abs=6e-4)  # rounded to ms
    correct = sum(r["prediction"] == s["gold"] for r, s in zip(responses, samples)
                  if not r["error"])
    assert METRICS["Accuracy"](golds, y_pred) == pytest.approx(100 * correct / 5, abs=0.01)


def test_client_errors_are_not_retried(server, backends):
    server.inject(Fault(400, message="unsupported parameter"))
    response = backends(server).generate(sample(7))
    assert response["attempts"] == 1 and server.request_count == 1
    assert response["error"] == ("BadRequestError: Error code: 400 - unsupported parameter "
                                 "(after 1 attempt)")


def test_a_malformed_reply_is_recorded_not_raised(server, backends):
    server.inject(Fault("malformed", match="item 1?"))
    responses = backends(server).generate_batch([sample(1), sample(2)])
    assert responses[0]["error"].startswith("JSONDecodeError: ")
    assert responses[0]["attempts"] == 1 and responses[1]["error"] is None


def test_a_timeout_is_retried_and_a_persistent_one_recorded(server, backends):
    server.inject(Fault("timeout", times=1))
    start = time.perf_counter()
    response = backends(server, timeout=0.15).generate(sample(8))
    assert response["error"] is None and response["attempts"] == 2
    assert 0.15 <= time.perf_counter() - start < 2.0

    server.inject(Fault("timeout", times=None))
    start = time.perf_counter()
    response = backends(server, timeout=0.1, max_retries=1).generate(sample(9))
    assert response["error"] == "APITimeoutError: Request timed out. (after 2 attempts)"
    assert 0.2 <= time.perf_counter() - start < 2.0
    assert sum(1 for r in server.requests if r.fault == "timeout") == 3


def test_backoff_is_bounded_and_jittered():
    policy = RetryPolicy(max_retries=9, backoff_base=0.5, backoff_max=4.0)
    for retry in range(9):
        cap = min(4.0, 0.5 * 2 ** retry)
        waits = [policy.delay(retry) for _ in range(50)]
        assert all(cap / 2 <= w <= cap for w in waits) and len(set(waits)) > 1
    assert policy.delay(0, retry_after=2.0) >= 2.0
    assert policy.delay(0, retry_after=60.0) <= 4.0


# -- the API key ---------------------------------------------------------------------------


def test_a_missing_key_is_a_clear_error_before_any_request(server, monkeypatch):
    monkeypatch.delenv("EDGELLM_TEST_KEY", raising=False)
    params = {"model": "gpt-4o-mini", "base_url": server.base_url,
              "api_key_env": "EDGELLM_TEST_KEY"}
    with pytest.raises(ValueError, match="environment variable EDGELLM_TEST_KEY is not set"):
        check_backend("openai", params)
    with pytest.raises(ValueError, match="EDGELLM_TEST_KEY"):
        OpenAICompatibleLLM(store="none", **params)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAICompatibleLLM.check({"model": "gpt-4o-mini"})
    assert server.request_count == 0

    monkeypatch.setenv("EDGELLM_TEST_KEY", "sk-test")
    check_backend("openai", params)
    check_backend("openai", {**params, "api_key_env": "none"})


@pytest.mark.parametrize("params, message", [
    ({"api_key": "sk-secret-1"}, "environment variable"),
    ({"api_key_env": "sk-secret-1"}, "name of an environment variable"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"timeout": "soon"}, "timeout"),
    ({"max_retries": -1}, "max_retries"),
    ({"base_url": "localhost:8000"}, "base_url"),
    ({"model": ""}, "model"),
])
def test_bad_settings_are_named_and_a_key_never_echoed(params, message):
    with pytest.raises(ValueError, match=message) as err:
        OpenAICompatibleLLM.check({"model": "m", "api_key_env": "none", **params})
    assert "sk-secret-1" not in str(err.value) and "\n" not in str(err.value)


def test_the_key_is_sent_but_never_stored(tmp_path, monkeypatch, backends):
    secret = "sk-test-" + os.urandom(8).hex()
    monkeypatch.setenv("EDGELLM_TEST_KEY", secret)
    store = tmp_path / "responses.sqlite"
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001,
                              api_key=secret) as srv:
        # a server that echoes the key in an error message
        srv.inject(Fault(500, times=None, match="item 2?", message=f"bad key {secret}"))
        llm = backends(srv, api_key_env="EDGELLM_TEST_KEY", store=str(store), max_retries=0)
        responses = llm.generate_batch([sample(i) for i in range(4)])
        llm.close()
        monkeypatch.setenv("EDGELLM_TEST_KEY", "sk-wrong")
        wrong = backends(srv, api_key_env="EDGELLM_TEST_KEY", store="none").generate(sample(5))
    assert [r["error"] is None for r in responses] == [True, True, False, True]
    assert responses[2]["error"] == ("InternalServerError: Error code: 500 - bad key *** "
                                     "(after 1 attempt)")
    assert wrong["error"].startswith("AuthenticationError: Error code: 401")
    assert wrong["attempts"] == 1
    text = json.dumps(responses + [wrong])
    assert secret not in text
    files = b"".join(Path(p).read_bytes() for p in glob.glob(f"{store}*"))
    assert responses[0]["completion"].encode() in files  # the store holds the answers
    assert secret.encode() not in files


# -- the server from the command line -------------------------------------------------------


def test_the_server_command_line_rejects_a_bad_fault():
    result = subprocess.run([sys.executable, "-m", "edgellm.testing.openai_server",
                             "--fail-status", "often"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--fail-status: a fault is an HTTP error status" in result.stderr


def test_the_server_runs_from_the_command_line():
    process = subprocess.Popen(
        [sys.executable, "-m", "edgellm.testing.openai_server", "--port", "0",
         "--model", "tiny"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        base_url = line.split(" at ", 1)[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as answer:
            assert [m["id"] for m in json.load(answer)["data"]] == ["tiny"]
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- a whole job through the runner ------------------------------------------------------------


JOB_YAML = """benchmarkingjob:
  name: "openai-job"
  workspace: "./workspace"
  testenv: "./examples/edge-llm-distribution/testenv/testenv.yaml"
  test_object:
    type: "algorithms"
    algorithms:
      - name: "cloud-openai"
        url: "./examples/edge-llm-distribution/testalgorithms/query-routing/cloud-openai.yaml"
  rank:
    sort_by: [{"Accuracy": "descend"}]
    visualization: {mode: "selected_only", method: "print_table"}
    selected_dataitem:
      paradigms: ["all"]
      modules: ["hard_example_mining"]
      hyperparameters: ["cloudmodel-model"]
      metrics: ["Accuracy", "Errors", "Time to First Token", "Cloud Completion Tokens"]
    save_mode: "selected_and_all"
"""
ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
DATA = f"{EXAMPLE}/dataset/mcq/test_data/data.jsonl"
N_ITEMS = 40  # of the example's 160: the client costs ~10 ms of CPU per request


def openai_job(srv, extra=""):
    """The example's cloud-only algorithm with its cloud model on the loopback server,
    on the first N_ITEMS items."""
    lines = Path(DATA).read_text(encoding="utf-8").splitlines(keepends=True)
    Path(DATA).write_text("".join(lines[:N_ITEMS]), encoding="utf-8")
    text = Path(f"{ROUTING}/cloud-only.yaml").read_text()
    Path(f"{ROUTING}/cloud-openai.yaml").write_text(text)
    edit(f"{ROUTING}/cloud-openai.yaml",
         'values: ["simulated"]\n        - model:\n            values: ["gpt-4o-mini"]',
         'values: ["openai"]\n        - model:\n            values: ["gpt-4o-mini"]\n'
         f'        - base_url:\n            values: ["{srv.base_url}"]\n'
         '        - api_key_env:\n            values: ["none"]\n'
         '        - max_concurrency:\n            values: [8]\n'
         '        - backoff_base:\n            values: [0.01]' + extra)
    job = f"{EXAMPLE}/openai-job.yaml"
    Path(job).write_text(JOB_YAML)
    return job


def ranked():
    with open("workspace/openai-job/rank/all_rank.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def records(row):
    with open(os.path.join(row["url"], "results.jsonl")) as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture
def job_env(monkeypatch):
    for name in ("EDGELLM_STORE", "EDGELLM_STORE_MODE"):
        monkeypatch.delenv(name, raising=False)


def test_a_job_runs_on_the_server_then_replays_from_the_store(example, job_env, capsys):
    with LoopbackOpenAIServer(first_token_delay=0.02, token_delay=0.001) as srv:
        job = openai_job(srv)
        assert main(["run", "-f", job, "--no-progress"]) == 0
        assert srv.request_count == N_ITEMS
        (row,) = ranked()
        # real inference: the row says so, and the table carries no SIMULATED label
        assert row["simulated"] == "False" and "SIMULATED" not in capsys.readouterr().out
        first = records(row)
        assert len(first) == N_ITEMS and all(r["is_hard"] for r in first)
        for record in first:
            cloud = record["cloud"]
            assert cloud["replayed"] is False and cloud["error"] is None
            assert cloud["attempts"] == 1 and cloud["model"] == "gpt-4o-mini"
            assert cloud["perf"]["time_to_first_token"] >= 0.02
            assert cloud["usage"]["completion_tokens"] == 8
        assert len({r["cloud"]["completion"] for r in first}) > 1
        assert row["Errors"] == "0"
        assert row["Cloud Completion Tokens"] == str(8 * N_ITEMS)
        assert float(row["Time to First Token"]) >= 0.02
        correct = sum(r["cloud"]["prediction"] == r["gold"] for r in first)
        assert float(row["Accuracy"]) == round(100 * correct / N_ITEMS, 2)

        assert main(["run", "-f", job, "--no-progress"]) == 0
        assert srv.request_count == N_ITEMS  # nothing asked again
    second = records(ranked()[-1])
    assert all(r["cloud"]["replayed"] is True for r in second)
    assert [r["cloud"]["completion"] for r in second] == [r["cloud"]["completion"]
                                                           for r in first]
    assert [r["cloud"]["perf"] for r in second] == [r["cloud"]["perf"] for r in first]
    assert ranked()[-1]["Accuracy"] == row["Accuracy"]


def test_a_job_counts_failed_requests_as_errors(example, job_env, capsys):
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001) as srv:
        srv.inject(Fault(503, times=None, match="3x - 7 = 11"))
        job = openai_job(srv, '\n        - max_retries:\n            values: [1]')
        assert main(["run", "-f", job, "--no-progress"]) == 0
        assert srv.request_count == N_ITEMS + 1
    (row,) = ranked()
    failed = [r for r in records(row) if r["cloud"]["error"]]
    assert len(failed) == 1 and row["Errors"] == "1"
    assert failed[0]["cloud"]["error"].startswith("InternalServerError: Error code: 503")
    assert row["Cloud Completion Tokens"] == str(8 * (N_ITEMS - 1))


def test_a_job_with_a_missing_key_stops_before_any_request(example, job_env, monkeypatch,
                                                            capsys):
    monkeypatch.delenv("EDGELLM_TEST_KEY", raising=False)
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001) as srv:
        job = openai_job(srv)
        edit(f"{ROUTING}/cloud-openai.yaml", 'values: ["none"]', 'values: ["EDGELLM_TEST_KEY"]')
        assert main(["run", "-f", job, "--no-progress"]) == 2
        assert srv.request_count == 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cloud-openai.yaml" in err
    assert "environment variable EDGELLM_TEST_KEY is not set" in err
    assert not os.path.exists("workspace/openai-job")
