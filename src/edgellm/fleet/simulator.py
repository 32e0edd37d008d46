"""The distribution center on a discrete-event clock.

Per task (in arrival order): the offloader places it on a (node, model) from the
center's view, or the SLO-aware fallback sends it to the cloud; the model answers;
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

from edgellm.fleet.caching import Demand
from edgellm.fleet.registry import create_caching_policy, create_offloader
from edgellm.fleet.timeline import CandidateTable, NodeState, TokenBucket
from edgellm.models.tokens import estimate_tokens
from edgellm.models.simulated import SimulatedLLM
from edgellm.records import FleetOptions, FleetOutcome, FleetTask
from edgellm.tasks.references import parse_reference
from edgellm.tasks.registry import get_task_type, messages_text, task_types
from edgellm.tasks.scoring import item_score

BYTES_PER_TOKEN = 4  # prompts and answers on the wire: ~4 bytes of UTF-8 per token

# What the center expects an answer's length to be before it has seen any
# (completion tokens per task type); replaced by the running mean of what it sees.
PRIOR_COMPLETION_TOKENS = {"multiple_choice": 4, "text_classification": 2,
                           "named_entity_recognition": 20, "question_answering": 6,
                           "translation": 40, "summarization": 60}


class _Round:
    """What happens in one round, per node: the round log's raw material."""

    def __init__(self, number, caching, cache):
        self.number, self.caching, self.cache = number, caching, cache
        self.tasks = defaultdict(int)
        self.queue = defaultdict(int)
        self.e2e = defaultdict(list)
        self.ttft = defaultdict(list)


class FleetSimulator:
    def __init__(self, topology, offloader="LeastLoaded", caching="Static", caching_every=20,
                 slo_s=None, seed=0, endpoints=None, **params):
        self.topology = topology
        self.offloader = create_offloader(offloader, seed=seed, **params) \
            if isinstance(offloader, str) else offloader
        self.caching = create_caching_policy(caching, **params) if isinstance(caching, str) \
            else caching
        self.caching_every = int(caching_every)
        if self.caching_every < 1:
            raise ValueError(f"caching_every must be at least 1, got {caching_every!r}")
        self.slo_s = float(slo_s) if slo_s not in (None, "", "none") else None
        self.seed = int(seed)
        self.types = list(task_types())
        self.type_index = {t: i for i, t in enumerate(self.types)}
        models, nodes = topology.models, topology.nodes
        self.quality = np.array([[m.quality_for(t) for t in self.types] for m in models])
        self.states = [NodeState(n) for n in nodes]
        for state in self.states:
            for model_id in state.node.models:
                state.ready_at[topology.model_index[model_id]] = 0.0
        self.preferred = [[topology.model_index.get(topology.preferred_model(t, n), -1)
                           for t in self.types] for n in nodes]
        self.cloud = topology.cloud
        self.cloud_bucket = TokenBucket(self.cloud.rate_limit_rps)
        self.cloud_view = TokenBucket(self.cloud.rate_limit_rps)
        self.endpoints = endpoints or {}   # (node index, model index) -> real backend
        self._llms = {}
        # completion tokens seen per (model, task type); the cloud is the last row
        self.cloud_row = len(models)
        self._tokens_sum = np.zeros((len(models) + 1, len(self.types)))
        self._tokens_n = np.zeros((len(models) + 1, len(self.types)))
        self._expected = None            # expected completion tokens, (models + cloud) x types
        self.demand = Demand()
        self.candidates = CandidateTable(self.states, topology)
        self._per_type = {}              # type index -> per-candidate arrays (see _type_rows)
        # each node's earliest free slot in the view, kept as the view changes: placing
        # a task reads it for every candidate, so it must not cost a Python loop
        self._view_free = np.zeros(len(nodes))
        self.rounds = []                 # finished _Round records
        self.transfers = []              # every model transfer, for the summary
        self._round = None
        self._next_caching = self.caching_every
        self._pending = []               # outcomes the offloader sees at the round's end
        self._lengths = []               # (row, task type, completion tokens) of the round
        self._facts = {"nodes": {n.id: n.slots for n in nodes}}
        self._count = 0
        self._start_s = None
        self._last_plan_s = None         # when the caching policy last planned
        self._end_s = 0.0

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
        index = self._count
        self._count += 1
        task_type = sample.get("task_type") or "multiple_choice"
        number = sample.get("round")
        arrival = sample.get("arrival_s")
        if number is None:   # no RoundWorkload processor: its defaults
            number, arrival = index // 10, float(index // 10)
        task = FleetTask(index=index, task_type=task_type,
                    type_index=self.type_index[get_task_type(task_type).name],
                    prompt_tokens=_prompt_tokens(sample, task_type), arrival_s=float(arrival),
                    round=int(number))
        if self._round is None or task.round != self._round.number:
            self._begin_round(task)
        self.demand.add(self.types[task.type_index], index)
        return task

    def _begin_round(self, task):
        self.finish_round()
        if self._start_s is None:
            self._start_s = self._last_plan_s = task.arrival_s
        caching = task.round >= self._next_caching
        if caching:
            while self._next_caching <= task.round:
                self._next_caching += self.caching_every
            self._plan_caches(task.arrival_s)
        for state in self.states:   # nodes report in: the view catches up with the facts
            state.view.copy_from(state.actual)
        self._view_free = np.array([s.view.earliest() for s in self.states], dtype=np.float64)
        self.cloud_view.copy_from(self.cloud_bucket)
        cache = {s.node.id: [self.topology.models[m].id for m in sorted(s.ready_at)]
                 for s in self.states}
        self._round = _Round(task.round, caching, cache)

    def _plan_caches(self, now):
        self.demand.horizon_s = now - self._last_plan_s
        self._last_plan_s = now
        moved = []
        for state in self.states:
            node = state.node
            resident = [self.topology.models[m].id for m in sorted(state.ready_at)]
            target = self.caching.plan(node, self.topology, self.demand, resident)
            index = [self.topology.model_index[m] for m in target]
            used = sum(self.topology.models[m].size_gb for m in index)
            if used > node.memory_gb + 1e-9:
                raise ValueError(f"caching policy {type(self.caching).__name__} planned "
                                 f"{used:.2f} GB for node {node.id} ({node.memory_gb:g} GB)")
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
        self.demand.next_window()
        self.candidates = CandidateTable(self.states, self.topology)
        self._per_type = {}
        self.transfers.extend(moved)
        self._facts.setdefault("transfers", []).extend(moved)

    def finish_round(self):
        """Close the current round: the offloader learns from it, the log gets it."""
        if self._round is None:
            return
        for row, type_index, tokens in self._lengths:
            self._tokens_sum[row, type_index] += tokens
            self._tokens_n[row, type_index] += 1
        if self._lengths:
            self._expected = None
            self._per_type = {}
        self._lengths = []
        if self._pending:
            if self.offloader.learns:
                self.offloader.observe(self._pending)
            self._pending = []
        self.rounds.append(self._round)
        self._round = None

    # -- placement (the center's view) ----------------------------------------------

    def _expected_tokens(self, models, type_index):
        # the running means change only when a round closes: one table until then
        if self._expected is None:
            n = self._tokens_n
            prior = np.array([PRIOR_COMPLETION_TOKENS.get(t, 8) for t in self.types],
                             dtype=np.float64)
            self._expected = np.where(n > 0, self._tokens_sum / np.maximum(n, 1), prior)
        return self._expected[models, type_index]

    def _type_rows(self, type_index):
        """Per candidate, for one task type: expected quality and decode seconds (they
        change only when the candidates or the expected lengths do)."""
        rows = self._per_type.get(type_index)
        if rows is None:
            c = self.candidates
            tokens = self._expected_tokens(c.model, type_index)
            rows = self._per_type[type_index] = (self.quality[c.model, type_index],
                                                 (tokens - 1) * c.itl)
        return rows

    def _options(self, task):
        """The edge options and, per option, when the center expects service to start."""
        c = self.candidates
        if not len(c):
            return None, None
        quality, decode = self._type_rows(task.type_index)
        at_node = task.arrival_s + c.half_rtt \
            + task.prompt_tokens * BYTES_PER_TOKEN * c.s_per_byte
        start = np.maximum(np.maximum(at_node, self._view_free[c.node]), c.ready_at)
        latency = start - task.arrival_s + task.prompt_tokens * c.s_per_prompt_token \
            + decode + c.half_rtt
        options = FleetOptions(node=c.node, model=c.model, quality=quality, latency_s=latency,
                          wait_s=start - at_node, ready=c.ready_at <= task.arrival_s)
        return options, start

    def _cloud_latency(self, task, bucket):
        tokens = float(self._expected_tokens(self.cloud_row, task.type_index))
        wait = bucket.peek(task.arrival_s) - task.arrival_s
        return wait + self.cloud.rtt_s + task.prompt_tokens / self.cloud.prefill_tokens_per_s \
            + (tokens - 1) / self.cloud.decode_tokens_per_s

    def _place(self, task):
        """(node index, model index, expected latency); node -1 is the cloud."""
        options, start = self._options(task)
        if options is not None:
            row = self.offloader.choose(task, options)
            latency = float(options.latency_s[row])
            if self.slo_s is None or latency <= self.slo_s \
                    or self._cloud_latency(task, self.cloud_view) >= latency:
                node, model = int(options.node[row]), int(options.model[row])
                decode = self._type_rows(task.type_index)[1]
                view = self.states[node].view
                view.take(float(start[row]), task.prompt_tokens
                          * self.candidates.s_per_prompt_token[row] + decode[row])
                self._view_free[node] = view.earliest()
                return node, model, latency
        latency = self._cloud_latency(task, self.cloud_view)
        self.cloud_view.admit(task.arrival_s)
        return -1, -1, latency

    # -- the actual timeline ----------------------------------------------------------

    def _complete(self, task, sample, placement, answer):
        node, model, expected = placement
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
        # the center learns answer lengths when the round closes (as it learns quality)
        self._lengths.append((self.cloud_row if node < 0 else model, task.type_index,
                              response["usage"]["completion_tokens"]))
        if self.offloader.learns:
            self._pending.append(FleetOutcome(
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
        start = max(at_node, free, ready)
        load_wait = max(0.0, ready - max(at_node, free))
        queue = start - at_node - load_wait
        if answer.get("measured"):  # a real node: its server measured prefill and decode
            first = answer["perf"]["time_to_first_token"]
            busy = answer["perf"]["e2e_latency"]
            ttft = queue + load_wait + first
            itl = answer["perf"]["internal_token_latency"]
            e2e = queue + load_wait + busy
            network = answer["perf"].get("network_time") or 0.0
        else:
            prefill = prompt / (catalog.prefill_tokens_per_s * spec.speed)
            itl = 1.0 / (catalog.decode_tokens_per_s * spec.speed)
            busy = prefill + (tokens - 1) * itl
            ttft = start - task.arrival_s + prefill + spec.rtt_s / 2
            e2e = ttft + (tokens - 1) * itl
            network = up + spec.rtt_s / 2
        state.actual.take(start, busy)
        state.busy_s += busy
        self._round.queue[spec.id] = max(self._round.queue[spec.id],
                                         state.queue_len(task.arrival_s) + 1)
        heapq.heappush(state.in_system, task.arrival_s + e2e)
        preferred = self.preferred[node][task.type_index]
        hit = preferred >= 0 and state.ready_at.get(preferred, math.inf) <= task.arrival_s
        return self._response(answer, task, tier="edge", node=spec.id, model=catalog.id,
                              ttft=ttft, itl=itl, e2e=e2e, start=start, busy=busy, queue=queue,
                              load=load_wait, network=network, cost=0.0, hit=hit)

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
                        slo_s=self.slo_s, cache_hit=hit)
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
        placement = self._place(task)
        answer = self._generate(placement[0], placement[1], [sample])[0]
        return self._complete(task, sample, placement, answer)

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
                placements.append(self._place(task))
            groups = defaultdict(list)
            for i, (node, model, _) in enumerate(placements):
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
                "caching": type(self.caching).__name__, "caching_every": self.caching_every,
                "slo_s": self.slo_s, "transfers": len(self.transfers),
                "transfer_gb": sum(t["gb"] for t in self.transfers), "nodes": nodes}


def _prompt_tokens(sample, task_type):
    query = sample.get("query", "")
    if not isinstance(query, str):
        query = messages_text(query)
    return estimate_tokens(get_task_type(task_type).render(query))


def _quality(sample, task_type, response):
    """The answer's item score, 0-1 (what a learning offloader is rewarded with)."""
    if response.get("error"):
        return 0.0
    if response.get("score") is not None:
        return float(response["score"])
    return float(item_score(task_type, response.get("prediction"),
                            parse_reference(task_type, sample.get("gold"))))
