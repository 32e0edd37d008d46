"""A fleet job's tasks through the live center: one ``LiveRun`` per test case.

The run's ``DistributionCenter`` (fleet/center.py, the simulator's own) places each
task when the run's clock reaches its arrival time and plans caches at caching rounds;
the center (live/center.py) carries its decisions out: edge tasks go to the nodes'
queues, cloud tasks to the center's simulated cloud, cache plans to the nodes as
their target models. Each task is answered once: an answer from an attempt that is
no longer current (the node had left READY and the task went elsewhere) is dropped
and counted.

Times: the run's clock is the fleet's, ``(real seconds since the start) / time_scale
+ the first arrival``: with simulated engines a ``time_scale`` below 1 runs a fleet's
hour in minutes, and every figure comes back in the fleet's seconds.
"""

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field

from edgellm.fleet.center import DistributionCenter
from edgellm.fleet.timeline import SlotClock, TokenBucket
from edgellm.records import FleetOutcome, response_score

_TASK_IDS = itertools.count(1)


@dataclass
class LiveTask:
    key: int                       # the client's position of the task in the run
    sample: dict
    arrival_s: float               # on the fleet's clock
    id: int = field(default_factory=lambda: next(_TASK_IDS))
    task: object = None            # its FleetTask, once it arrived
    placement: object = None
    attempt: int = 0
    node: str = None               # the node serving the current attempt
    placed_at: float = None        # real time (monotonic) of the first placement
    response: dict = None
    redispatched: int = 0

    @property
    def answered(self):
        return self.response is not None


class _Round:
    def __init__(self, number, caching, cache):
        self.number, self.caching, self.cache = number, caching, cache
        self.tasks, self.e2e, self.ttft, self.queue = {}, {}, {}, {}

    def add(self, key, response):
        perf = response["perf"]
        self.tasks[key] = self.tasks.get(key, 0) + 1
        self.e2e.setdefault(key, []).append(perf["e2e_latency"])
        self.ttft.setdefault(key, []).append(perf["time_to_first_token"])


class LiveRun:
    """The module docstring; ``settings`` are the fleet module's (offloader, caching,
    caching_every, slo_s, seed and the policies' own)."""

    def __init__(self, run_id, topology, settings, time_scale=1.0, seed=0):
        self.id = run_id
        self.topology = topology
        self.settings = dict(settings)
        self.time_scale = float(time_scale)
        self.center = DistributionCenter(topology, **self.settings)
        self.cloud_bucket = TokenBucket(topology.cloud.rate_limit_rps)
        self.seed = int(self.settings.get("seed", seed))
        self.tasks = {}                # task id -> LiveTask
        self.by_key = {}               # client key -> LiveTask
        self._arrivals = []            # heap of (arrival_s, key, task id) not yet placed
        self.t0 = None                 # real (monotonic) time of the first arrival
        self.origin = None             # the first arrival, on the fleet's clock
        self.round = None
        self.rounds = []
        self.transfers = []            # {"node", "model", "gb", "bytes", "seconds", "retries"}
        self.redispatched = 0
        self.late_answers = 0
        self.node_failures = 0
        self.transfer_retries = 0
        self.count = 0
        self._facts = {"nodes": {n.id: n.slots for n in topology.nodes}}
        self.finished_keys = []        # keys of answered tasks, in answer order
        self._on_node = {n.id: {} for n in topology.nodes}  # node -> its unanswered tasks

    # -- the clock ----------------------------------------------------------------------

    def now(self):
        """The fleet's clock (seconds)."""
        if self.t0 is None:
            return self.origin or 0.0
        return (time.monotonic() - self.t0) / self.time_scale + self.origin

    def real_until(self, fleet_s):
        """Real seconds from now until ``fleet_s`` on the fleet's clock."""
        return max(0.0, (fleet_s - self.now()) * self.time_scale)

    # -- tasks ------------------------------------------------------------------------

    def submit(self, items):
        """``items``: (key, sample) pairs; each arrives at its ``arrival_s`` (or at once)."""
        for key, sample in items:
            arrival = sample.get("arrival_s")
            task = LiveTask(key=key, sample=sample,
                            arrival_s=float(arrival) if arrival is not None else math.nan)
            self.tasks[task.id] = task
            self.by_key[key] = task
            heapq.heappush(self._arrivals, (task.arrival_s if arrival is not None else -1.0,
                                            key, task.id))

    def next_arrival(self):
        return self._arrivals[0][0] if self._arrivals else None

    def due(self):
        """The tasks whose arrival time has come, in arrival order."""
        out = []
        while self._arrivals:
            arrival, _, task_id = self._arrivals[0]
            if self.t0 is not None and arrival >= 0 and arrival > self.now():
                break
            heapq.heappop(self._arrivals)
            task = self.tasks[task_id]
            if self.t0 is None:
                self.t0 = time.monotonic()
                self.origin = arrival if arrival >= 0 else 0.0
            if arrival < 0:  # no arrival time: it arrives now
                task.arrival_s = self.now()
                task.sample = dict(task.sample, arrival_s=task.arrival_s)
            out.append(task)
        return out

    def arrive(self, task, nodes):
        """Make ``task`` the center's: its FleetTask, a new round when it begins one
        (``nodes`` report in then). Returns whether a caching round began."""
        task.task = self.center.task(task.sample, self.count)
        self.count += 1
        caching = False
        if self.round is None or task.task.round != self.round.number:
            caching = self._begin_round(task.task, nodes)
        self.center.arrived(task.task)
        return caching

    def _begin_round(self, fleet_task, nodes):
        self.finish_round()
        self.center.start(fleet_task.arrival_s)
        caching = self.center.caching_due(fleet_task.round)
        self.report_nodes(nodes)
        self.center.report_cloud(self.cloud_bucket)
        cache = {node.id: list(nodes.models_of(node.id)) for node in self.topology.nodes}
        self.round = _Round(fleet_task.round, caching, cache)
        return caching

    def report_nodes(self, nodes):
        """What the nodes report: each READY node's models (ready now, or when its
        transfer and load are expected to end) and its slots' expected free times
        (its tasks in flight and queued, as the center placed them). A node that is
        not READY offers nothing."""
        now = self.now()
        self.center.report_models([nodes.ready_at(node.id, now) for node in self.topology.nodes])
        for i, node in enumerate(self.topology.nodes):
            clock = SlotClock(node.slots)
            clock.free = [now] * node.slots
            for task in self.in_flight(node.id):  # each busy until expected, not longer
                start = task.placement.start_s if task.placement.start_s is not None else now
                k = clock.free.index(min(clock.free))
                busy = task.placement.expected_latency_s - (start - task.task.arrival_s)
                clock.free[k] = max(clock.free[k], start + max(0.0, busy))
            self.center.report_node(i, clock)

    def in_flight(self, node_id):
        """The tasks placed on ``node_id`` and not answered yet, in placement order."""
        return list(self._on_node[node_id].values())

    def place(self, task):
        placement = self.center.place(task.task)
        task.placement = placement
        if task.placed_at is None:
            task.placed_at = time.monotonic()
        task.attempt += 1
        if task.node is not None:
            self._on_node[task.node].pop(task.id, None)
        task.node = None if placement.cloud else self.topology.nodes[placement.node].id
        if task.node is not None:
            self._on_node[task.node][task.id] = task
        return placement

    def cloud_answer(self, task, answer, start):
        """(when it is answered on the fleet's clock, response) of a task the center's
        simulated cloud answers with ``answer``, served from ``start`` (its place in the
        cloud's rate limit) at the cloud's speeds."""
        cloud = self.topology.cloud
        prompt, tokens = task.task.prompt_tokens, answer["usage"]["completion_tokens"]
        queue = start - task.task.arrival_s
        itl = 1.0 / cloud.decode_tokens_per_s
        ttft = queue + cloud.rtt_s + prompt / cloud.prefill_tokens_per_s
        e2e = ttft + (tokens - 1) * itl
        cost = (prompt * cloud.input_per_mtok + tokens * cloud.output_per_mtok) / 1e6
        response = self._response(task, answer, tier="cloud", node="cloud",
                                  model=cloud.profile, ttft=ttft, e2e=e2e, queue=queue,
                                  load=0.0, network=cloud.rtt_s, cost=cost, hit=None,
                                  start=start, busy=0.0)
        return task.task.arrival_s + e2e, response

    # -- answers ------------------------------------------------------------------------

    def edge_answer(self, task, attempt, report, nodes):
        """The node's report of one attempt -> the task's response; None when that
        attempt is no longer current (dropped, counted)."""
        if task.answered or attempt != task.attempt:
            self.late_answers += 1
            return None
        # What the node measured is on the fleet's clock (its engine and link sleep
        # time_scale times the modelled seconds); the rest of the time between placing
        # the task and its answer (HTTP to the node and back) is real: not scaled.
        scale = self.time_scale
        perf = report["perf"]
        elapsed = time.monotonic() - task.placed_at
        overhead = max(0.0, elapsed - perf["e2e_s"])
        e2e = perf["e2e_s"] / scale + overhead
        ttft = min(e2e, perf["ttft_s"] / scale + overhead)
        node = self.topology.nodes[task.placement.node]
        model = self.topology.models[task.placement.model]
        answer = report["answer"]
        hit = self.center.cache_hit(task.placement.node, task.task,
                                    nodes.ready_at(node.id, task.task.arrival_s))
        response = self._response(task, answer, tier="edge", node=node.id, model=model.id,
                                  ttft=ttft, e2e=e2e, queue=perf["queue_s"] / scale,
                                  load=perf["load_wait_s"] / scale,
                                  network=perf["network_s"] / scale + overhead, cost=0.0,
                                  hit=hit, start=task.task.arrival_s + perf["start_s"] / scale,
                                  busy=perf["busy_s"] / scale)
        if report.get("error"):
            response["error"] = report["error"]
        return response

    def record(self, task, response):
        """``task`` is answered: its response is final; the center learns from it."""
        task.response = response
        if task.node is not None:
            self._on_node[task.node].pop(task.id, None)
        if self.round is not None:
            self.round.add(task.node or "cloud", response)
        node = task.placement.node
        self.center.note_answer(node, task.placement.model, task.task,
                                response["usage"]["completion_tokens"])
        perf = response["perf"]
        if self.center.offloader.learns:  # scoring an answer costs: only for learners
            self.center.note_outcome(FleetOutcome(
                task=task.task, node=node, model=task.placement.model,
                expected_latency_s=task.placement.expected_latency_s,
                wait_s=perf["queue_time"] + perf["model_load_time"],
                quality=_quality(task.sample, response), latency_s=perf["e2e_latency"]))
        self.finished_keys.append(task.key)

    def _response(self, task, answer, *, tier, node, model, ttft, e2e, queue, load, network,
                  cost, hit, start, busy):
        response = {"completion": None, "prediction": None, "replayed": False, "error": None,
                    **answer}
        tokens = response["usage"]["completion_tokens"]
        itl = (e2e - ttft) / (tokens - 1) if tokens > 1 else None  # records.token_gap
        response.update(tier=tier, node=node, model=model, cost_usd=cost,
                        round=task.task.round, slo_s=self.center.slo_s, cache_hit=hit,
                        redispatched=task.redispatched, live=True)
        response["perf"] = {
            "time_to_first_token": ttft, "internal_token_latency": itl,
            "throughput": 1.0 / itl if itl else None, "e2e_latency": e2e,
            "queue_time": queue, "network_time": network, "model_load_time": load,
            "arrival_s": task.task.arrival_s, "start_s": start,
            "finish_s": task.task.arrival_s + e2e, "busy_s": busy}
        facts = self._take_facts()
        if facts:
            response["fleet"] = facts
        return response

    # -- facts of the run ---------------------------------------------------------------

    def note_transfer(self, transfer):
        self.transfers.append(transfer)
        self.transfer_retries += int(transfer.get("retries") or 0)
        self._facts.setdefault("transfers", []).append(
            {k: transfer[k] for k in ("node", "model", "gb", "seconds")})
        if transfer.get("retries"):
            self._facts["transfer_retries"] = self._facts.get("transfer_retries", 0) + \
                int(transfer["retries"])

    def note_node_failure(self, node_id):
        self.node_failures += 1
        self._facts["node_failures"] = self._facts.get("node_failures", 0) + 1

    def note_redispatch(self):
        self.redispatched += 1

    def _take_facts(self):
        facts, self._facts = self._facts, {}
        return facts

    def finish_round(self):
        if self.round is None:
            return
        self.center.close_round()
        self.rounds.append(self.round)
        self.round = None

    @property
    def done(self):
        return not self._arrivals and len(self.finished_keys) == len(self.tasks)

    def round_rows(self):
        """The round log, as the simulator writes it (edgellm.fleet.rounds)."""
        names = [n.id for n in self.topology.nodes] + ["cloud"]
        rows = []
        for rnd in self.rounds + ([self.round] if self.round else []):
            for name in names:
                e2e, ttft = rnd.e2e.get(name, []), rnd.ttft.get(name, [])
                rows.append({
                    "round": rnd.number, "node": name, "tasks": rnd.tasks.get(name, 0),
                    "queue_len": rnd.queue.get(name, 0),
                    "e2e_mean_s": sum(e2e) / len(e2e) if e2e else math.nan,
                    "e2e_p95_s": _percentile(e2e, 95) if e2e else math.nan,
                    "ttft_mean_s": sum(ttft) / len(ttft) if ttft else math.nan,
                    "cache": ";".join(rnd.cache.get(name, [])),
                    "caching_round": int(rnd.caching)})
        return rows

    def summary(self):
        answered = [t for t in self.tasks.values() if t.answered]
        finish = [t.response["perf"]["finish_s"] for t in answered]
        makespan = (max(finish) - (self.origin or 0.0)) if finish else 0.0
        return {"run": self.id, "topology": self.topology.name, "tasks": len(self.tasks),
                "answered": len(answered), "makespan_s": makespan, "live": True,
                "answered_twice": len(self.finished_keys) - len(set(self.finished_keys)),
                "time_scale": self.time_scale,
                "offloader": type(self.center.offloader).__name__,
                "caching": type(self.center.caching).__name__,
                "caching_every": self.center.caching_every, "slo_s": self.center.slo_s,
                "transfers": len(self.transfers),
                "transfer_gb": sum(t["gb"] for t in self.transfers),
                "transfer_retries": self.transfer_retries,
                "redispatched": self.redispatched, "late_answers": self.late_answers,
                "node_failures": self.node_failures}


def _percentile(values, q):
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(math.floor(position))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _quality(sample, response):
    """The answer's item score, 0-1 (what a learning offloader is rewarded with)."""
    return float(response_score({"gold": sample.get("gold"),
                                 "task_type": response.get("task_type")}, response))
