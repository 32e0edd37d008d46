"""``edgellm center | edge | fleet up``: the live distribution center and its agents."""

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from edgellm.errors import ConfigError
from edgellm.fleet.topology import load_topology
from edgellm.live.agent import EdgeAgent
from edgellm.live.center import Center
from edgellm.live.llama_cpp_engine import llama_cpp_available
from edgellm.web.center_app import monitored_app
from edgellm.web.edge_page import edge_app
from edgellm.web.leaderboard import Workspace
from edgellm.web.server import Server, start_in_loop

TOKEN_ENV = "EDGELLM_JOIN_TOKEN"
AGENT_STOP_S = 5.0  # what fleet up waits for its agents to stop before killing them


def _token(required=True):
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token and required:
        raise ConfigError(TOKEN_ENV, "not set: the center and its agents share a join "
                                     "token, from the environment only")
    return token


def _center(args, models_dir, token, placeholders):
    try:
        return Center(args.topology, models_dir, token, time_scale=args.time_scale,
                      heartbeat_s=args.heartbeat_s, not_ready_after_s=args.not_ready_after_s,
                      unreachable_after_s=args.unreachable_after_s,
                      make_placeholders=placeholders)
    except ValueError as err:
        raise ConfigError("--heartbeat-s/--not-ready-after-s/--unreachable-after-s",
                          str(err)) from None


def check_port(host, port):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"{host}:{port}", f"cannot serve there: {err.strerror}") from None


def _serve(center, args):
    """The center's API and its monitor (pages, /metrics) until Ctrl-C."""
    Server(monitored_app(center, args.workspace), args.host, args.port).run()


def _check_workspace(args):
    if args.workspace:
        # a file there: one line now; a folder not made yet is the run's to make
        Workspace(args.workspace, may_be_new=True)


def center(args):
    token = _token()
    check_port(args.host, args.port)
    _check_workspace(args)
    hub = _center(args, args.models_dir, token, args.placeholders)
    print(f"edgellm center for {hub.topology.name} at http://{args.host}:{args.port} "
          f"({len(hub.topology.nodes)} nodes expected; time scale {hub.time_scale:g}); "
          f"its monitor at / and Prometheus metrics at /metrics", flush=True)
    _serve(hub, args)
    return 0


def edge(args):
    agent = EdgeAgent(args.center, args.node_id, _token(), engine=args.engine,
                      models_dir=args.models_dir, seed=args.seed,
                      engine_settings=_engine_settings(args), transport=args.transport)
    try:
        _run_loop(_edge(agent, args))
    except RuntimeError as err:
        raise ConfigError(args.center, str(err)) from None
    return 0


def _run_loop(coro):
    """uvloop where the live extra brought it (uvicorn[standard]): an agent's HTTP round
    trips per task cost less on it; asyncio's own loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _edge(agent, args):
    """The agent, and its own page beside it (announced to the center when it registers);
    SIGTERM or Ctrl-C (SIGINT, which a terminal sends a fleet's agents too) stops it
    cleanly: its engine's servers stop with it, and its page's server ends before the
    loop does (cancelled with it, uvicorn logs a traceback)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.stop)
    page = None
    if args.monitor_port is not None:
        try:
            page, serving, agent.monitor_url = await start_in_loop(
                edge_app(agent), args.monitor_host, args.monitor_port)
        except OSError as err:
            raise ConfigError(f"{args.monitor_host}:{args.monitor_port}",
                              f"cannot serve the node's page there: {err.strerror}") from None
        print(f"edgellm edge {agent.node_id}: its page at {agent.monitor_url}", flush=True)
    try:
        await agent.run()
    finally:
        if page is not None:
            page.should_exit = True
            await serving


def _engine_settings(args):
    if args.engine == "simulated":
        return {"zero_time": True} if args.zero_time else {}
    if args.engine == "llama_cpp":
        problem = llama_cpp_available()
        if problem:
            raise ConfigError("--engine llama_cpp", f"needs llama-cpp-python's server: "
                                                    f"{problem}")
        return {"n_ctx": args.n_ctx, "n_threads": args.n_threads,
                "max_tokens": args.max_tokens}
    if args.engine != "openai":
        return {}
    if not args.engine_url:
        raise ConfigError("--engine-url", "the openai engine needs the node's server URL")
    return {"base_url": args.engine_url, "api_key_env": args.engine_key_env,
            "max_tokens": args.max_tokens}


def fleet_up(args):
    """The center here, one simulated agent per topology node as child processes."""
    topology = load_topology(args.topology)
    token = _token(required=False) or secrets.token_urlsafe(24)
    check_port(args.host, args.port)
    _check_workspace(args)
    scratch = tempfile.mkdtemp(prefix="edgellm-fleet-")
    models_dir = args.models_dir or os.path.join(scratch, "center-models")
    hub = _center(args, models_dir, token, placeholders=True)
    url = f"http://{args.host}:{args.port}"
    env = dict(os.environ, **{TOKEN_ENV: token})
    agents = []
    for node in topology.nodes:
        command = [sys.executable, "-m", "edgellm.cli", "edge", "--center", url,
                   "--node-id", node.id, "--models-dir", os.path.join(scratch, node.id)]
        agents.append((node.id, subprocess.Popen(command, env=env)))
    print(f"edgellm fleet up: center {url} ({topology.name}, time scale "
          f"{hub.time_scale:g}); its monitor at {url}/", flush=True)
    for node_id, process in agents:
        print(f"  agent {node_id}: pid {process.pid}", flush=True)
    print("Ctrl-C stops them all", flush=True)
    try:
        _serve(hub, args)
    finally:
        for _, process in agents:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + AGENT_STOP_S
        for node_id, process in agents:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                print(f"edgellm fleet up: agent {node_id} did not stop within "
                      f"{AGENT_STOP_S:g} s: killed", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
