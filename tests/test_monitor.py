"""The monitor without a browser: the event stream, the round figures, the cache
timeline, the Prometheus metrics and the Grafana dashboard that reads them, the
leaderboard reader and ``edgellm monitor``'s pages and bad input. Servers bind
127.0.0.1 on free ports and are stopped by each test."""

import asyncio
import csv
import io
import json
import re
import time

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from conftest import REPO
from edgellm.cli import main
from edgellm.live.center import Center
from edgellm.live.runs import LiveTask
from edgellm.testing.live_fleet import LocalCenter
from edgellm.web.broadcast import Broadcast
from edgellm.web.cache_timeline import CacheTimeline, timeline_of_rounds
from edgellm.web.leaderboard import Workspace, case_simulated
from edgellm.web.metrics import CenterMetrics
from edgellm.web.round_stats import RoundStats
from edgellm.web.workspace_app import workspace_app
from monitor_workspace import HOSTILE, ROUNDS, SELECTED, write_workspace

SMALL = str(REPO / "examples/edge-llm-distribution/testalgorithms/multi-edge-offloading/"
                   "topologies/small.yaml")
TOKEN = "test-join-token-not-a-secret-elsewhere"
FAST = dict(heartbeat_s=0.2, not_ready_after_s=0.8, unreachable_after_s=1.5)


def response(node="orin-nano", tier="edge", e2e=1.0, ttft=0.2, round_number=0,
             task_type="multiple_choice", prediction="A", redispatched=0):
    return {"node": node, "tier": tier, "task_type": task_type, "round": round_number,
            "prediction": prediction, "error": None, "redispatched": redispatched,
            "perf": {"e2e_latency": e2e, "time_to_first_token": ttft}}


# -- the event stream -------------------------------------------------------------------

def test_a_slow_page_costs_a_bounded_queue_and_gets_a_snapshot_again():
    async def scenario():
        broadcast = Broadcast(limit=4)
        snapshots = []

        async def snapshot():
            snapshots.append(1)
            return "snapshot", {"n": len(snapshots)}

        stream = broadcast.response(snapshot).body_iterator
        assert b"event: snapshot" in await stream.__anext__()
        for i in range(50):  # the page reads nothing meanwhile
            broadcast.publish("event", {"i": i})
        (queue,) = broadcast.clients
        assert queue.qsize() <= 4 and broadcast.resyncs >= 1
        assert b'"n":2' in await stream.__anext__()  # a fresh snapshot, not 50 events
        broadcast.publish("event", {"i": "after"})
        assert b'"i":"after"' in await stream.__anext__()
        broadcast.close()  # the server stops: the stream ends
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        await stream.aclose()
        assert not broadcast.clients

    asyncio.run(scenario())


def test_the_stream_pushes_a_node_leaving_ready_as_the_center_notices(tmp_path):
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, **FAST) as center:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        httpx.post(center.url + "/api/register", json={"node_id": "orin-nano"}, headers=auth)
        seen = {}
        with httpx.stream("GET", center.url + "/api/monitor/stream", timeout=10) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "nodes":
                    nodes = {n["id"]: n["state"] for n in orjson.loads(line[6:])["nodes"]}
                    if nodes.get("orin-nano") == "NOT_READY":
                        seen["at"] = time.time()
                        break
                elif line.startswith("data: ") and kind == "snapshot":
                    snapshot = orjson.loads(line[6:])
                    assert [n["state"] for n in snapshot["nodes"]] == ["READY"]
                    assert [e["kind"] for e in snapshot["events"]] == ["register"]
        (noticed,) = httpx.get(center.url + "/api/events?kind=not_ready").json()
        assert seen["at"] - noticed["time"] < 0.5  # pushed when noticed, not on a timer


# -- round figures and the cache timeline ---------------------------------------------

def test_round_figures():
    stats = RoundStats()
    for e2e in (1.0, 2.0, 3.0, 4.0):
        stats.add(response(e2e=e2e, prediction="A"), "A")
    stats.add(response(node="cloud", tier="cloud", e2e=9.0, prediction="B"), "A")
    stats.add(response(round_number=1, redispatched=1, task_type="QA", prediction="Paris"),
              "Paris")
    assert stats.rows()[0]["quality"] == {}  # not scored until someone looks
    stats.score_all()
    first, second = stats.rows()
    assert first["tasks"] == {"orin-nano": 4, "cloud": 1} and first["cloud"] == 1
    assert first["e2e_p50_s"] == 3.0 and first["e2e_p95_s"] == pytest.approx(8.0)
    assert first["quality"] == {"multiple_choice": 0.8} and first["redispatched"] == 0
    assert second["redispatched"] == 1 and second["quality"] == {"QA": 1.0}
    assert [r["round"] for r in stats.take_changed()] == [0, 1] and not stats.changed


def test_cache_timeline_spans_and_marks():
    timeline = CacheTimeline()
    assert [s["model"] for s in timeline.update("a", ["m1", "m2"], 10.0)] == ["m1", "m2"]
    assert timeline.update("a", ["m1", "m2"], 11.0) == []  # nothing changed
    (closed, opened) = timeline.update("a", ["m1", "m3"], 12.0)
    assert (closed["model"], closed["end"], opened["model"], opened["end"]) == \
        ("m2", 12.0, "m3", None)
    assert timeline.mark({"kind": "transfer_done", "time": 12.0, "node": "a",
                          "model": "m3"})["kind"] == "done"
    assert timeline.mark({"kind": "register", "time": 1.0}) is None
    recorded = timeline_of_rounds(csv.DictReader(io.StringIO(ROUNDS)))
    spans = {(s["model"], s["start"], s["end"]) for s in recorded["spans"]}
    assert spans == {("qwen2.5-1.5b", 0.0, None), ("llama-3.2-3b", 1.0, None)}
    assert recorded["marks"] == [{"time": 1.0, "node": "orin-nano", "model": "llama-3.2-3b",
                                  "kind": "done"}]


# -- Prometheus ------------------------------------------------------------------------

def samples_of(text):
    """{(name, labels): value} of a Prometheus exposition."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$", line)
        if match:
            out[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return out


@pytest.fixture
def measured_center(tmp_path):
    """A center (no server) whose metrics saw two answers, a transfer, a re-dispatch."""
    center = Center(SMALL, str(tmp_path / "models"), TOKEN, make_placeholders=True, **FAST)
    metrics = CenterMetrics(center)
    center.nodes.register("orin-nano")
    center.nodes.register("orin-nx-a")
    center.nodes.nodes["orin-nx-a"].state = "UNREACHABLE"
    center.nodes.heartbeat(center.nodes.nodes["orin-nano"], {
        "queue": 2, "cpu_percent": 40.0, "memory_percent": 50.0, "models_ready": ["m"]})
    center.queues["orin-nano"].append({"task_id": 1})
    task = LiveTask(key=0, sample={"gold": "A"}, arrival_s=0.0)
    for listener in center.on_answer:
        listener(task, response(e2e=0.7, ttft=0.1))
        listener(task, response(node="cloud", tier="cloud", e2e=3.0, ttft=0.5))
    center.events.add("transfer_done", "x", node="orin-nano", model="m", bytes=1000,
                      sha256="ab")
    center.events.add("transfer_failed", "x", node="orin-nx-a", model="m")
    center.events.add("redispatch", "x", node="orin-nx-a")
    return center, metrics


def test_prometheus_metrics(measured_center):
    _, metrics = measured_center
    text = metrics.exposition().decode()
    values = samples_of(text)
    assert values[("edgellm_tasks_total",
                   '{node="orin-nano",task_type="multiple_choice",tier="edge"}')] == 1
    assert values[("edgellm_tasks_total",
                   '{node="cloud",task_type="multiple_choice",tier="cloud"}')] == 1
    assert values[("edgellm_task_latency_seconds_count", '{tier="edge"}')] == 1
    assert values[("edgellm_task_latency_seconds_bucket", '{le="1.0",tier="edge"}')] == 1
    assert values[("edgellm_task_latency_seconds_bucket", '{le="2.0",tier="cloud"}')] == 0
    assert values[("edgellm_task_ttft_seconds_sum", '{tier="cloud"}')] == 0.5
    assert values[("edgellm_transfers_total", '{node="orin-nano",outcome="done"}')] == 1
    assert values[("edgellm_transfers_total", '{node="orin-nx-a",outcome="failed"}')] == 1
    assert values[("edgellm_transfer_bytes_total", '{node="orin-nano"}')] == 1000
    assert values[("edgellm_redispatches_total", '{node="orin-nx-a"}')] == 1
    assert values[("edgellm_node_state", '{node="orin-nx-a",state="UNREACHABLE"}')] == 1
    assert values[("edgellm_node_state", '{node="orin-nx-a",state="READY"}')] == 0
    assert values[("edgellm_node_queue_length", '{node="orin-nano"}')] == 3
    assert "fleet's seconds" in text  # the HELP says which seconds


def test_every_metric_is_documented_and_the_grafana_dashboard_uses_only_real_ones(
        measured_center):
    _, metrics = measured_center
    text = metrics.exposition().decode()
    exposed = {name for name, _ in samples_of(text)}
    families = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    with open(REPO / "deploy/grafana/edgellm-fleet.json") as handle:
        dashboard = json.load(handle)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    used = {name for expr in exprs for name in re.findall(r"\bedgellm_\w+", expr)}
    assert used and used <= exposed, used - exposed
    doc = (REPO / "docs/monitor.md").read_text()
    for family in {f for f in families if not f.endswith("_created")}:
        assert f"`{family}`" in doc, f"{family} is not in docs/monitor.md"


def test_metrics_registries_are_per_center(tmp_path):
    one = CenterMetrics(Center(SMALL, str(tmp_path / "a"), TOKEN, make_placeholders=True))
    two = CenterMetrics(Center(SMALL, str(tmp_path / "b"), TOKEN, make_placeholders=True))
    one.answered(None, response())
    assert b"edgellm_tasks_total{" in one.exposition()
    assert b"edgellm_tasks_total{" not in two.exposition()


# -- the leaderboard -------------------------------------------------------------------

@pytest.mark.parametrize("column", [False, True])
def test_leaderboard_reader(tmp_path, column):
    workspace = Workspace(write_workspace(str(tmp_path / "ws"), simulated_column=column))
    (board,) = workspace.boards()
    assert board.job == "job-a" and board.selected == SELECTED + ["time", "url"]
    assert board.columns[:len(SELECTED) + 1] == ["rank", *SELECTED]
    assert "edgemodel-backend" in board.columns[len(SELECTED):]
    names = [r["cells"]["algorithm"] for r in board.rows]
    assert names == [HOSTILE, "real-model", "fleet"]
    assert [r["simulated"] for r in board.rows] == [True, False, True]
    assert board.rows[0]["case"] == "job-a/algo/case-1"
    assert workspace.case_folder("job-a/algo/case-1").endswith("case-1")
    for outside in ("", "job-a", "../ws/job-a/algo/case-1", "job-a/algo/case-9",
                    "/etc", "job-a/rank"):
        assert workspace.case_folder(outside) is None


def test_a_moved_workspace_still_finds_its_cases(tmp_path):
    write_workspace(str(tmp_path / "before"))
    (tmp_path / "before").rename(tmp_path / "after")
    (board,) = Workspace(str(tmp_path / "after")).boards()
    assert [r["case"] for r in board.rows] == [f"job-a/algo/case-{i}" for i in (1, 2, 3)]


def test_monitor_pages_escape_and_serve_only_the_workspace(tmp_path):
    client = TestClient(workspace_app(write_workspace(str(tmp_path / "ws"))))
    home = client.get("/")
    assert home.status_code == 200 and "leaderboard.js" in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    boards = client.get("/api/leaderboard").json()["boards"]
    assert boards[0]["rows"][0]["cells"]["algorithm"] == HOSTILE  # JSON; the page uses text
    page = client.get("/case", params={"id": "job-a/algo/case-1"})
    assert page.status_code == 200 and HOSTILE not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text and "SIMULATED" in page.text
    assert "case-file?id=job-a%2Falgo%2Fcase-1&amp;name=latency_per_round.png" in page.text
    plot = client.get("/case-file", params={"id": "job-a/algo/case-1",
                                            "name": "latency_per_round.png"})
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    for params in ({"id": "job-a/algo/case-1", "name": "config.yaml"},
                   {"id": "job-a/algo/case-1", "name": "../../rank/all_rank.csv"},
                   {"id": "../../etc", "name": "passwd"}):
        assert client.get("/case-file", params=params).status_code == 404
    assert client.get("/case", params={"id": "job-a/../../x"}).status_code == 404
    rounds = client.get("/api/case-rounds", params={"id": "job-a/algo/case-3"}).json()
    assert [r["round"] for r in rounds["rows"]] == [0, 1]
    assert rounds["rows"][0]["tasks"] == {"orin-nano": 2, "cloud": 1}
    assert {s["model"] for s in rounds["cache"]["spans"]} == {"qwen2.5-1.5b", "llama-3.2-3b"}
    assert client.get("/static/plotly.min.js").status_code == 200
    assert client.get("/static/center.js").headers["content-type"].startswith("text/javascript")
    for name in ("..%2Fleaderboard.py", "leaderboard.py", "nope.js"):
        assert client.get(f"/static/{name}").status_code == 404


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_monitor_bad_workspace_is_one_line(tmp_path, capsys, make):
    folder = tmp_path / "ws"
    if make == "empty":
        folder.mkdir()
        (folder / "job" / "rank").mkdir(parents=True)  # a rank folder with no rank file
    assert main(["monitor", "--workspace", str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and "Traceback" not in err
    assert ("no such workspace folder" if make == "missing" else "no rank files") in err


def test_a_center_may_start_before_the_run_that_makes_its_workspace(tmp_path):
    folder = tmp_path / "not-yet"
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, workspace=str(folder),
                     **FAST) as center:
        assert httpx.get(f"{center.url}/api/leaderboard").json()["boards"] == []
        assert httpx.get(f"{center.url}/leaderboard").status_code == 200
        write_workspace(str(folder))  # the run writes its rank files meanwhile
        (board,) = httpx.get(f"{center.url}/api/leaderboard").json()["boards"]
        assert board["job"] == "job-a" and len(board["rows"]) == 3


def test_a_center_workspace_that_is_a_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "workspace"
    taken.write_text("not a folder")
    assert main(["fleet", "up", "--topology", SMALL, "--workspace", str(taken),
                 "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(taken) in err and "not a folder" in err


@pytest.mark.parametrize("engines, expected", [
    ({"orin-nano": "simulated"}, True), ({"orin-nano": "openai", "cloud": "simulated"}, True),
    ({"orin-nano": "openai", "orin-nx-a": "llama.cpp"}, False), (None, None)])
def test_a_live_case_is_simulated_by_the_engines_its_fleet_json_names(
        tmp_path, engines, expected):
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        "modules:\n- type: edgemodel\n  hyperparameters:\n    topology: small.yaml\n"
        "    center_url: http://127.0.0.1:8700\n")
    (folder / "results.jsonl").write_text(json.dumps({"edge": {"node": "orin-nano"}}) + "\n")
    summary = {"live": True} if engines is None else {"live": True, "engines": engines}
    (folder / "fleet.json").write_text(json.dumps(summary))
    assert case_simulated(str(folder)) is expected
