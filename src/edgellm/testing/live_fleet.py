"""A live fleet on this machine for tests and benchmarks: a center served from a
thread on a free loopback port, and edge agents as real child processes (so that a
test can kill one with SIGKILL). Everything listens on 127.0.0.1 only."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from edgellm.fleet.topology import load_topology
from edgellm.live.center import Center
from edgellm.web.center_app import monitored_app
from edgellm.web.server import Server

TOKEN_ENV = "EDGELLM_JOIN_TOKEN"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalCenter:
    """``with LocalCenter(topology, models_dir, token) as center:`` a running center
    with its monitor; ``center.url``, ``center.hub`` (the ``Center``), ``center.app``,
    ``center.stop()``. ``prefix`` (e.g. "/edgellm"): the app is served under that path
    only, as a reverse proxy serves it, and ``page_url`` is its home page there."""

    def __init__(self, topology_path, models_dir, token, port=None, workspace=None,
                 prefix="", **settings):
        settings.setdefault("make_placeholders", True)
        self.hub = Center(topology_path, models_dir, token, **settings)
        self.port = port or free_port()
        self.app = monitored_app(self.hub, workspace)
        self.url = f"http://127.0.0.1:{self.port}{prefix}"
        self.page_url = self.url + "/"
        app = self.app if not prefix else Starlette(
            routes=[Mount(prefix, app=self.app)],
            lifespan=lambda _: self.app.router.lifespan_context(self.app))
        self.server = Server(app, "127.0.0.1", self.port)
        self.server.on_stop = self.app.state.on_stop
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout_s=20):
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the center at {self.url} did not start")

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def nodes(self):
        return {n["id"]: n for n in httpx.get(self.url + "/api/nodes", timeout=5).json()}

    def wait_for(self, predicate, timeout_s=60, what="the fleet"):
        """Poll ``predicate(nodes)`` until it holds; raise with what was seen if not."""
        deadline = time.monotonic() + timeout_s
        nodes = {}
        while time.monotonic() < deadline:
            nodes = self.nodes()
            if predicate(nodes):
                return nodes
            time.sleep(0.05)
        raise TimeoutError(f"{what}: not there after {timeout_s} s; nodes: "
                           f"{ {k: v['state'] for k, v in nodes.items()} }")


def spawn_agent(center_url, node_id, token, models_dir, engine="simulated", extra=()):
    """An ``edgellm edge`` child process (its own process group, so that a kill reaches
    it alone); its output goes to ``<models_dir>.log``."""
    os.makedirs(models_dir, exist_ok=True)
    log = open(f"{models_dir}.log", "ab")
    command = [sys.executable, "-m", "edgellm.cli", "edge", "--center", center_url,
               "--node-id", node_id, "--models-dir", models_dir, "--engine", engine, *extra]
    return subprocess.Popen(command, env=dict(os.environ, **{TOKEN_ENV: token}),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def spawn_fleet(center, topology_path, token, folder, extra=()):
    """One agent per node of the topology (its models under ``folder``/<node id>), all
    READY with their models: {node id: process}. ``extra``: more ``edgellm edge``
    options for each."""
    nodes = [n.id for n in load_topology(topology_path).nodes]
    agents = {n: spawn_agent(center.url, n, token, os.path.join(folder, n), extra=extra)
              for n in nodes}
    try:
        center.wait_for(lambda seen: len(seen) == len(nodes) and all(
            v["state"] == "READY" and v["models_ready"] for v in seen.values()),
            what=f"{len(nodes)} READY agents")
    except BaseException:
        stop_agents(agents.values())
        raise
    return agents


def stop_agents(agents, timeout_s=5):
    for process in agents:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in agents:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class CenterProcess:
    """``edgellm center`` as a child process (for benchmarks that measure its CPU):
    ``url``, ``pid``, ``stop()``; ``args`` are more command-line options."""

    def __init__(self, topology_path, models_dir, token, port=None, args=(), log=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "edgellm.cli", "center", "--topology", topology_path,
                   "--models-dir", models_dir, "--port", str(self.port), "--placeholders",
                   *args]
        output = open(log, "ab") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(command, env=dict(os.environ, **{TOKEN_ENV: token}),
                                        stdout=output, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.pid = self.process.pid

    def wait_ready(self, timeout_s=120):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the center exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the center at {self.url} did not start")

    def nodes(self):
        return {n["id"]: n for n in httpx.get(self.url + "/api/nodes", timeout=10).json()}

    def stop(self):
        stop_agents([self.process])
