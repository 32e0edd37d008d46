"""The monitor's screenshots for the docs, taken by headless Chromium against a fleet
run here on loopback:

    python -m edgellm.testing.screenshots docs/images     (from the repository root)

It runs the example's query-routing job and one small fleet case into a temporary
workspace (the leaderboard and a case page), a center with three simulated agents, a
live run with caching rounds, then kills one agent (the center's page with a node
UNREACHABLE), and saves monitor-center.png, monitor-edge.png, monitor-leaderboard.png
and monitor-case.png. It prints how long the page took to show the kill.
"""

import argparse
import contextlib
import io
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import httpx
import yaml

from edgellm.bench.config import read_job
from edgellm.cli import main as edgellm
from edgellm.fleet.topology import load_topology
from edgellm.fleet.workload import RoundWorkload
from edgellm.live.client import LiveFleet
from edgellm.tasks.ianvs_format import load_test_dataset
from edgellm.testing.browser import console_errors, headless_chromium, missing_browser
from edgellm.testing.live_fleet import LocalCenter, spawn_fleet, stop_agents

EXAMPLE = "examples/edge-llm-distribution"
SMALL = f"{EXAMPLE}/testalgorithms/multi-edge-offloading/topologies/small.yaml"
TOKEN = "screenshots-join-token"
NODE_KILLED = "orin-nx-b"


def _jobs(workspace, scratch):
    """The query-routing job and one fleet case (small topology, LFU caching)."""
    def job_copy(name, algorithms=None):
        with open(f"{EXAMPLE}/{name}") as handle:
            job = yaml.safe_load(handle)
        job["benchmarkingjob"]["workspace"] = workspace
        if algorithms:
            job["benchmarkingjob"]["test_object"]["algorithms"] = algorithms
        path = os.path.join(scratch, name)
        with open(path, "w") as handle:
            yaml.safe_dump(job, handle)
        return path

    with open(f"{EXAMPLE}/testalgorithms/multi-edge-offloading/multi-edge.yaml") as handle:
        algorithm = yaml.safe_load(handle)
    for module in algorithm["algorithm"]["modules"]:
        for setting in module.get("hyperparameters") or []:
            for name, spec in setting.items():
                spec["values"] = {"topology": [SMALL], "caching": ["LFU"],
                                  "offloader": ["QualityGreedy"]}.get(name, spec["values"][:1])
    fleet_algorithm = os.path.join(scratch, "fleet-small.yaml")
    with open(fleet_algorithm, "w") as handle:
        yaml.safe_dump(algorithm, handle)
    for job in (job_copy("benchmarkingjob.yaml"),
                job_copy("benchmarkingjob-multi-edge.yaml",
                         [{"name": "fleet-small", "url": fleet_algorithm}])):
        with contextlib.redirect_stdout(io.StringIO()):  # the leaderboards' tables
            code = edgellm(["run", "-f", job, "--no-progress"])
        if code != 0:
            raise SystemExit(f"edgellm run -f {job} failed")


def _samples(n=72, per_round=4, interval_s=8.0):
    """``n`` of the example's tasks, every task type in turn, ``per_round`` a round."""
    dataset = load_test_dataset(read_job(f"{EXAMPLE}/benchmarkingjob-multi-edge.yaml")
                                .testenv.dataset)
    samples = list(RoundWorkload(tasks_per_round=per_round,
                                 round_interval_s=interval_s)(dataset).x)
    picked = samples[::max(1, len(samples) // n)][:n]
    return [dict(s, round=i // per_round, arrival_s=i // per_round * interval_s)
            for i, s in enumerate(picked)]


def _kill_when(center, agent, answered, seen):
    """SIGKILL ``agent`` once the run has ``answered`` tasks (its tasks go elsewhere);
    ``seen["killed"]``: when."""
    while center.hub.run is None or len(center.hub.run.finished_keys) < answered:
        time.sleep(0.01)
    os.killpg(agent.pid, signal.SIGKILL)
    seen["killed"] = time.time()
    center.wait_for(lambda seen: seen[NODE_KILLED]["state"] == "UNREACHABLE", 20)


def _shoot(driver, url, path, ready, width=1400):
    driver.set_window_size(width, 1000)
    driver.get(url)
    deadline = time.monotonic() + 30
    while not driver.execute_script(ready) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # charts finish drawing
    for _ in range(3):  # the window's size includes its frame, and charts redraw to fit
        height, inner = driver.execute_script(
            "return [document.documentElement.scrollHeight, window.innerHeight]")
        if height <= inner:
            break
        frame = driver.get_window_size()["height"] - inner
        driver.set_window_size(width, min(max(height, 600), 2600) + frame)
        time.sleep(0.5)
    driver.save_screenshot(path)
    errors = console_errors(driver)
    if errors:
        raise SystemExit(f"{url}: console errors {errors}")
    print(f"  {path}")


def take(out):
    scratch = tempfile.mkdtemp(prefix="edgellm-screenshots-")
    workspace = os.path.join(scratch, "workspace")
    _jobs(workspace, scratch)
    center = LocalCenter(SMALL, os.path.join(scratch, "center-models"), TOKEN,
                         time_scale=0.05, heartbeat_s=0.5, not_ready_after_s=1.5,
                         unreachable_after_s=3.0, workspace=workspace).start()
    agents, driver = {}, None
    try:
        agents = spawn_fleet(center, SMALL, TOKEN, scratch)
        driver = headless_chromium()
        driver.get(center.page_url)
        live = LiveFleet(load_topology(SMALL), center.url, offloader="QualityGreedy",
                         caching="LFU", caching_every=3, slo_s=5.0, seed=0,
                         latency_weight=0.02)
        samples, seen = _samples(), {}
        killer = threading.Thread(target=_kill_when, args=(
            center, agents[NODE_KILLED], len(samples) // 2, seen))
        killer.start()
        live.serve_batch(samples)
        live.finish_round()
        killer.join()
        killed = seen["killed"]
        shown = driver.execute_script(
            f"return Number(document.querySelector('#nodes tr[data-node=\"{NODE_KILLED}\"]')"
            ".getAttribute('data-shown-at'))") / 1000
        (noticed,) = httpx.get(center.url + "/api/events", params={
            "kind": "unreachable", "node": NODE_KILLED}).json()
        print(f"killed -> UNREACHABLE on the page {shown - killed:.2f} s; center noticed -> "
              f"page {1000 * (shown - noticed['time']):.0f} ms")
        _shoot(driver, center.page_url, os.path.join(out, "monitor-center.png"),
               "return !!document.querySelector('#chart-cache .main-svg')")
        busiest = max((n for n in center.nodes().values() if n["state"] == "READY"),
                      key=lambda n: len(httpx.get(n["monitor_url"] + "api/state")
                                        .json()["recent"]))
        _shoot(driver, busiest["monitor_url"], os.path.join(out, "monitor-edge.png"),
               "return !!document.querySelector('#chart-load .main-svg')")
        _shoot(driver, center.url + "/leaderboard", os.path.join(out, "monitor-leaderboard.png"),
               "return document.querySelectorAll('table.leaderboard tbody tr').length > 1")
        boards = httpx.get(center.url + "/api/leaderboard").json()["boards"]
        case = next(r["case"] for b in boards for r in b["rows"] if "fleet" in (r["case"] or ""))
        _shoot(driver, f"{center.url}/case?id={case}", os.path.join(out, "monitor-case.png"),
               "return !!document.querySelector('#chart-cache .main-svg')")
    finally:
        if driver is not None:
            driver.quit()
        stop_agents(agents.values())
        center.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder for the PNG files (e.g. docs/images)")
    args = parser.parse_args(argv)
    problem = missing_browser()
    if problem:
        print(f"screenshots: {problem}", file=sys.stderr)
        return 2
    if not os.path.isdir(EXAMPLE):
        print(f"screenshots: run from the repository root ({EXAMPLE} not found)",
              file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        take(args.out)
        return 0
    return 130


if __name__ == "__main__":
    sys.exit(run())
