"""The distribution center's decisions, the same in the simulation and the live fleet.

A ``DistributionCenter`` keeps the center's view of its fleet: when each node's slots
are expected to be free, which models are ready or still loading where, how long
answers run per model and task type, the cloud's rate limit. From that view it makes
the center's two decisions: where a task goes (``place``: the offloader ranks the edge
options, the SLO-aware fallback may send it to the cloud) and, at caching rounds, what
each node keeps (``plan_caches``: the caching policy). It learns from what the world
reports: node loads when nodes report in (``report_node``), models when transfers and
loads are done (``report_models``), answer lengths and task outcomes when a round
closes (``close_round``).

It never knows which world feeds it: the discrete-event simulator (fleet/simulator.py)
reports its modelled timeline, the live center (edgellm.live) what its edge agents
report over the network. Times are seconds on the fleet's clock.
"""

from dataclasses import dataclass

import numpy as np

from edgellm.fleet.caching import Demand
from edgellm.fleet.registry import create_caching_policy, create_offloader
from edgellm.fleet.timeline import CandidateTable, SlotClock, TokenBucket
from edgellm.models.tokens import estimate_tokens
from edgellm.records import DEFAULT_TASK_TYPE, FleetOptions, FleetTask
from edgellm.tasks.registry import get_task_type, messages_text, task_types

BYTES_PER_TOKEN = 4  # prompts and answers on the wire: ~4 bytes of UTF-8 per token

# What the center expects an answer's length to be before it has seen any
# (completion tokens per task type); replaced by the running mean of what it sees.
PRIOR_COMPLETION_TOKENS = {"multiple_choice": 4, "text_classification": 2,
                           "named_entity_recognition": 20, "question_answering": 6,
                           "translation": 40, "summarization": 60}


@dataclass
class Placement:
    """Where the center sends a task, and what it expects."""

    node: int                  # node index; -1: the cloud
    model: int                 # catalog index; -1: the cloud
    expected_latency_s: float
    start_s: float = None      # expected service start on the node (edge only)

    @property
    def cloud(self):
        return self.node < 0


class DistributionCenter:
    """The module docstring. ``offloader`` and ``caching`` are aliases (or instances);
    ``policy_settings`` are the offloaders' and caching policies' shared settings."""

    def __init__(self, topology, offloader="LeastLoaded", caching="Static", caching_every=20,
                 slo_s=None, seed=0, **policy_settings):
        self.topology = topology
        self.offloader = create_offloader(offloader, seed=seed, **policy_settings) \
            if isinstance(offloader, str) else offloader
        self.caching = create_caching_policy(caching, **policy_settings) \
            if isinstance(caching, str) else caching
        self.caching_every = int(caching_every)
        if self.caching_every < 1:
            raise ValueError(f"caching_every must be at least 1, got {caching_every!r}")
        self.slo_s = float(slo_s) if slo_s not in (None, "", "none") else None
        self.types = list(task_types())
        self.type_index = {t: i for i, t in enumerate(self.types)}
        models, nodes = topology.models, topology.nodes
        self.quality = np.array([[m.quality_for(t) for t in self.types] for m in models])
        self.preferred = [[topology.model_index.get(topology.preferred_model(t, n), -1)
                           for t in self.types] for n in nodes]
        self.cloud = topology.cloud
        # the view: what the center expects of each node's slots and models
        self.free = [SlotClock(n.slots) for n in nodes]
        self.ready_at = [{topology.model_index[m]: 0.0 for m in n.models} for n in nodes]
        # each node's earliest free slot, kept as the view changes: placing a task reads
        # it for every candidate, so it must not cost a Python loop
        self._view_free = np.zeros(len(nodes))
        self.cloud_view = TokenBucket(self.cloud.rate_limit_rps)
        # completion tokens seen per (model, task type); the cloud is the last row
        self.cloud_row = len(models)
        self._tokens_sum = np.zeros((len(models) + 1, len(self.types)))
        self._tokens_n = np.zeros((len(models) + 1, len(self.types)))
        self._expected = None            # expected completion tokens, (models + cloud) x types
        self._per_type = {}              # type index -> per-candidate arrays (see _type_rows)
        self.candidates = CandidateTable(self.ready_at, topology)
        self.demand = Demand()
        self._next_caching = self.caching_every
        self._last_plan_s = None         # when the caching policy last planned
        self._lengths = []               # (row, task type, completion tokens) of the round
        self._pending = []               # outcomes the offloader sees at the round's end

    # -- tasks and rounds -------------------------------------------------------------

    def task(self, sample, index):
        """The ``FleetTask`` of the ``index``-th sample of a run (a sample without a
        round from a RoundWorkload processor gets its defaults: ten tasks a second)."""
        task_type = sample.get("task_type") or DEFAULT_TASK_TYPE
        number, arrival = sample.get("round"), sample.get("arrival_s")
        if number is None:
            number, arrival = index // 10, float(index // 10)
        return FleetTask(index=index, task_type=task_type,
                         type_index=self.type_index[get_task_type(task_type).name],
                         prompt_tokens=prompt_tokens(sample, task_type),
                         arrival_s=float(arrival), round=int(number))

    def arrived(self, task):
        """Count ``task`` in the demand the caching policy plans from."""
        self.demand.add(self.types[task.type_index], task.index)

    def start(self, now):
        if self._last_plan_s is None:
            self._last_plan_s = now

    def caching_due(self, round_number):
        """Whether round ``round_number`` is a caching round (then the next is set)."""
        if round_number < self._next_caching:
            return False
        while self._next_caching <= round_number:
            self._next_caching += self.caching_every
        return True

    def note_answer(self, node, model, task, completion_tokens):
        """An answer's length, learnt when the round closes (as quality is)."""
        self._lengths.append((self.cloud_row if node < 0 else model, task.type_index,
                              completion_tokens))

    def note_outcome(self, outcome):
        """A served task's ``FleetOutcome``, for a learning offloader."""
        if self.offloader.learns:
            self._pending.append(outcome)

    def close_round(self):
        """The round is over: the expected answer lengths and the offloader learn."""
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

    # -- what the world reports --------------------------------------------------------

    def report_node(self, index, slots):
        """Node ``index`` reports in: its slots' free times (a ``SlotClock``)."""
        view = self.free[index]
        view.copy_from(slots)
        self._view_free[index] = view.earliest()

    def report_cloud(self, bucket):
        self.cloud_view.copy_from(bucket)

    def report_models(self, ready_at):
        """Every node's models, ready or loading: ``ready_at[i]`` maps catalog index to
        the time the model is usable on node ``i``."""
        self.ready_at = [dict(r) for r in ready_at]
        self.candidates = CandidateTable(self.ready_at, self.topology)
        self._per_type = {}

    # -- caching ------------------------------------------------------------------------

    def plan_caches(self, now, resident):
        """The models each node should keep from now on, as catalog indices per node,
        given ``resident[i]``, the catalog ids loaded or loading on node ``i``."""
        self.demand.horizon_s = now - self._last_plan_s
        self._last_plan_s = now
        plans = []
        for node, models in zip(self.topology.nodes, resident):
            target = self.caching.plan(node, self.topology, self.demand, list(models))
            index = [self.topology.model_index[m] for m in target]
            used = sum(self.topology.models[m].size_gb for m in index)
            if used > node.memory_gb + 1e-9:
                raise ValueError(f"caching policy {type(self.caching).__name__} planned "
                                 f"{used:.2f} GB for node {node.id} ({node.memory_gb:g} GB)")
            plans.append(index)
        self.demand.next_window()
        return plans

    # -- placement ----------------------------------------------------------------------

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
                                                 (tokens - 1) * c.itl, tokens)
        return rows

    def _decode(self, task):
        """Per candidate: expected quality, and the seconds of service after the linear
        prefill (decode, and where the catalog has them, attention's terms:
        CatalogModel.prefill_s, token_s)."""
        c = self.candidates
        quality, decode, tokens = self._type_rows(task.type_index)
        if c.attention:
            prompt = task.prompt_tokens
            decode = decode + prompt * prompt * c.s_per_prompt_token2 \
                + (tokens - 1) * c.s_per_context_token * (prompt + tokens / 2)
        return quality, decode

    def options(self, task):
        """The edge options and, per option, when the center expects service to start
        and its seconds of service after the linear prefill (``_decode``)."""
        c = self.candidates
        if not len(c):
            return None, None, None
        quality, decode = self._decode(task)
        at_node = task.arrival_s + c.half_rtt \
            + task.prompt_tokens * BYTES_PER_TOKEN * c.s_per_byte
        # a waiting request's fixed cost is paid while it waits (the simulator's clock)
        start = np.maximum(np.maximum(at_node, self._view_free[c.node] - c.overhead),
                           c.ready_at)
        latency = start - task.arrival_s + c.overhead \
            + task.prompt_tokens * c.s_per_prompt_token + decode + c.half_rtt
        options = FleetOptions(node=c.node, model=c.model, quality=quality, latency_s=latency,
                               wait_s=start - at_node, ready=c.ready_at <= task.arrival_s)
        return options, start, decode

    def cloud_latency(self, task, bucket=None):
        bucket = bucket or self.cloud_view
        tokens = float(self._expected_tokens(self.cloud_row, task.type_index))
        wait = bucket.peek(task.arrival_s) - task.arrival_s
        return wait + self.cloud.rtt_s + task.prompt_tokens / self.cloud.prefill_tokens_per_s \
            + (tokens - 1) / self.cloud.decode_tokens_per_s

    def place(self, task):
        """Where ``task`` goes: the offloader's edge option, unless the SLO-aware
        fallback expects the cloud to do better on an option that misses the SLO."""
        options, start, decode = self.options(task)
        if options is not None:
            row = self.offloader.choose(task, options)
            latency = float(options.latency_s[row])
            if self.slo_s is None or latency <= self.slo_s \
                    or self.cloud_latency(task) >= latency:
                node, model = int(options.node[row]), int(options.model[row])
                view = self.free[node]
                c = self.candidates
                view.take(float(start[row]), c.overhead[row] + task.prompt_tokens
                          * c.s_per_prompt_token[row] + decode[row])
                self._view_free[node] = view.earliest()
                return Placement(node, model, latency, float(start[row]))
        latency = self.cloud_latency(task)
        self.cloud_view.admit(task.arrival_s)
        return Placement(-1, -1, latency)

    def cache_hit(self, node, task, ready_at):
        """Whether the task's preferred model was ready on ``node`` when it arrived."""
        preferred = self.preferred[node][task.type_index]
        return preferred >= 0 and ready_at.get(preferred, float("inf")) <= task.arrival_s


def prompt_tokens(sample, task_type):
    """The prompt's token count: a sample's own ``prompt_tokens`` where it has one (a
    request whose count is known, as in a replayed trace), else the center's estimate
    (the rendered prompt)."""
    if sample.get("prompt_tokens") is not None:
        return int(sample["prompt_tokens"])
    query = sample.get("query", "")
    if not isinstance(query, str):
        query = messages_text(query)
    return estimate_tokens(get_task_type(task_type).render(query))
