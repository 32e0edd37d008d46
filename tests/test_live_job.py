"""The live job under ``edgellm run`` end to end, with three agents; a center that
restarts mid-job; the openai engine on a node; no token in any log."""

import csv
import json
import os
import threading
import time

import pytest

from conftest import EXAMPLE, edit
from edgellm.cli import main
from edgellm.fleet.topology import load_topology
from edgellm.testing.live_fleet import LocalCenter, free_port, spawn_agent, stop_agents
from edgellm.testing.openai_server import LoopbackOpenAIServer
from edgellm.web.leaderboard import Workspace

TOKEN = "test-join-token-for-the-live-job"
TOPOLOGY = f"{EXAMPLE}/testalgorithms/multi-edge-offloading/topologies/small.yaml"
LIVE = f"{EXAMPLE}/testalgorithms/multi-edge-offloading/live.yaml"
JOB = f"{EXAMPLE}/benchmarkingjob-live.yaml"
DATA = f"{EXAMPLE}/dataset/five-tasks/test_data/data.jsonl"
RANK = "workspace/live-fleet/rank/all_rank.csv"


def live_job(example, port, items=24, offloaders='"RoundRobin"'):
    """The example's live job on a center at ``port``, over the first ``items`` tasks."""
    edit(LIVE, "http://127.0.0.1:8700", f"http://127.0.0.1:{port}")
    edit(LIVE, 'values: ["RoundRobin", "QualityGreedy"]', f"values: [{offloaders}]")
    edit(LIVE, 'values: ["Static", "DemandKnapsack"]', 'values: ["Static"]')
    edit(LIVE, "values: [8.0]", "values: [4.0]")
    with open(DATA) as handle:
        lines = handle.readlines()[:items]
    with open(DATA, "w") as handle:
        handle.writelines(lines)


@pytest.fixture
def live_fleet(example):
    """A center on a free port (time scale 0.05) and three READY agents."""
    port = free_port()
    center = LocalCenter(TOPOLOGY, str(example / "center-models"), TOKEN, port=port,
                         time_scale=0.05, heartbeat_s=0.3, not_ready_after_s=1.5,
                         unreachable_after_s=3.0).start()
    agents = [spawn_agent(center.url, n.id, TOKEN, str(example / "agents" / n.id))
              for n in load_topology(TOPOLOGY).nodes]
    holder = {"center": center}
    try:
        center.wait_for(lambda seen: len(seen) == 3 and all(
            v["state"] == "READY" and v["models_ready"] for v in seen.values()))
        yield port, holder, agents
    finally:
        stop_agents(agents)
        holder["center"].stop()


def test_the_live_job_runs_end_to_end(example, live_fleet, capsys):
    port, holder, _ = live_fleet
    live_job(example, port)
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "live-fleet" in out
    with open(RANK, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["Accuracy"]) > 0 and float(row["E2E Latency P95"]) > 0
    assert row["Redispatched Tasks"] == "0" and row["Node Failures"] == "0"
    assert row["edgemodel-center_url"] == f"http://127.0.0.1:{port}"
    folder = row["url"]
    with open(os.path.join(folder, "fleet.json")) as handle:
        summary = json.load(handle)
    assert summary["live"] and summary["answered"] == 24
    # the monitor's leaderboard tells this live case's simulated engines from fleet.json
    assert set(summary["engines"].values()) == {"simulated"}
    (board,) = Workspace("workspace").boards()
    assert [r["simulated"] for r in board.rows] == [True]
    assert os.path.isfile(os.path.join(folder, "rounds.csv"))
    with open(os.path.join(folder, "results.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    assert len(records) == 24 and all(r["edge"]["live"] for r in records)


def test_a_center_restarted_mid_job_fails_the_job_with_one_line(example, live_fleet,
                                                                 capsys):
    port, holder, _ = live_fleet
    live_job(example, port, items=120)
    result = {}
    job = threading.Thread(target=lambda: result.update(
        code=main(["run", "-f", JOB, "--no-progress"])))
    job.start()
    center = holder["center"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
            center.hub.run is not None and len(center.hub.run.finished_keys) > 5):
        time.sleep(0.05)
    center.stop()  # the center goes away mid-job, and comes back empty
    holder["center"] = LocalCenter(TOPOLOGY, str(example / "center-models"), TOKEN,
                                   port=port, time_scale=0.05).start()
    job.join(120)
    err = capsys.readouterr().err
    assert result["code"] == 1
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and f"the live center at http://127.0.0.1:{port}" in failed[0]
    assert "Traceback" not in err
    assert not os.path.exists(RANK)  # no half a run ranked


def test_an_openai_engine_node_answers_through_its_server(tmp_path):
    """A node whose engine is an OpenAI-compatible server (here the loopback one): the
    center dispatches, the agent forwards, the answers come back measured."""
    from edgellm.live.client import LiveFleet
    from edgellm.testing.live_fleet import spawn_agent as spawn

    topology = load_topology(os.path.join(os.path.dirname(__file__), "..", TOPOLOGY))
    with LoopbackOpenAIServer(first_token_delay=0.01, token_delay=0.002) as server, \
            LocalCenter(topology.path, str(tmp_path / "models"), TOKEN, time_scale=0.05) \
            as center:
        agents = [spawn(center.url, n.id, TOKEN, str(tmp_path / n.id),
                        engine="openai" if n.id == "orin-nx-a" else "simulated",
                        extra=("--engine-url", server.base_url)
                        if n.id == "orin-nx-a" else ())
                  for n in topology.nodes]
        try:
            center.wait_for(lambda seen: len(seen) == 3 and all(
                v["state"] == "READY" and v["models_ready"] for v in seen.values()))
            assert center.nodes()["orin-nx-a"]["engine"] == "openai"
            live = LiveFleet(topology, center.url, offloader="RoundRobin", caching="Static")
            samples = [{"id": i, "query": f"Question: {i} + 1?\nA. {i + 1}\nB. {i}",
                        "gold": "A", "task_type": "multiple_choice", "round": i // 3,
                        "arrival_s": float(i // 3)} for i in range(9)]
            answered = live.serve_batch(samples)
            live.finish_round()
        finally:
            stop_agents(agents)
    served = [r for r in answered if r["node"] == "orin-nx-a"]
    assert len(served) == 3 and len(server.requests) >= 3
    assert all(r["completion"].startswith("The answer is") for r in served)
    assert all(r["usage"]["completion_tokens"] > 1 for r in served)
    logs = list(tmp_path.glob("*.log"))
    assert len(logs) == 3
    for log in logs:  # neither the join token nor a node token reaches an agent's log
        assert TOKEN not in log.read_text() and "Bearer" not in log.read_text()
