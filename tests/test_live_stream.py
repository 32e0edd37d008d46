"""The task stream between the center and its agents (one WebSocket per agent, live/
stream.py and live/agent_stream.py): runs answered through it, under a reverse proxy's
prefix and after the center restarts; its authentication (close code 4410, and the
agent registering again); one stream per node; result batches kept until acked; the
HTTP transport, and the fallback to it from a center without streams. Loopback only;
every server and process is stopped by the test."""

import asyncio
import threading
import time

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import EXAMPLE, REPO
from edgellm.fleet.topology import load_topology
from edgellm.live import agent_stream
from edgellm.live.agent_stream import TaskStream
from edgellm.live.client import LiveFleet
from edgellm.testing.live_fleet import (LocalCenter, free_port, spawn_agent, spawn_fleet,
                                        stop_agents)
from edgellm.web.server import Server

SMALL = str(REPO / EXAMPLE / "testalgorithms/multi-edge-offloading/topologies/small.yaml")
TOKEN = "test-join-token-for-the-stream"
FAST = dict(heartbeat_s=0.2, not_ready_after_s=0.8, unreachable_after_s=1.5)


def samples(n, per_round=3):
    return [{"id": i, "query": f"Question: what is the capital of France? ({i})",
             "gold": "Paris", "task_type": "QA", "round": i // per_round,
             "arrival_s": float(i // per_round)} for i in range(n)]


def run_through(center, n=9):
    live = LiveFleet(load_topology(SMALL), center.url, offloader="RoundRobin",
                     caching="Static", caching_every=5, slo_s=None, seed=0)
    answered = live.serve_batch(samples(n))
    live.finish_round()
    assert len(answered) == n and all(r is not None and r["live"] for r in answered)
    return answered


def streaming(nodes):
    return len(nodes) == 3 and all(
        v["state"] == "READY" and v["models_ready"] and v["transport"] == "stream"
        for v in nodes.values())


def register(url, node_id):
    response = httpx.post(url + "/api/register", json={"node_id": node_id},
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return response.json()["node_token"]


def stream_url(url, node_id):
    return url.replace("http://", "ws://") + f"/api/stream?node_id={node_id}"


def test_runs_go_through_the_streams_under_a_prefix_and_after_a_restart(tmp_path):
    port = free_port()
    settings = dict(port=port, prefix="/edgellm", time_scale=0.05, **FAST)
    center = LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, **settings).start()
    agents = {}
    try:
        agents = spawn_fleet(center, SMALL, TOKEN, str(tmp_path))
        center.wait_for(streaming, 20, "three agents streaming")
        answered = run_through(center)
        assert any(r["tier"] == "edge" for r in answered)
        # no agent polled over HTTP meanwhile (that marks its node "http")
        assert all(n["transport"] == "stream" for n in center.nodes().values())
        assert sorted(center.app.state.streams.open) == sorted(agents)
        # the center restarts on the same port, knowing no node: the streams drop, the
        # agents register again (4410 on the stream, 410 on a heartbeat) and stream again
        center.stop()
        center = LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, **settings).start()
        center.wait_for(streaming, 30, "the agents streaming to the new center")
        run_through(center)
        assert all(n["transport"] == "stream" for n in center.nodes().values())
    finally:
        stop_agents(agents.values())
        center.stop()


def test_the_stream_needs_a_current_node_token_and_is_one_per_node(tmp_path):
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, **FAST) as center:
        url = stream_url(center.url, "orin-nano")

        async def close_code(socket):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
            return closed.value.rcvd.code

        async def refused(url, token):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with connect(url, additional_headers=headers) as socket:
                return await close_code(socket)

        async def scenario():
            for node, token in [("orin-nano", None), ("orin-nano", "guessed"),
                                ("nope", "guessed")]:
                assert await refused(stream_url(center.url, node), token) == 4410
            token = register(center.url, "orin-nano")
            auth = {"Authorization": f"Bearer {token}"}
            async with connect(url, additional_headers=auth) as first:
                assert orjson.loads(await first.recv()) == {
                    "tasks": [], "target": ["qwen2.5-1.5b"], "state": "READY"}
                assert center.nodes()["orin-nano"]["transport"] == "stream"
                # a batch is acked once taken (no run: its result is dropped, as over
                # HTTP); a NaN from a client writing json's NaN is read too
                await first.send('{"batch": 7, "results": [{"task_id": 1, "x": NaN}]}')
                assert orjson.loads(await first.recv()) == {"acked": 7}
                async with connect(url, additional_headers=auth) as second:
                    await second.recv()
                    assert await close_code(first) == 4409  # replaced by the newer one
                    # registering again voids the token its stream was opened with
                    register(center.url, "orin-nano")
                    assert await close_code(second) == 4410
            assert center.nodes()["orin-nano"]["transport"] is None
            token = register(center.url, "orin-nano")
            async with connect(url, additional_headers={
                    "Authorization": f"Bearer {token}"}) as socket:
                await socket.recv()
                await socket.send(b"not json")
                assert await close_code(socket) == 1007

        asyncio.run(scenario())


def test_heartbeats_ride_on_the_stream(tmp_path):
    """A node whose heartbeats come only on its stream stays READY with its reported
    load; silent, it goes NOT_READY and UNREACHABLE as over HTTP, and its next heartbeat
    on the stream gets 4410 (register again); a heartbeat that is no object, 1007."""
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, **FAST) as center:
        url = stream_url(center.url, "orin-nano")

        def report(cpu):
            return orjson.dumps({"heartbeat": {
                "node_id": "orin-nano", "slots_busy": 0, "queue": 0, "cpu_percent": cpu,
                "memory_percent": 20.0, "models_ready": ["qwen2.5-1.5b"],
                "models_loading": {}}})

        async def scenario():
            token = register(center.url, "orin-nano")
            auth = {"Authorization": f"Bearer {token}"}
            async with connect(url, additional_headers=auth) as socket:
                await socket.recv()
                for beat in range(8):  # 1.6 s: twice the NOT_READY limit
                    await socket.send(report(10.0 + beat))
                    await asyncio.sleep(0.2)
                node = center.nodes()["orin-nano"]
                assert node["state"] == "READY" and node["cpu_percent"] == 17.0
                assert node["heartbeat_age_s"] < 0.5
                deadline = time.monotonic() + 10
                while center.nodes()["orin-nano"]["state"] != "UNREACHABLE":
                    assert time.monotonic() < deadline, "never UNREACHABLE"
                    await asyncio.sleep(0.1)
                await socket.send(report(50.0))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(socket.recv(), 10)
                assert closed.value.rcvd.code == 4410
            token = register(center.url, "orin-nano")
            async with connect(url, additional_headers={
                    "Authorization": f"Bearer {token}"}) as socket:
                await socket.recv()
                await socket.send(b'{"heartbeat": [1, 2]}')
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(socket.recv(), 10)
                assert closed.value.rcvd.code == 1007

        asyncio.run(scenario())


def test_an_agent_whose_stream_is_refused_registers_again(tmp_path):
    # heartbeats every 30 s: the agent's next one comes long after this test, so it is
    # the stream's 4410 that makes it register again
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, heartbeat_s=30,
                     not_ready_after_s=60, unreachable_after_s=90) as center:
        agent = spawn_agent(center.url, "orin-nano", TOKEN, str(tmp_path / "orin-nano"))
        try:
            center.wait_for(lambda n: n.get("orin-nano", {}).get("transport") == "stream",
                            20, "the agent streaming")
            started = time.monotonic()
            register(center.url, "orin-nano")  # the agent's token is void now
            center.wait_for(lambda n: n["orin-nano"]["transport"] == "stream" and len(
                httpx.get(center.url + "/api/events", params={
                    "kind": "register", "node": "orin-nano"}).json()) == 3, 10,
                "the agent registered again and streaming")
            assert time.monotonic() - started < 10
            assert agent.poll() is None
        finally:
            stop_agents([agent])


def test_agents_on_http_answer_a_run(tmp_path):
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, time_scale=0.05,
                     **FAST) as center:
        agents = spawn_fleet(center, SMALL, TOKEN, str(tmp_path),
                             extra=("--transport", "http"))
        try:
            center.wait_for(lambda n: all(v["transport"] == "http" for v in n.values()),
                            20, "three agents polling")
            run_through(center)
            assert all(n["transport"] == "http" for n in center.nodes().values())
            assert not center.app.state.streams.open
        finally:
            stop_agents(agents.values())


class _Agent:
    """What a TaskStream uses of its agent."""

    def __init__(self, url, token="not-a-real-token"):
        self.center_url, self.node_id, self.token = url, "orin-nano", token
        self.results = asyncio.Queue()
        self.taken = []

    def take(self, body):
        self.taken.append(body)

    async def register_again(self, stale_token):
        raise AssertionError("not expected here")


def test_a_center_without_streams_sends_the_agent_to_http(monkeypatch):
    """An older center (no stream: the handshake is refused with HTTP 403): the stream
    gives up at once with the reason, its unacked results go to the HTTP poster."""
    port = free_port()
    server = Server(Starlette(), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)

        async def scenario():
            agent = _Agent(f"http://127.0.0.1:{port}")
            stream = TaskStream(agent)
            stream.unacked[3] = [{"task_id": 1}]
            why = await asyncio.wait_for(stream.run(), 10)
            assert "no task stream (HTTP 403)" in why
            assert agent.results.get_nowait() == {"task_id": 1} and not stream.unacked
            monkeypatch.setattr(agent_stream, "connect", None)
            assert "websockets package is missing" in await TaskStream(agent).run()

        asyncio.run(scenario())
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_stream_sends_again_what_was_not_acked(tmp_path):
    """Batches left from a dropped stream go first on the next one, then new ones; each
    is kept until the center acks it."""
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, **FAST) as center:
        taken = []
        accept = center.hub.accept_result
        center.hub.accept_result = lambda record, r: taken.append(r["task_id"]) or \
            accept(record, r)

        async def scenario():
            agent = _Agent(center.url, register(center.url, "orin-nano"))
            stream = TaskStream(agent)
            stream.unacked.update({1: [{"task_id": 1}], 2: [{"task_id": 2}]})
            stream._numbers = iter(range(3, 100))
            agent.results.put_nowait({"task_id": 3})
            running = asyncio.create_task(stream.run())
            deadline = time.monotonic() + 10
            while (stream.unacked or len(taken) < 3) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            running.cancel()
            assert taken == [1, 2, 3] and not stream.unacked
            assert agent.taken and agent.taken[0]["target"] == ["qwen2.5-1.5b"]

        asyncio.run(scenario())
