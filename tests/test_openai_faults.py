"""Faults on the wire: what the loopback server injects (each fault, a seeded share of
requests) and what the openai backend makes of each: a retry, a recorded error, never
a broken answer scored or stored; and the circuit breaker on a dead endpoint."""

import json
import socket
import sqlite3
import time
import urllib.request
from contextlib import closing

import pytest

from conftest import sample
from edgellm.models.chat import messages_for
from edgellm.models.openai_compatible import EndpointDown, OpenAICompatibleLLM, _endpoint
from edgellm.testing.openai_server import Fault, LoopbackOpenAIServer

TOKENS = 6


@pytest.fixture
def server():
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.002,
                              completion_tokens=TOKENS, hang_s=3.0) as srv:
        yield srv


@pytest.fixture
def backends():
    made = []

    def make(srv_or_url, **params):
        params = {"api_key_env": "none", "store": "none", "backoff_base": 0.01,
                  "backoff_max": 0.05, "timeout": 1.0, "tier": "cloud", **params}
        url = getattr(srv_or_url, "base_url", srv_or_url)
        llm = OpenAICompatibleLLM("gpt-4o-mini", base_url=url, **params)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        llm.close()


def full_answer(srv, s):
    return "".join(srv.completion_for(messages_for(s))[0])


def post(srv, prompt, stream=True, include_usage=True):
    """Raw POST: (status, the body's data lines)."""
    body = {"model": "m", "stream": stream,
            "messages": [{"role": "user", "content": prompt}]}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    req = urllib.request.Request(f"{srv.base_url}/chat/completions",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            text = answer.read().decode()
            status = answer.status
    except urllib.error.HTTPError as err:
        return err.code, [err.read().decode()]
    except Exception as err:  # a dropped connection
        return type(err).__name__, []
    return status, [line[6:] for line in text.splitlines() if line.startswith("data: ")]


# -- the server's faults ---------------------------------------------------------------


def test_a_fault_hits_a_seeded_share_of_requests(server):
    def hits(seed):
        server.clear()
        server.inject(Fault(500, times=None, share=0.3, seed=seed))
        return [post(server, f"q{i}", stream=False)[0] == 500 for i in range(60)]

    first = hits(seed=7)
    assert 8 <= sum(first) <= 30  # ~18 of 60
    assert hits(seed=7) == first  # seeded: the same requests again
    assert hits(seed=8) != first
    assert [r.fault for r in server.requests].count(500) == sum(hits(seed=8))


def test_stream_faults_break_the_stream_as_named(server):
    def events(kind):
        server.clear()
        server.inject(Fault(kind, after=2))
        return post(server, "Question: x?\nA. a\nB. b")

    status, data = events("early")  # clean end after 2 tokens: no finish, usage or [DONE]
    chunks = [json.loads(d) for d in data]
    assert status == 200 and len(chunks) == 3  # the role chunk and 2 tokens
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    status, data = events("malformed")
    assert status == 200 and data[-1] == "{not json"
    status, data = events("reset")
    assert status == "IncompleteRead"  # the connection dropped mid-body
    status, data = events("undercount")
    usage = json.loads(data[-2])["usage"]
    assert usage["completion_tokens"] == TOKENS - 1 and data[-1] == "[DONE]"
    status, data = events("no_usage")
    assert data[-1] == "[DONE]" and all(json.loads(d).get("usage") is None for d in data[:-1])
    assert json.loads(data[-2])["choices"][0]["finish_reason"] is not None
    server.clear()
    assert post(server, "fine")[1][-1] == "[DONE]"
    # stream faults leave non-streamed requests alone
    server.inject(Fault("early", times=None))
    assert post(server, "fine", stream=False)[0] == 200


def test_a_stall_mid_stream_holds_the_connection(server):
    server.hang_s = 0.4
    server.inject(Fault("stall", after=1))
    start = time.perf_counter()
    status, data = post(server, "q")
    assert time.perf_counter() - start >= 0.4
    assert len(data) == 2  # the role chunk and 1 token, then nothing until it gave up


# -- what the backend makes of them --------------------------------------------------------


@pytest.mark.parametrize("kind", ["early", "reset", "stall", "undercount"])
def test_a_broken_stream_is_retried_and_the_answer_is_whole(server, backends, kind):
    server.inject(Fault(kind, times=2, after=2))
    s = sample(1)
    response = backends(server).generate(s)
    assert response["error"] is None and response["attempts"] == 3
    assert response["completion"] == full_answer(server, s)
    assert response["usage"]["completion_tokens"] == TOKENS
    assert response["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize("kind", ["early", "reset", "undercount"])
def test_a_stream_that_stays_broken_is_an_error_never_stored(server, backends, kind, tmp_path):
    store = tmp_path / "responses.sqlite"
    server.inject(Fault(kind, times=None, match="item 2?"))
    samples = [sample(i) for i in range(4)]
    responses = backends(server, store=str(store), max_retries=2).generate_batch(samples)
    failed = responses[2]
    assert failed["error"] and failed["attempts"] == 3
    assert failed["prediction"] is None and failed["cost_usd"] == 0.0
    assert [r["error"] is None for r in responses] == [True, True, False, True]
    with closing(sqlite3.connect(store)) as conn:
        stored = [json.loads(r) for (r,) in conn.execute("SELECT response FROM responses")]
    assert sorted(r["completion"] for r in stored) == sorted(
        full_answer(server, s) for i, s in enumerate(samples) if i != 2)


def test_the_early_end_error_says_what_was_missing(server, backends):
    server.inject(Fault("early", times=None, after=2))
    response = backends(server, max_retries=1).generate(sample(1))
    assert response["error"] == ("IncompleteStream: the stream ended without a "
                                 "finish_reason after 2 content chunks (after 2 attempts)")


def test_usage_goes_missing_after_the_server_sent_it(server, backends):
    llm = backends(server, max_retries=0)
    assert llm.generate(sample(1))["usage_estimated"] is False  # the server sends usage
    server.inject(Fault("no_usage"))
    response = llm.generate(sample(2))
    assert response["error"].startswith("IncompleteStream: the stream carried no usage")
    # a server that never sends usage keeps working, with estimated counts
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.001,
                              send_usage=False) as plain:
        responses = backends(plain).generate_batch([sample(i) for i in range(3)])
    assert all(r["error"] is None and r["usage_estimated"] for r in responses)


def test_a_share_of_early_ends_costs_retries_not_answers(server, backends, tmp_path):
    """The issue's run: 30 % of streams cut after 2 tokens. Every answer is whole (or
    an error), and the store holds whole answers only."""
    store = tmp_path / "responses.sqlite"
    server.inject(Fault("early", times=None, share=0.3, seed=3))
    samples = [sample(i) for i in range(40)]
    responses = backends(server, store=str(store), max_concurrency=4).generate_batch(samples)
    cut = sum(1 for r in server.requests if r.fault == "early")
    assert cut >= 5
    assert sum(r["attempts"] - 1 for r in responses) == cut
    for s, r in zip(samples, responses):
        assert r["error"] is None and r["completion"] == full_answer(server, s)
    with closing(sqlite3.connect(store)) as conn:
        rows = conn.execute("SELECT messages, response FROM responses").fetchall()
    assert len(rows) == 40
    answers = {json.dumps(messages_for(s)): full_answer(server, s) for s in samples}
    for messages, response in rows:
        assert json.loads(response)["completion"] == answers[json.dumps(json.loads(messages))]


# -- the circuit breaker -------------------------------------------------------------------


@pytest.fixture
def dead_url():
    """An address where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: no one else gets the port
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def count_attempts(llm):
    attempts = []
    stream = llm._stream

    def counted(messages):
        attempts.append(1)
        return stream(messages)

    llm._stream = counted
    return attempts


def test_a_dead_endpoint_stops_after_n_connection_failures(dead_url, backends, monkeypatch):
    monkeypatch.setenv("EDGELLM_DEAD_KEY", "sk-never-shown-42")
    llm = backends(dead_url, max_connection_failures=3, max_concurrency=1,
                   api_key_env="EDGELLM_DEAD_KEY")
    attempts = count_attempts(llm)
    start = time.perf_counter()
    with pytest.raises(EndpointDown) as err:
        llm.generate_batch([sample(i) for i in range(200)])
    assert len(attempts) == 3 and time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message and dead_url in message
    assert "3 consecutive connection failures" in message and "Connection refused" in message
    assert "sk-never-shown-42" not in message


def test_the_breaker_default_is_five_and_concurrency_adds_only_what_was_in_flight(
        dead_url, backends):
    llm = backends(dead_url, max_concurrency=4)
    attempts = count_attempts(llm)
    with pytest.raises(EndpointDown, match="5 consecutive connection failures"):
        llm.generate_batch([sample(i) for i in range(200)])
    assert 5 <= len(attempts) < 5 + 4


def test_failures_that_are_not_connection_failures_never_open_the_breaker(server, backends):
    # the server is up: 500s and dropped streams are retried, never "endpoint down"
    server.inject(Fault(500, times=4), Fault("reset", times=4))
    llm = backends(server, max_connection_failures=2, max_retries=10)
    response = llm.generate(sample(1))
    assert response["error"] is None and response["attempts"] == 9


def test_the_breaker_can_be_turned_off(dead_url, backends):
    llm = backends(dead_url, max_connection_failures=0, max_retries=1, max_concurrency=1)
    responses = llm.generate_batch([sample(i) for i in range(7)])
    assert all(r["error"].startswith("APIConnectionError") for r in responses)


def test_the_breaker_setting_is_checked():
    with pytest.raises(ValueError, match="max_connection_failures"):
        OpenAICompatibleLLM.check({"model": "m", "api_key_env": "none",
                                   "max_connection_failures": -1})


def test_the_endpoint_named_carries_no_credentials():
    assert _endpoint("https://user:sk-123@api.example.com:8443/v1/?api-key=sk-123") == \
        "https://api.example.com:8443/v1/"
    assert _endpoint("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
