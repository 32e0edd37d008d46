"""``edgellm calibrate`` against a server whose timing is known (the loopback one), its
bad input, and the clock figures it feeds: ``overhead_s``, a sample's own prompt
tokens, recorded answers replayed through the clock. The same against llama.cpp:
tests/test_llama_cpp.py."""

import pytest
import yaml

from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.fleet.simulator import FleetSimulator
from edgellm.fleet.topology import load_topology
from edgellm.live.calibration import measure, topology_for, topology_text
from edgellm.testing.openai_server import LoopbackOpenAIServer

FIRST, GAP = 0.05, 0.01


@pytest.fixture(scope="module")
def server():
    with LoopbackOpenAIServer(first_token_delay=FIRST, token_delay=GAP, completion_tokens=64,
                              send_usage=False, tokenize_endpoint=True,
                              models=("m1",)) as running:
        yield running


@pytest.fixture(scope="module")
def calibration(server):
    return measure(server.base_url, "m1", requests=2, concurrency=(1, 4),
                   prompt_words=(8, 64, 256), decode_tokens=24)


def test_calibration_finds_the_servers_timing(calibration):
    slope, overhead, _, square = calibration.prefill_fit()
    # the loopback server's first token leaves FIRST after the request, whatever its length
    assert overhead == pytest.approx(FIRST, abs=0.03)
    assert slope * 256 < 0.02 and square * 256 ** 2 < 0.02
    assert sorted(calibration.decode_speeds()) == pytest.approx([1 / GAP] * 2, rel=0.3)
    # its tokens take GAP whatever the context: no slowdown per token of context
    base, per_context = calibration.decode_fit()
    assert base == pytest.approx(1 / GAP, rel=0.3) and per_context * 500 < 0.3 * GAP
    assert {m.prompt_tokens for m in calibration.decode_long} != \
        {m.prompt_tokens for m in calibration.decode}
    # it answers requests in threads: four at once go nearly four times as fast
    assert calibration.speedup(4) > 2.0 and calibration.slots() == 4
    assert calibration.slowdown(4) == pytest.approx(1.0, abs=0.3)


def test_the_written_topology_is_the_clocks(calibration, tmp_path):
    spec = topology_for(calibration, "node-a", "Qwen/Qwen2.5-0.5B-Instruct", 8.0, "q4_0")
    text = topology_text(spec, calibration)
    assert "not measured (no --model-file)" in text
    spec = yaml.safe_load(text)
    assert spec["models"][0]["sizes_gb"] == {"q4_0": None}  # to be filled in
    spec["models"][0].update(sizes_gb={"q4_0": 0.4}, load_s_per_gb=2.0)
    path = tmp_path / "calibrated.yaml"
    path.write_text(yaml.safe_dump(spec))
    topology = load_topology(str(path))  # the calibration block does not bother it
    model, node = topology.models[0], topology.nodes[0]
    assert node.id == "node-a" and node.slots == 4 and node.speed == 1.0
    assert model.endpoint_model == "m1" and model.overhead_s == pytest.approx(FIRST, abs=0.03)
    assert model.decode_tokens_per_s == pytest.approx(1 / GAP, rel=0.3)
    block = spec["calibration"]
    assert block["decode_tokens_per_s"]["n"] == 2
    assert set(block["concurrency"]) == {1, 4} and block["concurrency"][4]["speedup"] > 2


def test_calibrate_bad_input_is_one_line(server, capsys):
    assert main(["calibrate", "--base-url", "http://127.0.0.1:9/v1", "--model", "m1"]) == 2
    assert main(["calibrate", "--base-url", server.base_url, "--model", "nope"]) == 2
    assert main(["calibrate", "--base-url", "ftp://somewhere", "--model", "m1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("edgellm: error:") for line in err)
    assert "no server answers" in err[0]
    assert "unknown model 'nope' (the server serves: m1)" in err[1]
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate", "--base-url", server.base_url, "--model", "m1",
              "--concurrency", "0,2"])
    assert exit_.value.code == 2


TOPOLOGY = """
name: one-node
nodes:
  - {id: a, memory_gb: 8, slots: 1, link: {bandwidth_mbps: 1000, rtt_ms: 0}, models: [m]}
models:
  - {id: m, profile: Qwen/Qwen2.5-0.5B-Instruct, sizes_gb: {q8_0: 0.5},
     load_s_per_gb: 1.0, prefill_tokens_per_s: 1000, decode_tokens_per_s: 50%s}
cloud: {profile: gpt-4o-mini}
"""


def _topology(tmp_path, extra="", slots=1):
    path = tmp_path / f"t{abs(hash(extra))}-{slots}.yaml"
    path.write_text(TOPOLOGY.replace("slots: 1", f"slots: {slots}") % extra)
    return load_topology(str(path))


def _replay(topology, tasks):
    """(TTFT, e2e) of recorded answers (arrival, prompt, completion tokens) on the clock."""
    simulator = FleetSimulator(topology, caching_every=10 ** 6)
    out = []
    for i, (arrival, prompt, completion) in enumerate(tasks):
        sample = {"id": i, "query": "x " * 500, "task_type": "question_answering",
                  "round": 0, "arrival_s": arrival, "prompt_tokens": prompt}
        answer = {"completion": "", "prediction": "", "usage": {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}}
        perf = simulator.serve_answered(sample, answer)["perf"]
        out.append((perf["time_to_first_token"], perf["e2e_latency"]))
    return out


def _expected(topology):
    """The center's expected latency for a task of 100 prompt tokens on an idle node."""
    simulator = FleetSimulator(topology, caching_every=10 ** 6)
    task = simulator._task({"id": 0, "query": "x", "task_type": "question_answering",
                            "round": 0, "arrival_s": 0.0, "prompt_tokens": 100})
    return simulator.center.place(task).expected_latency_s


def test_recorded_answers_replay_through_the_clock(tmp_path):
    """The sample's prompt tokens and the answer's completion tokens are what the clock
    charges (not the text's estimate), and a busy slot queues the next task."""
    plain = _topology(tmp_path)
    (ttft, e2e), (ttft2, e2e2) = _replay(plain, [(0.0, 100, 11), (0.05, 100, 11)])
    assert ttft == pytest.approx(0.1, abs=1e-4)
    assert e2e == pytest.approx(0.1 + 10 / 50, abs=1e-4)
    assert e2e2 == pytest.approx(2 * e2e - 0.05, abs=1e-4)  # waited for the first
    assert ttft2 == pytest.approx(e2e - 0.05 + 0.1, abs=1e-4)


def test_overhead_s_is_charged_before_the_prefill(tmp_path):
    plain = _topology(tmp_path)
    assert plain.models[0].overhead_s == 0.0  # the default changes nothing
    slow = _topology(tmp_path, ", overhead_s: 0.02")
    (base, base_e2e), = _replay(plain, [(0.0, 100, 11)])
    (ttft, e2e), = _replay(slow, [(0.0, 100, 11)])
    assert ttft - base == pytest.approx(0.02) and e2e - base_e2e == pytest.approx(0.02)
    # a request that waits pays its fixed cost while waiting: the second of two sent
    # together ends one service less that cost after the first (not a whole service)
    (_, first), (_, second) = _replay(slow, [(0.0, 100, 11), (0.0, 100, 11)])
    assert second - first == pytest.approx(first - 0.02, abs=1e-4)
    # one that comes 5 ms before the slot frees spends them on its fixed cost: no wait
    (_, first), (_, third) = _replay(slow, [(0.0, 100, 11), (first - 0.005, 100, 11)])
    assert third == pytest.approx(first, abs=1e-4)
    # the center expects what the clock charges: the queued task's expected latency
    simulator = FleetSimulator(slow, caching_every=10 ** 6)
    tasks = [simulator._task({"id": i, "query": "x", "task_type": "question_answering",
                              "round": 0, "arrival_s": 0.0, "prompt_tokens": 100})
             for i in range(2)]
    one, two = (simulator.center.place(t).expected_latency_s for t in tasks)
    assert two - one == pytest.approx(one - 0.02, abs=1e-5)  # less the upload (3 us)
    with pytest.raises(ConfigError, match="overhead_s': must be >= 0"):
        _topology(tmp_path, ", overhead_s: -1")


def test_a_backend_told_to_estimate_never_asks_the_tokenize_endpoint(server):
    """``tokenizer: estimate``: a one-request-at-a-time server would queue the counting
    calls behind the answers being timed (benchmarks/sim_to_real.py sends so)."""
    from edgellm.live.calibration import Prober

    for setting, source in ((None, "tokenize-endpoint"), ("estimate", "estimated")):
        prober = Prober(server.base_url, "m1", tokenizer=setting)
        try:
            generation = prober._backend(8).complete(prober.messages(5))
        finally:
            prober.close()
        assert generation.details["usage_source"] == source
        assert generation.completion_tokens == 8  # counted, or the chunks streamed


def test_load_slowdown_slows_requests_served_together(tmp_path):
    """``load_slowdown``: a request served together with others is slower, by the factor
    for their number, itself included; a request waiting for a slot costs nothing."""
    plain = _topology(tmp_path)
    assert plain.models[0].load_slowdown == () and plain.models[0].slowdown(5) == 1.0
    busy = _topology(tmp_path, ", load_slowdown: {3: 2.0}")
    assert busy.models[0].slowdown(2) == pytest.approx(1.5)  # linear from 1 at 1
    assert busy.models[0].slowdown(9) == pytest.approx(2.0)  # flat beyond
    tasks = [(0.0, 100, 11)] * 3  # each takes 0.1 + 0.2 s alone
    assert [e2e for _, e2e in _replay(plain, tasks)] == pytest.approx([0.3, 0.6, 0.9], abs=1e-4)
    # one slot: the second and third wait, and are served as fast as the first
    assert [e2e for _, e2e in _replay(busy, tasks)] == pytest.approx([0.3, 0.6, 0.9], abs=1e-4)
    # three slots: served together, the second with one other (1.5x), the third with two
    batching = _topology(tmp_path, ", load_slowdown: {3: 2.0}", slots=3)
    assert [e2e for _, e2e in _replay(batching, tasks)] == \
        pytest.approx([0.3, 0.45, 0.6], abs=1e-4)
    # the third arriving after the first finished is served with one other only
    later = [(0.0, 100, 11), (0.0, 100, 11), (0.35, 100, 11)]
    assert [e2e for _, e2e in _replay(batching, later)] == \
        pytest.approx([0.3, 0.45, 0.45], abs=1e-4)
    for extra, match in ((", load_slowdown: {0: 1.5}", r"whole numbers >= 1\), got 0"),
                         (", load_slowdown: {2: -1}", "load_slowdown.2': expected a "
                                                      "positive number")):
        with pytest.raises(ConfigError, match=match):
            _topology(tmp_path, extra)


def test_attention_terms_charge_long_contexts(tmp_path):
    """``prefill_s_per_token2`` adds to the prefill by the prompt's square;
    ``decode_s_per_context_token`` to every decoded token by its context (the prompt and
    the tokens before it: their mean, prompt + tokens / 2)."""
    (ttft, e2e), = _replay(_topology(tmp_path), [(0.0, 100, 11)])
    attention = _topology(tmp_path, ", prefill_s_per_token2: 1.0e-5, "
                                    "decode_s_per_context_token: 1.0e-4")
    (ttft2, e2e2), = _replay(attention, [(0.0, 100, 11)])
    assert ttft2 - ttft == pytest.approx(1e-5 * 100 ** 2, abs=1e-6)
    assert (e2e2 - ttft2) - (e2e - ttft) == pytest.approx(10 * 1e-4 * (100 + 5.5), abs=1e-6)
    model = attention.models[0]
    # (and the prompt's 3.2 µs on the link)
    assert model.prefill_s(100) + 10 * model.token_s(100, 11) == pytest.approx(e2e2, abs=1e-5)
    # the offloaders' view expects what the clock charges (for the length it expects)
    plain_s, attention_s = (_expected(t) for t in (_topology(tmp_path), attention))
    tokens = round((plain_s - 0.1) * 50 + 1)  # 0.1 s prefill, 50 tokens/s (and the link)
    assert attention_s - plain_s == pytest.approx(
        1e-5 * 100 ** 2 + (tokens - 1) * 1e-4 * (100 + tokens / 2), abs=1e-6)
    with pytest.raises(ConfigError, match="prefill_s_per_token2': must be >= 0"):
        _topology(tmp_path, ", prefill_s_per_token2: -1")


def test_calibration_writes_the_load_slowdown(calibration):
    spec = topology_for(calibration, "node-a", "Qwen/Qwen2.5-0.5B-Instruct", 8.0, "q4_0")
    # the loopback server answers in threads (slots 4): each request's decode slowdown
    assert list(spec["models"][0]["load_slowdown"]) == [4]
    assert spec["models"][0]["load_slowdown"][4] == pytest.approx(1.0, abs=0.3)


def test_the_live_simulated_engine_pays_the_fixed_cost_while_waiting(tmp_path, monkeypatch):
    """The live fleet's simulated engine charges as the clock does: a task that waited
    for a slot sleeps its prefill less the part of ``overhead_s`` it waited."""
    import asyncio

    from edgellm.live import engines

    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(engines, "sleep_at_least", sleep)
    topology = _topology(tmp_path, ", overhead_s: 0.02")
    engine = engines.SimulatedEngine(topology.nodes[0], topology, time_scale=2.0)
    sample = {"id": "q1", "query": "What is the capital of France?",
              "task_type": "question_answering", "round": 0}
    prefills = []
    for waited in (0.0, 0.015, 1.0):
        slept.clear()
        asyncio.run(engine.answer("m", sample, 100, waited_s=waited))
        prefills.append(slept[0])
    full = (0.02 + 100 / 1000) * 2.0  # the fixed cost and the prefill, times time_scale
    assert prefills == pytest.approx([full, full - 0.015, full - 0.04])


def test_the_clock_never_frees_a_slot_before_the_request_ahead_ends(tmp_path):
    """Behind a 0.26 s request: an empty answer (an error's) decodes nothing, and a
    real node's answer that failed in 1 ms (shorter than the fixed cost the clock let
    it pay while waiting) ends no earlier than the request ahead, with no negative
    busy time."""
    slow = _topology(tmp_path, ", overhead_s: 0.05")
    simulator = FleetSimulator(slow, caching_every=10 ** 6)

    def serve(i, completion, measured_e2e=None):
        sample = {"id": i, "query": "x", "task_type": "question_answering", "round": 0,
                  "arrival_s": 0.0, "prompt_tokens": 10}
        answer = {"completion": "", "prediction": "", "usage": {
            "prompt_tokens": 10, "completion_tokens": completion,
            "total_tokens": 10 + completion}}
        if measured_e2e is not None:
            answer.update(measured=True, perf={"time_to_first_token": measured_e2e,
                                               "e2e_latency": measured_e2e,
                                               "internal_token_latency": None})
        return simulator.serve_answered(sample, answer)["perf"]

    first = serve(0, 11)
    empty = serve(1, 0)  # its prefill alone: 0.05 + 10 / 1000 s
    assert empty["e2e_latency"] == pytest.approx(first["e2e_latency"] + 0.01, abs=1e-6)
    assert empty["e2e_latency"] == pytest.approx(empty["time_to_first_token"])
    failed = serve(2, 0, measured_e2e=0.001)
    assert failed["busy_s"] == 0.0
    assert simulator.states[0].actual.earliest() == pytest.approx(empty["e2e_latency"])


def test_the_live_engines_modelled_sleeps_never_end_early():
    """uvloop (the live agents' loop) fires a timer early when its cached time is stale:
    asked 0.9 ms on a loop kept busy 4 ms between sleeps, asyncio.sleep ended after
    0.07 ms in some tries; the engine's sleep waits out the rest."""
    import time

    uvloop = pytest.importorskip("uvloop")
    from edgellm.live.engines import sleep_at_least

    async def tries():
        slept = []
        for _ in range(150):
            busy = time.monotonic()
            while time.monotonic() - busy < 0.004:  # other coroutines' work
                pass
            start = time.monotonic()
            await sleep_at_least(0.0009)
            slept.append(time.monotonic() - start)
        return slept

    assert min(uvloop.run(tries())) >= 0.0009


def test_prefill_sizes_are_taken_in_turn_and_a_failing_size_ends_the_longer(server,
                                                                            monkeypatch):
    """A machine's speed drifts over a calibration's minute: sizes in turn, so that the
    drift moves all of them alike rather than bending the fitted curve; a size the
    server refuses (its context, most likely) drops it and the longer ones."""
    from edgellm.live import calibration as module

    asked, real_one = [], module.Prober.one

    def one(self, words, max_tokens):
        if max_tokens == 2:  # the prefill probes
            asked.append(words)
            if words >= 256:
                raise ConfigError(self.base_url, "the prompt is longer than the context")
        return real_one(self, words, max_tokens)

    monkeypatch.setattr(module.Prober, "one", one)
    said = []
    calibration = measure(server.base_url, "m1", requests=3, concurrency=(1,),
                          prompt_words=(512, 8, 64, 256), decode_tokens=8,
                          progress=said.append)
    assert asked == [8, 64, 256, 8, 64, 8, 64]
    assert len(calibration.prefill) == 6
    assert any("prompts of 256 words failed" in line for line in said)
