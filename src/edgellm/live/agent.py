"""The edge agent (``edgellm edge``): one per edge node.

It registers with the center (the join token, from the environment only) and gets a
node token; sends a heartbeat every ``heartbeat_s`` with its load (slots in use,
queue, CPU and memory); receives the tasks dispatched to it and runs them on its
engine, ``slots`` at a time, answers sent back as they finish with what it measured
(``transport="stream"``, the default: over one WebSocket, pushed both ways,
live/agent_stream.py; ``"http"``, or a center without streams: a long poll and a POST
per batch); keeps the models the center asks for: evicts the others, fetches the new
ones from the center's model store (resumed with ``Range``, checked with SHA-256,
installed atomically; live/transfer.py) and loads them, reporting each transfer. A
center that says the node is unknown (it was UNREACHABLE, or restarted) gets a new
registration. With the simulated engine the agent also plays the node's link (half
the round trip and the prompt's bytes on the way in, half the round trip on the way
out, times ``time_scale``), as the fleet's clock model does.
"""

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import shutil
import threading
import time

import httpx
import psutil

from edgellm.fleet.center import BYTES_PER_TOKEN
from edgellm.fleet.topology import load_topology
from edgellm.live.agent_stream import TaskStream
from edgellm.live.engines import make_engine, sleep_at_least
from edgellm.live.transfer import PARTIAL, TransferError, download

log = logging.getLogger(__name__)

TRANSPORTS = ("stream", "http")


class Stopping(Exception):
    """Raised in a download's thread when its agent stops: the transfer ends there."""


class EdgeAgent:
    def __init__(self, center_url, node_id, join_token, engine="simulated", models_dir=None,
                 seed=0, engine_settings=None, pull_wait_s=10.0, transport="stream"):
        if not join_token:
            raise ValueError("the edge agent needs the join token (env EDGELLM_JOIN_TOKEN)")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, "
                             f"got {transport!r}")
        self.transport = transport
        self.stream = None  # the TaskStream while the agent uses one
        self.center_url = center_url.rstrip("/")
        self.node_id, self.join_token = node_id, join_token
        self.engine_name, self.seed = engine, int(seed)
        self.engine_settings = dict(engine_settings or {})
        self.models_dir = os.path.abspath(models_dir or f"edgellm-models-{node_id}")
        self.pull_wait_s = float(pull_wait_s)
        self.token = None
        self.engine = None
        self.ready = {}              # model id -> asyncio.Event set when loaded
        self.loading = {}            # model id -> {"bytes", "total", "state"}
        self.files = {}              # model id -> installed path
        self.target = []
        # model id -> tasks received for it and not yet answered: a model the center
        # drops is evicted after them (a caching round does not fail the tasks in hand)
        self.in_hand = collections.Counter()
        self.busy = 0
        self.queue = asyncio.Queue()
        self.results = asyncio.Queue()
        # what the agent's own page shows (edgellm.web.edge_page), bounded
        self.monitor_url = ""        # that page, announced to the center at registration
        self.current = {}            # task id -> the task being served
        self.recent = collections.deque(maxlen=100)    # the last finished tasks
        self.load = collections.deque(maxlen=3600)     # (time, CPU %, memory %) per heartbeat
        self.transfers = collections.deque(maxlen=50)  # this node's model transfers
        self.watchers = []           # called with a kind on each change; from any thread
        self._finished = itertools.count(1)
        self._sync = None
        self._stop = asyncio.Event()
        self._registering = asyncio.Lock()
        self._installs = set()       # the model installs under way (their tasks)

    # -- the center ------------------------------------------------------------------

    def _auth(self, token=None):
        return {"Authorization": f"Bearer {token or self.token}"}

    async def register(self, http):
        response = await http.post("/api/register", headers=self._auth(self.join_token), json={
            "node_id": self.node_id, "engine": self.engine_name, "pid": os.getpid(),
            "address": f"pid {os.getpid()}", "monitor_url": self.monitor_url})
        if response.status_code != 200:
            raise RuntimeError(f"{self.center_url} refused the registration of "
                               f"{self.node_id}: HTTP {response.status_code} "
                               f"{response.json().get('error', '')}")
        info = response.json()
        self.token, self.heartbeat_s = info["node_token"], float(info["heartbeat_s"])
        self.time_scale, self.manifest = float(info["time_scale"]), info["models"]
        if self.engine is None:
            self.topology = load_topology(info["topology_path"]) if os.path.isfile(
                info["topology_path"]) else None
            self.node = _NodeSpec(info["node"])
            self.engine = make_engine(self.engine_name, self.node, self.topology,
                                      self.time_scale, self.seed, self.models_dir,
                                      **self.engine_settings)
        self.set_target(info["target"])
        log.info("%s registered with %s", self.node_id, self.center_url)

    async def run(self):
        os.makedirs(self.models_dir, exist_ok=True)
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(base_url=self.center_url, limits=limits,
                                     timeout=httpx.Timeout(self.pull_wait_s + 30)) as http:
            self.http = http
            deadline = time.monotonic() + 60
            while True:  # the center may still be starting (edgellm fleet up starts both)
                try:
                    await self.register(http)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no center answers at {self.center_url}") from None
                    await asyncio.sleep(0.25)
            workers = [self._heartbeats(), self._exchange(),
                       *(self._work() for _ in range(self.node.slots))]
            tasks = [asyncio.create_task(w) for w in workers]
            try:
                await self._stop.wait()
            finally:
                # the installs under way end too (a download's thread at its next piece,
                # or left to the process's exit), none reporting on the client closed below
                self._stop.set()
                tasks += self._installs
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.engine.close()  # an engine's servers end with the agent

    def stop(self):
        self._stop.set()

    async def register_again(self, stale_token):
        """The center refused ``stale_token``: one new registration, however many of the
        agent's loops noticed (a later one finds the token already new)."""
        async with self._registering:
            if self.token == stale_token:
                await self.register(self.http)

    def _changed(self, kind):
        for watcher in self.watchers:
            watcher(kind)

    async def _call(self, method, path, **kwargs):
        """A request with the node token; a 410 (the center forgot this node) leads
        to a new registration and one more try."""
        token = self.token
        response = await self.http.request(method, path, headers=self._auth(token), **kwargs)
        if response.status_code == 410:
            await self.register_again(token)
            response = await self.http.request(method, path, headers=self._auth(), **kwargs)
        return response

    async def _heartbeats(self):
        psutil.cpu_percent(None)  # the first reading is meaningless: prime it
        while True:
            cpu, memory = psutil.cpu_percent(None), psutil.virtual_memory().percent
            self.load.append((time.time(), cpu, memory))
            self._changed("load")
            report = {
                "node_id": self.node_id, "slots_busy": self.busy,
                "queue": self.queue.qsize(), "cpu_percent": cpu, "memory_percent": memory,
                # a dropped model still answering its last tasks is gone for the center
                "models_ready": [m for m, e in self.ready.items()
                                 if e.is_set() and m in self.target],
                "models_loading": dict(self.loading)}
            # on the open stream (the target comes back on it when it changes): a
            # fifth of the center's CPU of an HTTP request; over HTTP otherwise
            if self.stream is None or not await self.stream.heartbeat(report):
                with contextlib.suppress(httpx.HTTPError):
                    response = await self._call("POST", "/api/heartbeat", json=report)
                    if response.status_code == 200:
                        self.set_target(response.json()["target"])
            await asyncio.sleep(self.heartbeat_s)

    async def _exchange(self):
        """Tasks in and results out: over the stream, or HTTP where it cannot be had."""
        if self.transport == "stream":
            self.stream = TaskStream(self)
            why = await self.stream.run()  # returns only when there is no stream
            self.stream = None
            log.warning("%s: %s: tasks and results over HTTP", self.node_id, why)
        await asyncio.gather(self._pull(), self._post_results())

    async def _pull(self):
        while True:
            try:
                response = await self._call("GET", "/api/tasks", params={
                    "node_id": self.node_id, "wait": self.pull_wait_s})
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code != 200:
                await asyncio.sleep(0.5)
                continue
            self.take(response.json())

    def take(self, body):
        """The center's tasks and target models (a long poll's answer, a stream's message)."""
        self.set_target(body["target"])
        received = time.monotonic()
        for task in body["tasks"]:
            task["received"] = received
            self.in_hand[task["model"]] += 1
            if self.engine.simulated and not self.engine.zero_time:  # the node's link
                up = self.node.send_s(task["prompt_tokens"] * BYTES_PER_TOKEN)
                self._enqueue_at(task, received + up * self.time_scale)
            else:
                self._enqueue(task)

    def _enqueue_at(self, task, due):
        """Queue ``task`` at monotonic time ``due``, not before (a uvloop timer can fire
        early: engines.sleep_at_least)."""
        left = due - time.monotonic()
        if left > 0:
            asyncio.get_running_loop().call_later(left, self._enqueue_at, task, due)
        else:
            self._enqueue(task)

    def _enqueue(self, task):
        task["queued"] = time.monotonic()
        self.queue.put_nowait(task)

    async def _work(self):
        while True:
            task = await self.queue.get()
            self.busy += 1
            try:
                await self._serve(task)
            finally:
                self.busy -= 1
                self._done_with(task["model"])

    async def _serve(self, task):
        """One task: wait for its model, answer, and queue the result with what was
        measured (real seconds from the moment the task arrived from the center)."""
        model, error = task["model"], None
        event = self.ready.get(model)
        taken = time.monotonic()
        self.current[task["task_id"]] = {"model": model, "since": time.time(),
                                         "task_type": task["sample"].get("task_type")}
        self._changed("task")
        # seconds it waited for a slot, in which it paid its fixed cost (the fleet's
        # clock); one that then waits for its model pays it after, as the clock has it
        waited = taken - task["queued"]
        if event is None or not event.is_set():
            self.set_target(self.target)  # a task for a model not (yet) here waits for it
            event = self.ready.get(model)
            waited = 0.0
            if event is None:
                error = f"model {model} is not on {self.node_id}"
            else:
                await event.wait()
        start = time.monotonic()
        if error is None:
            try:
                answer, ttft, e2e, compute = await self.engine.answer(
                    model, task["sample"], task["prompt_tokens"], waited)
                error = answer.pop("error", None)
            except Exception as err:  # a broken engine answers with its error, not silence
                answer, ttft, e2e, compute = {}, 0.0, 0.0, 0.0
                error = f"{type(err).__name__}: {err}"
        else:
            answer, ttft, e2e, compute = {}, 0.0, 0.0, 0.0
        down = self.node.rtt_s / 2 * self.time_scale \
            if self.engine.simulated and not self.engine.zero_time else 0.0
        if down:
            await sleep_at_least(down)
        done = time.monotonic()
        received, queued = task["received"], task["queued"]
        # real seconds standing for the fleet's (the center divides them by time_scale);
        # the engine's own computing is left out: it is real overhead, not fleet time
        perf = {"queue_s": taken - queued, "load_wait_s": start - taken,
                "start_s": start - received,
                "ttft_s": start - received + ttft + down,
                "e2e_s": done - received - compute, "busy_s": e2e,
                "network_s": (queued - received) + down}
        answer.setdefault("usage", {"prompt_tokens": task["prompt_tokens"],
                                    "completion_tokens": 0,
                                    "total_tokens": task["prompt_tokens"]})
        self.results.put_nowait({"task_id": task["task_id"], "attempt": task["attempt"],
                                 "answer": answer, "perf": perf, "error": error})
        self.current.pop(task["task_id"], None)
        # gold and prediction stay so that the page can score what it shows, when it shows it
        self.recent.append({"seq": next(self._finished), "at": time.time(), "model": model,
                            "task_type": task["sample"].get("task_type"),
                            "e2e_s": done - received, "error": error,
                            "gold": task["sample"].get("gold"),
                            "prediction": answer.get("prediction")})
        self._changed("task")

    async def _post_results(self):
        while True:
            batch = [await self.results.get()]
            while not self.results.empty():
                batch.append(self.results.get_nowait())
            for _ in range(3):  # the center may be restarting: a few tries, then give up
                try:
                    await self._call("POST", "/api/results",
                                     json={"node_id": self.node_id, "results": batch})
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)

    # -- models ------------------------------------------------------------------------

    def set_target(self, target):
        """Keep what the center wants: evict the rest, fetch and load what is new."""
        self.target = list(target)
        for model in list(self.ready):
            if model not in self.target and not self.in_hand.get(model):
                self._evict(model)
        for model in self.target:
            if model not in self.ready:
                self.ready[model] = asyncio.Event()
                install = asyncio.get_running_loop().create_task(self._install(model))
                self._installs.add(install)
                install.add_done_callback(self._installs.discard)

    def _evict(self, model):
        self.ready.pop(model)
        self.engine.unload(model)
        path = self.files.pop(model, None)
        if path and os.path.exists(path):
            (shutil.rmtree if os.path.isdir(path) else os.unlink)(path)

    def _done_with(self, model):
        self.in_hand[model] -= 1
        if self.in_hand[model] <= 0:
            del self.in_hand[model]
            if model not in self.target and model in self.ready:
                self._evict(model)  # dropped by the center while its tasks were in hand

    async def _install(self, model):
        info = self.manifest[model]
        self.loading[model] = {"bytes": 0, "total": info["size"], "state": "transfer"}
        record = {"model": model, "state": "transfer", "bytes": 0, "total": info["size"],
                  "started": time.time(), "sha256": info["sha256"]}
        self.transfers.append(record)
        self._changed("transfer")
        await self._report({"model": model, "state": "started", "total": info["size"]})

        def progress(done, total):  # in the download's thread
            if self._stop.is_set():
                raise Stopping(f"{self.node_id} stopping: {model} not fetched")
            self.loading[model]["bytes"] = record["bytes"] = done
            self._changed("transfer")

        try:
            with httpx.Client(base_url=self.center_url, timeout=60) as client:
                result = await in_daemon_thread(
                    download, client, f"/models/{model}?node_id={self.node_id}",
                    self.models_dir, model,
                    info["sha256"], info["size"], filename=model + _extension(info),
                    headers=self._auth(), progress=progress)
        except TransferError as err:
            self.loading.pop(model, None)
            self.ready.pop(model, None)
            record.update(state="failed", error=str(err))
            self._changed("transfer")
            await self._report({"model": model, "state": "failed", "error": str(err)})
            return
        self.loading[model]["state"] = record["state"] = "load"
        self._changed("transfer")
        try:
            load_s = await self.engine.load(model, result.path)
        except Exception as err:  # a model the engine cannot run is reported, not hung on
            self.loading.pop(model, None)
            self.ready.pop(model, None)
            record.update(state="failed", error=f"load: {type(err).__name__}: {err}")
            self._changed("transfer")
            await self._report({"model": model, "state": "failed",
                                "error": f"load: {type(err).__name__}: {err}"})
            return
        if model not in self.target and not self.in_hand.get(model):
            # evicted meanwhile, no task waits for it: not left loaded
            self.loading.pop(model, None)
            self.ready.pop(model, None)
            self.engine.unload(model)
            if os.path.exists(result.path):
                (shutil.rmtree if os.path.isdir(result.path) else os.unlink)(result.path)
            record["state"] = "evicted"
            return
        self.files[model] = result.path
        self.loading.pop(model, None)
        self.ready[model].set()
        record.update(state="done", seconds=result.seconds, retries=result.retries)
        self._changed("transfer")
        await self._report({"model": model, "state": "done", "bytes": result.size,
                            "seconds": result.seconds, "retries": result.retries,
                            "sha256": info["sha256"], "load_s": load_s})

    async def _report(self, body):
        if self._stop.is_set():  # the center's client is closing, or closed
            return
        with contextlib.suppress(httpx.HTTPError):
            await self._call("POST", "/api/transfers", json={"node_id": self.node_id, **body})


async def in_daemon_thread(func, *args, **kwargs):
    """``func`` in a thread the process does not wait for at its exit: a download that
    its stopping agent abandons may wait for bytes the center sends only when its own
    shutdown ends the transfer (asyncio.to_thread's pool would hold the exit as long)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(method, value):
        if not future.done():  # not cancelled meanwhile
            method(value)

    def run():
        try:
            outcome = (future.set_result, func(*args, **kwargs))
        except BaseException as err:  # the caller's to see, as to_thread's
            outcome = (future.set_exception, err)
        with contextlib.suppress(RuntimeError):  # the loop closed: no one waits
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, daemon=True, name=f"{func.__name__}").start()
    return await future


def _extension(info):
    """The extension of the center's file (``.gguf`` stays ``.gguf``), else ``.bin``."""
    return os.path.splitext(info.get("name") or "")[1] or ".bin"


class _NodeSpec:
    """The node's figures as the center sent them (its topology entry)."""

    def __init__(self, spec):
        self.id, self.slots, self.speed = spec["id"], int(spec["slots"]), float(spec["speed"])
        self.rtt_s, self.bandwidth_mbps = float(spec["rtt_s"]), float(spec["bandwidth_mbps"])

    def send_s(self, n_bytes):
        return self.rtt_s / 2 + n_bytes * 8 / (self.bandwidth_mbps * 1e6)


def partial_dir(models_dir):
    return os.path.join(models_dir, PARTIAL)
