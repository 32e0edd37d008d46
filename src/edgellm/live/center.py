"""The live distribution center's state and its loops (the HTTP layer is service.py).

``Center`` holds the nodes (live/nodes.py), the event log, the model store, one queue
of dispatched tasks per node and the run in progress (live/runs.py). Two loops run in
the server's event loop: the monitor moves nodes whose heartbeats stopped to NOT_READY
and UNREACHABLE and re-dispatches their tasks; the scheduler places each task of the
run when the run's clock reaches its arrival time and carries out the caching plans.
Everything runs on one asyncio loop, so the state needs no locks.
"""

import asyncio
import collections
import contextlib
import math
import time

from edgellm.fleet.topology import load_topology
from edgellm.live.events import EventLog
from edgellm.live.nodes import DRAINING, READY, NodeTable
from edgellm.live.runs import LiveRun
from edgellm.live.transfer import ModelStore
from edgellm.models.simulated import SimulatedLLM


class RunError(Exception):
    """A run that cannot start or go on; the message says why (one line)."""


class Center:
    def __init__(self, topology_path, models_dir, join_token, time_scale=1.0, heartbeat_s=1.0,
                 not_ready_after_s=3.0, unreachable_after_s=5.0, make_placeholders=False,
                 bytes_per_gb=1 << 20, provision_timeout_s=120.0):
        if not join_token:
            raise ValueError("the center needs a join token (env EDGELLM_JOIN_TOKEN)")
        if not time_scale > 0 or not math.isfinite(time_scale):
            raise ValueError(f"time_scale must be a number above 0, got {time_scale!r}")
        self.topology_path = topology_path
        self.topology = load_topology(topology_path)
        self.join_token = join_token
        self.time_scale = float(time_scale)
        self.events = EventLog()
        self.nodes = NodeTable(self.topology, self.events, heartbeat_s, not_ready_after_s,
                               unreachable_after_s)
        self.store = ModelStore(models_dir, self.topology, make_placeholders, bytes_per_gb)
        self.provision_timeout_s = float(provision_timeout_s)
        self.queues = {n.id: collections.deque() for n in self.topology.nodes}
        self._wake = {}                # node id -> asyncio.Event (made in the loop)
        self.run = None                # the LiveRun in progress
        self.run_ready = asyncio.Event()  # set when a run's nodes are provisioned
        self.finished = {}             # run id -> its summary, round rows and error
        self.run_error = None
        self.eta = {n.id: {} for n in self.topology.nodes}  # model id -> ready (fleet s)
        self._next_run = 1
        self._changed = None           # set when something a waiting reader wants happened
        self.started = time.time()
        # what a monitor (edgellm.web) is told beside the event log, called on the loop:
        # each answered task (task, response) and each heartbeat's report (record)
        self.on_answer = []
        self.on_heartbeat = []

    # -- loops -------------------------------------------------------------------------

    def wake(self, node_id):
        event = self._wake.get(node_id)
        if event is None:
            event = self._wake[node_id] = asyncio.Event()
        event.set()
        return event

    def changed(self):
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def notify(self):
        self.changed().set()
        self._changed = asyncio.Event()

    async def monitor(self, period_s=0.1):
        last = time.monotonic()
        while True:
            now = time.monotonic()
            stalled = now - last - period_s
            if stalled > 0.5:  # the center could not listen: that silence is not the nodes'
                self.nodes.forgive(stalled)
            for record, state in self.nodes.sweep(now):
                self.node_left(record, state)
            last = now
            await asyncio.sleep(period_s)

    async def scheduler(self):
        while True:
            run = self.run
            if run is None or not run.provisioned:
                # woken when a run is provisioned; an idle center does not poll 100
                # times a second (a few % of a core with 100 nodes beating)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.run_ready.wait(), 0.25)
                self.run_ready.clear()
                continue
            try:
                self.place_due(run)
            except Exception as err:  # a policy or data failure ends the run, said once
                self.fail_run(run, f"{type(err).__name__}: {err}")
                continue
            nxt = run.next_arrival()
            wait = 0.05 if nxt is None else min(0.05, run.real_until(nxt))
            await asyncio.sleep(wait)

    # -- nodes ---------------------------------------------------------------------------

    def heartbeat(self, record, report):
        self.nodes.heartbeat(record, report)
        for listener in self.on_heartbeat:
            listener(record)

    def models_of(self, node_id):
        record = self.nodes.nodes.get(node_id)
        if record is None:
            return []
        return list(dict.fromkeys(record.models_ready + list(record.models_loading)))

    def ready_at(self, node_id, now):
        """What node ``node_id`` offers: catalog index -> when each model is usable."""
        record = self.nodes.nodes.get(node_id)
        if record is None or record.state != READY:
            return {}
        index = self.topology.model_index
        offered = {index[m]: 0.0 for m in record.models_ready if m in record.target}
        for model, eta in self.eta[node_id].items():
            if model in record.target and index[model] not in offered:
                offered[index[model]] = max(now, eta)
        return offered

    def node_left(self, record, state):
        """A node left READY: its tasks go elsewhere (a draining node keeps those it
        is already running)."""
        run = self.run
        if run is None:
            return
        if state != DRAINING:
            run.note_node_failure(record.id)
        queued = self.queues[record.id]
        waiting = {item["task_id"] for item in queued}
        queued.clear()
        tasks = [t for t in run.in_flight(record.id) if state != DRAINING or t.id in waiting]
        if not tasks:
            return
        run.report_nodes(self)
        for task in tasks:
            task.redispatched += 1
            run.note_redispatch()
            self.dispatch(run, task)
            self.events.add("redispatch", f"task {task.key} of {record.id} ({state}) went "
                                          f"to {task.node or 'the cloud'}", node=record.id)

    # -- the run -------------------------------------------------------------------------

    def start_run(self, settings, topology_text=None):
        if self.run is not None and not self.run.done:
            raise RunError(f"run {self.run.id} is in progress: one run at a time")
        run = LiveRun(self._next_run, self.topology, settings, self.time_scale)
        run.provisioned = False
        run.cloud_llm = SimulatedLLM(self.topology.cloud.profile, tier="cloud", node="cloud",
                                     seed=run.seed, accuracy=self.topology.cloud.quality)
        self._next_run += 1
        self.run, self.run_error = run, None
        for node in self.topology.nodes:  # every run starts from the topology's placement
            self.set_target(node.id, list(node.models), run=None)
        self.events.add("run_start", f"run {run.id}: {run.settings.get('offloader')} / "
                                     f"{run.settings.get('caching')}")
        asyncio.get_event_loop().create_task(self._provision(run))
        return run

    async def _provision(self, run):
        deadline = time.monotonic() + self.provision_timeout_s
        while time.monotonic() < deadline:
            missing = self.not_provisioned()
            if not missing:
                run.provisioned = True
                self.run_ready.set()
                return
            await asyncio.sleep(0.05)
        self.fail_run(run, f"nodes not ready with their models after "
                           f"{self.provision_timeout_s:g} s: {', '.join(self.not_provisioned())}")

    def not_provisioned(self):
        """Topology nodes not READY, or not holding exactly their initial models."""
        missing = []
        for node in self.topology.nodes:
            record = self.nodes.nodes.get(node.id)
            if record is None or record.state != READY or \
                    sorted(record.models_ready) != sorted(node.models) or record.models_loading:
                missing.append(node.id)
        return missing

    def fail_run(self, run, message):
        self.run_error = message
        self.finished[run.id] = {"error": message}
        self.events.add("error", f"run {run.id} failed: {message}")
        if self.run is run:
            self.run = None
        self.notify()

    def place_due(self, run):
        for task in run.due():
            if run.arrive(task, self):
                self.plan_caches(run)
                run.report_nodes(self)
            self.dispatch(run, task)

    def dispatch(self, run, task):
        placement = run.place(task)
        if placement.cloud:  # its place in the cloud's rate limit: now, in arrival order
            start = run.cloud_bucket.admit(task.task.arrival_s)
            asyncio.get_event_loop().create_task(self._cloud(run, task, task.attempt, start))
            return
        model = self.topology.models[placement.model]
        self.queues[task.node].append({
            "task_id": task.id, "attempt": task.attempt, "run": run.id, "model": model.id,
            "sample": _wire_sample(task.sample), "prompt_tokens": task.task.prompt_tokens})
        self.wake(task.node)

    async def _cloud(self, run, task, attempt, start):
        """The simulated cloud's answer, generated off the event loop (scoring libraries
        can take seconds to import), returned when the fleet's clock says."""
        answer = (await asyncio.to_thread(run.cloud_llm.generate_batch, [task.sample]))[0]
        finish, response = run.cloud_answer(task, answer, start)
        await asyncio.sleep(run.real_until(finish))
        if self.run is run and not task.answered and attempt == task.attempt:
            self._record(run, task, response)

    def accept_result(self, record, result):
        """A node's result; False when it is dropped (late, or for another run)."""
        run = self.run
        task = run.tasks.get(result.get("task_id")) if run is not None else None
        if task is None:
            return False
        response = run.edge_answer(task, result.get("attempt"), result, self)
        if response is None or task.node != record.id:
            self.events.add("late_answer", f"task {task.key}: a late answer from {record.id} "
                                           f"was dropped", node=record.id)
            return False
        self._record(run, task, response)
        return True

    def _record(self, run, task, response):
        run.record(task, response)
        for listener in self.on_answer:
            listener(task, response)
        self.notify()

    def plan_caches(self, run):
        """Carry out a caching round: each node's target models, and when the center
        expects the new ones to be usable (its link moves them one at a time)."""
        now = run.now()
        resident = [self.models_of(n.id) if self._is_ready(n.id) else []
                    for n in self.topology.nodes]
        plans = run.center.plan_caches(now, resident)
        for node, index in zip(self.topology.nodes, plans):
            target = [self.topology.models[m].id for m in index]
            self.set_target(node.id, target, run=run, now=now)

    def _is_ready(self, node_id):
        record = self.nodes.nodes.get(node_id)
        return record is not None and record.state == READY

    def set_target(self, node_id, target, run=None, now=None):
        record = self.nodes.nodes.get(node_id)
        spec = self.topology.nodes[self.nodes.index[node_id]]
        have = set(self.models_of(node_id))
        link_free = now or 0.0
        self.eta[node_id] = {m: e for m, e in self.eta[node_id].items() if m in target}
        for model_id in target:
            if model_id in have:
                continue
            model = self.topology.model(model_id)
            link_free += spec.transfer_s(model.size_gb)
            self.eta[node_id][model_id] = link_free + model.size_gb * model.load_s_per_gb / \
                spec.speed
        if record is not None:
            record.target = list(target)
            self.wake(node_id)

    def note_transfer(self, record, report):
        run = self.run
        state = report.get("state")
        model = report.get("model")
        if state == "started":
            self.events.add("transfer_start", f"{record.id} fetches {model}", node=record.id,
                            model=model, total=report.get("total"))
        elif state == "done":
            self.eta[record.id].pop(model, None)
            size_gb = self.topology.model(model).size_gb if model in \
                self.topology.model_index else 0.0
            transfer = {"node": record.id, "model": model, "gb": size_gb,
                        "bytes": report.get("bytes"), "retries": report.get("retries") or 0,
                        "seconds": (report.get("seconds") or 0.0) / self.time_scale,
                        "sha256": report.get("sha256")}
            loaded = ""
            if isinstance(report.get("load_s"), (int, float)):  # the engine's load time
                transfer["load_s"] = report["load_s"] / self.time_scale
                loaded = f", loaded in {report['load_s']:.2f} s"
            self.events.add("transfer_done", f"{record.id} installed {model} "
                                             f"(sha256 {str(report.get('sha256'))[:12]}, "
                                             f"{transfer['retries']} retries{loaded})",
                            node=record.id, model=model, bytes=transfer["bytes"],
                            sha256=transfer["sha256"], retries=transfer["retries"],
                            **({"load_s": transfer["load_s"]} if "load_s" in transfer else {}))
            if run is not None and run.provisioned:
                run.note_transfer(transfer)
        elif state == "failed":
            expected = self.store.get(model) if isinstance(model, str) else None
            self.events.add("transfer_failed", f"{record.id} could not fetch {model}: "
                                               f"{report.get('error')}", node=record.id,
                            model=model, sha256=expected.sha256 if expected else None)


def _wire_sample(sample):
    """What a node needs of a sample: the query and task type (and, for simulated
    engines, the gold answer their profiles answer from)."""
    keep = ("id", "query", "gold", "task_type", "subject")
    return {k: sample.get(k) for k in keep if k in sample}
