"""The distribution center on a discrete-event clock.

Per task (in arrival order): the center (fleet/center.py, the same decisions the live
fleet makes) places it on a (node, model) from its view, or the SLO-aware fallback
sends it to the cloud; the model answers;
the actual timeline charges network transfer, queueing at the node's slots, the
wait for a model still loading, prefill and decode. Every ``caching_every``
rounds the caching policy re-plans each node's models and the transfers and
loads are paid on the timeline. Learning offloaders get each round's outcomes
before the next round is placed.

``serve(sample)`` answers one task (how Ianvs calls the edge model);
``serve_batch(samples)`` answers many with the same results, generating each
round's answers model by model in one call.
"""

import heapq
import math
from collections import defaultdict

import numpy as np

from edgellm.fleet.center import BYTES_PER_TOKEN, DistributionCenter
from edgellm.fleet.timeline import NodeState, TokenBucket
from edgellm.models.simulated import SimulatedLLM
from edgellm.records import FleetOutcome, token_gap
from edgellm.tasks.references import parse_reference
from edgellm.tasks.scoring import item_score


class _Round:
    """What happens in one round, per node: the round log's raw material."""

    def __init__(self, number, caching, cache):
        self.number, self.caching, self.cache = number, caching, cache
        self.tasks = defaultdict(int)
        self.queue = defaultdict(int)
        self.e2e = defaultdict(list)
        self.ttft = defaultdict(list)


class FleetSimulator:
    """The fleet on a discrete-event clock: a ``DistributionCenter`` decides (the same
    one the live center runs), this class plays the world: the nodes' slots, transfers
    and loads, the cloud's rate limit, and the answers (simulated models, or real
    servers for nodes with a ``base_url``)."""

    def __init__(self, topology, offloader="LeastLoaded", caching="Static", caching_every=20,
                 slo_s=None, seed=0, endpoints=None, **params):
        self.topology = topology
        self.center = DistributionCenter(topology, offloader, caching, caching_every, slo_s,
                                         seed, **params)
        self.seed = int(seed)
        self.states = [NodeState(n) for n in topology.nodes]
        for state, ready_at in zip(self.states, self.center.ready_at):
            state.ready_at.update(ready_at)
        self.cloud = topology.cloud
        self.cloud_bucket = TokenBucket(self.cloud.rate_limit_rps)
        self.endpoints = endpoints or {}   # (node index, model index) -> real backend
        self._llms = {}
        self.rounds = []                 # finished _Round records
        self.transfers = []              # every model transfer, for the summary
        self._round = None
        self._facts = {"nodes": {n.id: n.slots for n in topology.nodes}}
        self._count = 0
        self._start_s = None
        self._end_s = 0.0

    @property
    def offloader(self):
        return self.center.offloader

    @property
    def caching(self):
        return self.center.caching

    # -- the answer models ----------------------------------------------------------

    def _llm(self, model_index):
        """The simulated model answering for catalog entry ``model_index`` (-1: cloud)."""
        llm = self._llms.get(model_index)
        if llm is None:
            # answers follow the topology's quality (the profile's unless overridden)
            if model_index < 0:
                llm = SimulatedLLM(self.cloud.profile, tier="cloud", node="cloud", seed=self.seed,
                                   accuracy=self.cloud.quality)
            else:
                model = self.topology.models[model_index]
                llm = SimulatedLLM(model.profile, tier="edge", seed=self.seed,
                                   accuracy=model.quality)
            self._llms[model_index] = llm
        return llm

    def _generate(self, node, model, samples):
        backend = self.endpoints.get((node, model))
        if backend is not None:
            return [dict(backend.generate(s), measured=True) for s in samples]
        return self._llm(model).generate_batch(samples)

    # -- rounds and caching -----------------------------------------------------------

    def _task(self, sample):
        task = self.center.task(sample, self._count)
        self._count += 1
        if self._round is None or task.round != self._round.number:
            self._begin_round(task)
        self.center.arrived(task)
        return task

    def _begin_round(self, task):
        self.finish_round()
        if self._start_s is None:
            self._start_s = task.arrival_s
            self.center.start(task.arrival_s)
        caching = self.center.caching_due(task.round)
        if caching:
            self._plan_caches(task.arrival_s)
        for i, state in enumerate(self.states):   # nodes report in: the view catches up
            self.center.report_node(i, state.actual)
        self.center.report_cloud(self.cloud_bucket)
        cache = {s.node.id: [self.topology.models[m].id for m in sorted(s.ready_at)]
                 for s in self.states}
        self._round = _Round(task.round, caching, cache)

    def _plan_caches(self, now):
        resident = [[self.topology.models[m].id for m in sorted(s.ready_at)]
                    for s in self.states]
        plans = self.center.plan_caches(now, resident)
        moved = []
        for state, index in zip(self.states, plans):
            node = state.node
            for m in list(state.ready_at):
                if m not in index:
                    del state.ready_at[m]   # eviction frees memory at once
            for m in index:
                if m in state.ready_at:
                    continue
                model = self.topology.models[m]
                begin = max(now, state.link_free)
                state.link_free = begin + node.transfer_s(model.size_gb)
                load_s = model.size_gb * model.load_s_per_gb / node.speed
                state.ready_at[m] = state.link_free + load_s
                moved.append({"node": node.id, "model": model.id, "gb": model.size_gb,
                              "seconds": state.ready_at[m] - begin})
        self.center.report_models([s.ready_at for s in self.states])
        self.transfers.extend(moved)
        self._facts.setdefault("transfers", []).extend(moved)

    def finish_round(self):
        """Close the current round: the center learns from it, the log gets it."""
        if self._round is None:
            return
        self.center.close_round()
        self.rounds.append(self._round)
        self._round = None

    # -- the actual timeline ----------------------------------------------------------

    def _complete(self, task, sample, placement, answer):
        node, model, expected = placement.node, placement.model, placement.expected_latency_s
        rnd = self._round
        if node < 0:
            response = self._complete_cloud(task, answer)
            key = "cloud"
        else:
            response = self._complete_edge(task, node, model, answer)
            key = self.states[node].node.id
        perf = response["perf"]
        rnd.tasks[key] += 1
        rnd.e2e[key].append(perf["e2e_latency"])
        rnd.ttft[key].append(perf["time_to_first_token"])
        self._end_s = max(self._end_s, perf["finish_s"])
        if self._facts:
            response["fleet"], self._facts = self._facts, {}
        # the center learns answer lengths and outcomes when the round closes
        self.center.note_answer(node, model, task, response["usage"]["completion_tokens"])
        if self.offloader.learns:
            self.center.note_outcome(FleetOutcome(
                task=task, node=node, model=model, expected_latency_s=expected,
                wait_s=perf["queue_time"] + perf["model_load_time"],
                quality=_quality(sample, task.task_type, response),
                latency_s=perf["e2e_latency"]))
        return response

    def _complete_edge(self, task, node, model, answer):
        state = self.states[node]
        spec, catalog = state.node, self.topology.models[model]
        prompt, tokens = task.prompt_tokens, answer["usage"]["completion_tokens"]
        up = spec.send_s(prompt * BYTES_PER_TOKEN)
        at_node = task.arrival_s + up
        free = state.actual.earliest()
        ready = state.ready_at.get(model, at_node)
        # a waiting request's fixed cost (overhead_s: HTTP, parsing) is paid while it
        # waits, outside the slot, so its service may start that much before the slot
        # frees (measured on llama.cpp's server: docs/llama-cpp.md)
        front = catalog.overhead_s / spec.speed
        start = max(at_node, free - front, ready)
        holds = max(start, free)  # when it takes the slot: never before the one ahead ends
        load_wait = max(0.0, ready - max(at_node, free))  # the wait beyond the slot's
        queue = start - at_node - load_wait
        if answer.get("measured"):  # a real node: its server measured prefill and decode
            first = answer["perf"]["time_to_first_token"]
            busy = answer["perf"]["e2e_latency"]
            ttft = queue + load_wait + first
            itl = answer["perf"]["internal_token_latency"]
            e2e = queue + load_wait + busy
            network = answer["perf"].get("network_time") or 0.0
        else:
            # a batching server slows each request it serves with others (the model's
            # measured load_slowdown): those in service when this one starts, and itself
            # (the clock does not know yet who comes after). Requests waiting for a slot
            # cost nothing: a one-at-a-time server (llama.cpp's, measured) runs as fast
            # with a queue as without (docs/llama-cpp.md)
            slow = catalog.slowdown(1 + state.actual.busy_at(holds)) \
                if catalog.load_slowdown else 1.0
            prefill = catalog.prefill_s(prompt, spec.speed) * slow
            itl = catalog.token_s(prompt, tokens, spec.speed) * slow
            decoded = max(tokens, 1) - 1  # an empty answer (an error) decodes nothing
            busy = prefill + decoded * itl
            ttft = start - task.arrival_s + prefill + spec.rtt_s / 2
            e2e = ttft + decoded * itl
            network = up + spec.rtt_s / 2
        # the slot's time: less a front paid while waiting (an answer shorter than its
        # own fixed cost holds it for none)
        occupied = max(0.0, start + busy - holds)
        state.actual.take(holds, occupied)
        state.busy_s += occupied
        self._round.queue[spec.id] = max(self._round.queue[spec.id],
                                         state.queue_len(task.arrival_s) + 1)
        heapq.heappush(state.in_system, task.arrival_s + e2e)
        hit = self.center.cache_hit(node, task, state.ready_at)
        return self._response(answer, task, tier="edge", node=spec.id, model=catalog.id,
                              ttft=ttft, itl=itl, e2e=e2e, start=start, busy=occupied,
                              queue=queue, load=load_wait, network=network, cost=0.0, hit=hit)

    def _complete_cloud(self, task, answer):
        cloud = self.cloud
        prompt, tokens = task.prompt_tokens, answer["usage"]["completion_tokens"]
        start = self.cloud_bucket.admit(task.arrival_s)
        queue = start - task.arrival_s
        itl = 1.0 / cloud.decode_tokens_per_s
        ttft = queue + cloud.rtt_s + prompt / cloud.prefill_tokens_per_s
        e2e = ttft + (tokens - 1) * itl
        cost = (prompt * cloud.input_per_mtok + tokens * cloud.output_per_mtok) / 1e6
        return self._response(answer, task, tier="cloud", node="cloud", model=cloud.profile,
                              ttft=ttft, itl=itl, e2e=e2e, start=start, busy=0.0, queue=queue,
                              load=0.0, network=cloud.rtt_s, cost=cost, hit=None)

    def _response(self, answer, task, *, tier, node, model, ttft, itl, e2e, start, busy, queue,
                  load, network, cost, hit):
        response = dict(answer)   # simulated answers are shared: never edit them in place
        response.pop("measured", None)
        response.update(tier=tier, node=node, model=model, cost_usd=cost, round=task.round,
                        slo_s=self.center.slo_s, cache_hit=hit)
        itl = token_gap(itl, response["usage"]["completion_tokens"])
        response["perf"] = {
            "time_to_first_token": ttft, "internal_token_latency": itl,
            "throughput": 1.0 / itl if itl else None, "e2e_latency": e2e,
            "queue_time": queue, "network_time": network, "model_load_time": load,
            "arrival_s": task.arrival_s, "start_s": start, "finish_s": task.arrival_s + e2e,
            "busy_s": busy}
        return response

    # -- serving --------------------------------------------------------------------

    def serve(self, sample):
        """One task, as Ianvs' per-sample loop asks."""
        task = self._task(sample)
        placement = self.center.place(task)
        answer = self._generate(placement.node, placement.model, [sample])[0]
        return self._complete(task, sample, placement, answer)

    def serve_answered(self, sample, answer):
        """One task whose answer is given (a recorded one): placed as ``serve`` places
        it, its answer's tokens charged on the clock. What real answers would have
        taken on the modelled fleet (benchmarks/sim_to_real.py compares the two)."""
        task = self._task(sample)
        return self._complete(task, sample, self.center.place(task), answer)

    def serve_batch(self, samples):
        """Many tasks in arrival order; the same responses as ``serve`` one by one."""
        responses = []
        start = 0
        while start < len(samples):
            number = samples[start].get("round")
            if number is None:   # no rounds given: one by one
                responses.append(self.serve(samples[start]))
                start += 1
                continue
            end = start + 1   # a run of the same round: placed, then answered together
            while end < len(samples) and samples[end].get("round") == number:
                end += 1
            run = samples[start:end]
            tasks, placements = [], []
            for sample in run:   # each task is placed before the next one arrives
                task = self._task(sample)
                tasks.append(task)
                placements.append(self.center.place(task))
            groups = defaultdict(list)
            for i, placement in enumerate(placements):
                node, model = placement.node, placement.model
                key = (node, model) if (node, model) in self.endpoints else (-2, model)
                groups[key].append(i)
            answers = [None] * len(run)
            for (node, model), rows in groups.items():
                for i, answer in zip(rows, self._generate(node, model, [run[i] for i in rows])):
                    answers[i] = answer
            responses.extend(self._complete(t, s, p, a)
                             for t, s, p, a in zip(tasks, run, placements, answers))
            start = end
        return responses

    # -- what the run produced ------------------------------------------------------

    def round_rows(self):
        """The round log: one row per (round, node), the cloud as node "cloud"."""
        names = [s.node.id for s in self.states] + ["cloud"]
        rows = []
        for rnd in self.rounds + ([self._round] if self._round else []):
            for name in names:
                e2e = rnd.e2e.get(name, [])
                ttft = rnd.ttft.get(name, [])
                rows.append({
                    "round": rnd.number, "node": name, "tasks": rnd.tasks.get(name, 0),
                    "queue_len": rnd.queue.get(name, 0),
                    "e2e_mean_s": float(np.mean(e2e)) if e2e else math.nan,
                    "e2e_p95_s": float(np.percentile(e2e, 95)) if e2e else math.nan,
                    "ttft_mean_s": float(np.mean(ttft)) if ttft else math.nan,
                    "cache": ";".join(rnd.cache.get(name, [])),
                    "caching_round": int(rnd.caching)})
        return rows

    def summary(self):
        """Per-node figures of the run (the case folder's fleet.json)."""
        makespan = max(0.0, self._end_s - (self._start_s or 0.0))
        nodes = {}
        for state in self.states:
            node = state.node
            nodes[node.id] = {
                "slots": node.slots, "busy_s": state.busy_s,
                "utilisation": state.busy_s / (node.slots * makespan) if makespan else 0.0,
                "models": [self.topology.models[m].id for m in sorted(state.ready_at)]}
        return {"topology": self.topology.name, "tasks": self._count, "makespan_s": makespan,
                "offloader": type(self.offloader).__name__,
                "caching": type(self.caching).__name__,
                "caching_every": self.center.caching_every, "slo_s": self.center.slo_s,
                "transfers": len(self.transfers),
                "transfer_gb": sum(t["gb"] for t in self.transfers), "nodes": nodes}


def _quality(sample, task_type, response):
    """The answer's item score, 0-1 (what a learning offloader is rewarded with)."""
    if response.get("error"):
        return 0.0
    if response.get("score") is not None:
        return float(response["score"])
    return float(item_score(task_type, response.get("prediction"),
                            parse_reference(task_type, sample.get("gold"))))
