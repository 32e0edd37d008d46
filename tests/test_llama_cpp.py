"""llama.cpp for real: the tiny GGUF model made here loads and generates in llama.cpp,
the ``openai`` backend measures llama-cpp-python's server, ``edgellm calibrate`` turns
the server into topology figures, and an edge agent with ``--engine llama_cpp`` runs
the files its center sends, restarting the server when a caching round changes the
model. Everything listens on 127.0.0.1; every server is stopped by its test. Skipped
with one line without llama-cpp-python (``pip install 'edgellm[llamacpp]'``)."""

import hashlib
import os
import shutil
import signal
import time

import httpx
import psutil
import pytest
import yaml

from edgellm.live.llama_cpp_engine import LlamaServer, llama_cpp_available

if llama_cpp_available() is not None:  # one line for the whole file
    pytest.skip(f"llama.cpp tests need llama-cpp-python: {llama_cpp_available()}",
                allow_module_level=True)

TOKEN = "test-join-token-not-a-secret-elsewhere"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from edgellm.testing.tiny_gguf import build_tiny_gguf

    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf"))


@pytest.fixture(scope="module")
def server(tiny_gguf, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with LlamaServer(tiny_gguf["Q8_0"], "tiny", n_ctx=2048, log_path=str(log)) as running:
        yield running


def _processes_running(path):
    """Live processes whose command line names ``path``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if path in " ".join(process.info["cmdline"] or ()) and \
                    process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_the_tiny_model_loads_and_generates_in_every_quantisation(tiny_gguf):
    from llama_cpp import Llama

    sizes = {q: os.path.getsize(p) for q, p in tiny_gguf.items()}
    assert sizes["F16"] > sizes["Q8_0"] > sizes["Q4_0"]
    for path in tiny_gguf.values():
        llm = Llama(model_path=path, n_ctx=256, verbose=False)
        try:
            prompt = llm.tokenize(b"user: the river station\nassistant:")
            tokens = []
            for token in llm.generate(prompt, temp=0.0):
                tokens.append(token)
                if len(tokens) == 12:
                    break
            text = llm.detokenize(tokens).decode("utf-8")
            # whole words only, never the end of text, and the text counts back to them
            assert text.startswith(" ") and len(text.split()) == 12
            assert llm.tokenize(text.encode("utf-8"), add_bos=False) == tokens
        finally:
            llm.close()


def test_the_openai_backend_measures_the_llama_cpp_server(server, tmp_path):
    """The real-client check: counted tokens (the server's tokenize endpoint: it streams
    no usage) match its own count, TTFT and every gap are measured, four at once, and
    the response store replays the run."""
    from edgellm.models import create_backend
    from edgellm.models.chat import messages_for

    store = str(tmp_path / "responses.sqlite")
    samples = [{"id": i, "query": f"question {i}: where is the river station?",
                "task_type": "question_answering"} for i in range(6)]
    backend = create_backend("openai", model="tiny", base_url=server.base_url,
                             api_key_env="none", store=store, max_tokens=10,
                             max_concurrency=4)
    try:
        answered = backend.generate_batch(samples)
    finally:
        backend.close()
    for response in answered:
        assert response["error"] is None and response["usage_source"] == "tokenize-endpoint"
        assert response["usage"]["completion_tokens"] == 10
        perf = response["perf"]
        assert 0 < perf["time_to_first_token"] < perf["e2e_latency"]
        assert len(perf["itl"]) == 9 and all(gap >= 0 for gap in perf["itl"])
    # the server's own usage (not streamed) for the same request agrees, token for token
    body = {"model": "tiny", "messages": messages_for(samples[0]), "max_tokens": 10,
            "temperature": 0.0}
    plain = httpx.post(server.base_url + "/chat/completions", json=body, timeout=60).json()
    assert plain["usage"]["completion_tokens"] == answered[0]["usage"]["completion_tokens"]
    assert plain["choices"][0]["message"]["content"] == answered[0]["completion"]
    # the prompt count is the message's text: the chat template's own tokens are left out
    assert 0 < plain["usage"]["prompt_tokens"] - answered[0]["usage"]["prompt_tokens"] <= 12
    # llama-cpp-python serves one request at a time: the four ran one after another
    spans = sorted((r["perf"]["time_to_first_token"], r["perf"]["e2e_latency"])
                   for r in answered)
    assert spans[-1][0] > 2 * spans[0][1] * 0.8  # the last waited for others
    replay = create_backend("openai", model="tiny", base_url="http://127.0.0.1:9/v1",
                            api_key_env="none", store=store, store_mode="replay",
                            max_tokens=10)
    try:
        replayed = replay.generate_batch(samples)
    finally:
        replay.close()
    assert [r["completion"] for r in replayed] == [r["completion"] for r in answered]
    assert all(r["replayed"] for r in replayed)


def test_calibrate_writes_the_servers_figures(server, tiny_gguf, tmp_path, capsys):
    from edgellm.cli import main
    from edgellm.fleet.topology import load_topology

    out = tmp_path / "node.yaml"
    assert main(["calibrate", "--base-url", server.base_url, "--model", "tiny", "--node",
                 "laptop", "--out", str(out), "--requests", "3", "--concurrency", "1,4",
                 "--model-file", tiny_gguf["Q8_0"], "--load-runs", "1",
                 "--quantization", "q8_0"]) == 0
    topology = load_topology(str(out))
    model, node = topology.models[0], topology.nodes[0]
    assert node.id == "laptop" and node.slots == 1  # one request at a time
    assert model.load_slowdown == ()  # a request waiting its turn costs such a server nothing
    assert model.prefill_s_per_token2 >= 0 and model.decode_s_per_context_token >= 0
    assert model.size_gb == pytest.approx(os.path.getsize(tiny_gguf["Q8_0"]) / 1e9, rel=1e-6)
    assert model.prefill_tokens_per_s > model.decode_tokens_per_s > 1
    assert 0 < model.size_gb * model.load_s_per_gb < 60
    block = yaml.safe_load(out.read_text())["calibration"]
    assert block["load_s"]["n"] == 1 and block["concurrency"][4]["speedup"] < 1.25
    after_long = block["decode_tokens_per_s_after_long_prompt"]
    assert after_long["n"] == 3 and min(after_long["prompt_tokens"]) > max(
        block["prefill_tokens_per_s"]["prompt_tokens"]) / 4


def _fleet_topology(folder, files):
    """One node that holds one of the two quantisations; question answering prefers
    the Q8_0 file, so the first caching round moves it there."""
    sizes = {q: os.path.getsize(files[q]) / 1e9 for q in ("Q4_0", "Q8_0")}
    models_dir = folder / "center-models"
    models_dir.mkdir()
    for quant, model_id in (("Q4_0", "tiny-q4"), ("Q8_0", "tiny-q8")):
        shutil.copy(files[quant], models_dir / f"{model_id}.gguf")
    spec = {"name": "llama-fleet", "nodes": [{
        "id": "edge-a", "memory_gb": round(max(sizes.values()) * 1.2, 6), "slots": 1,
        "link": {"bandwidth_mbps": 1000, "rtt_ms": 0}, "models": ["tiny-q4"]}],
        "models": [{"id": model_id, "profile": "Qwen/Qwen2.5-0.5B-Instruct",
                    "sizes_gb": {quant.lower(): sizes[quant]}, "load_s_per_gb": 500,
                    "prefill_tokens_per_s": 2000, "decode_tokens_per_s": 100,
                    "quality": {"question_answering": q_quality}}
                   for quant, model_id, q_quality in (("Q4_0", "tiny-q4", 0.2),
                                                      ("Q8_0", "tiny-q8", 0.6))],
        "cloud": {"profile": "gpt-4o-mini"}}
    path = folder / "topology.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path), str(models_dir)


def test_an_agent_runs_the_gguf_its_center_sends(tiny_gguf, tmp_path):
    from edgellm.fleet.topology import load_topology
    from edgellm.live.client import LiveFleet
    from edgellm.testing.live_fleet import LocalCenter, spawn_agent, stop_agents

    topology_path, models_dir = _fleet_topology(tmp_path, tiny_gguf)
    topology = load_topology(topology_path)
    node_dir = tmp_path / "edge-a"
    with LocalCenter(topology_path, models_dir, TOKEN, make_placeholders=False,
                     heartbeat_s=0.2, not_ready_after_s=10, unreachable_after_s=20) \
            as center:
        agent = spawn_agent(center.url, "edge-a", TOKEN, str(node_dir), engine="llama_cpp",
                            extra=("--max-tokens", "6", "--n-ctx", "512"))
        try:
            center.wait_for(lambda seen: seen.get("edge-a", {}).get("models_ready") ==
                            ["tiny-q4"], 120, "the agent serving tiny-q4")
            first_server = _processes_running(str(node_dir / "tiny-q4.gguf"))
            assert len(first_server) == 1  # its llama_cpp.server, on the file it received
            live = LiveFleet(topology, center.url, offloader="QualityGreedy", caching="LFU",
                             caching_every=1, slo_s=None, seed=0)
            samples = [{"id": i, "query": f"Question: where is station {i}?",
                        "gold": "north", "task_type": "question_answering",
                        "round": i // 2, "arrival_s": float(i // 2)} for i in range(4)]
            answered = live.serve_batch(samples)
            live.finish_round()
            events = httpx.get(center.url + "/api/events?kind=transfer_done").json()
            nodes = center.nodes()
        finally:
            stop_agents([agent])
        deadline = time.monotonic() + 10
        while _processes_running(str(node_dir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes_running(str(node_dir))  # its servers stopped with it
    assert [r["model"] for r in answered] == ["tiny-q4"] * 2 + ["tiny-q8"] * 2
    for response in answered:  # real generated text, counted
        assert response["error"] is None and len(response["completion"].split()) == 6
        assert response["usage"]["completion_tokens"] == 6
        assert 0 < response["perf"]["time_to_first_token"] <= response["perf"]["e2e_latency"]
    assert nodes["edge-a"]["models_ready"] == ["tiny-q8"]
    # the caching round moved the real file, byte for byte, and the server restarted on it
    installed = node_dir / "tiny-q8.gguf"
    with open(installed, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    assert digest == center.hub.store.get("tiny-q8").sha256
    assert any("edge-a installed tiny-q8" in e["message"] and "loaded in" in e["message"]
               for e in events)
    moved = [t for r in answered for t in (r.get("fleet") or {}).get("transfers", ())]
    assert [t["model"] for t in moved] == ["tiny-q8"] and moved[0]["load_s"] > 0
    assert not (node_dir / "tiny-q4.gguf").exists()  # evicted


def test_a_server_dies_with_its_agent(tiny_gguf, tmp_path):
    """``kill -9`` of the agent: the kernel ends its llama.cpp server too."""
    from edgellm.testing.live_fleet import LocalCenter, spawn_agent, stop_agents

    topology_path, models_dir = _fleet_topology(tmp_path, tiny_gguf)
    node_dir = tmp_path / "edge-a"
    with LocalCenter(topology_path, models_dir, TOKEN, make_placeholders=False) as center:
        agent = spawn_agent(center.url, "edge-a", TOKEN, str(node_dir), engine="llama_cpp")
        try:
            center.wait_for(lambda seen: seen.get("edge-a", {}).get("models_ready") ==
                            ["tiny-q4"], 120, "the agent serving tiny-q4")
            servers = _processes_running(str(node_dir / "tiny-q4.gguf"))
            assert len(servers) == 1
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait()
            gone, alive = psutil.wait_procs(servers, timeout=10)
            assert not alive
        finally:
            stop_agents([agent])
