"""The records every layer shares, defined once with every field.

Samples and responses stay plain dicts at run time (Ianvs hands dicts to metric
scripts, and a dict costs nothing on the hot path); the ``TypedDict`` classes below are
their definitions, for readers and type checkers. A field not listed here is a
backend's own extra (the record keeps it; metrics do not read it).

- ``Sample``: one query after the dataset processor: what routers and models see.
- ``Response``: one model's answer, a superset of the Ianvs LLM example's layout.
- ``JointResult``: one query's joint-inference result, ``[is_hard, res, edge, cloud]``.
- ``FleetTask``, ``FleetOptions``, ``FleetOutcome``: what an offloader sees of a task,
  its choices and, after the round, what the task really scored and took.

Times are seconds throughout. Latency fields follow vLLM's serving benchmark
(docs/metrics.md): TTFT = request sent to first token, TPOT = (e2e - TTFT) /
(output tokens - 1), ITL = the gaps between tokens, E2E = sent to last token.
"""

import math
from dataclasses import dataclass
from typing import Any, List, Optional, TypedDict, Union

import numpy as np

from edgellm.tasks.references import parse_reference
from edgellm.tasks.scoring import is_correct, item_score

# Keys more than one layer writes or reads.
ROUTER_SCORE = "router_score"  # on a sample (the router writes it) and on its response
COUNTERPART = "counterpart"  # on a replayed response: the other model's recorded outcome
DEFAULT_TASK_TYPE = "multiple_choice"  # a sample without a task type


class _SampleRequired(TypedDict):
    query: Union[str, List[dict]]  # the text, or chat messages sent as they are
    gold: Any  # the reference answer, as the dataset writes it (the raw y)
    task_type: str  # a task type name (tasks/task_types.yaml)


class Sample(_SampleRequired, total=False):
    id: Any  # the dataset line (what sedna keeps), or the item's own id
    subject: Optional[str]  # Ianvs' level_4_dim (MMLU subject)
    round: int  # fleet workloads: the round the task arrives in
    arrival_s: float  # fleet workloads: its arrival time on the run's clock
    router_score: float  # written by a scoring router: higher = more in need of the cloud


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Perf(TypedDict, total=False):
    time_to_first_token: float  # TTFT
    internal_token_latency: Optional[float]  # mean gap between output tokens (TPOT);
    # None for fewer than two output tokens (no gap to measure)
    throughput: Optional[float]  # 1 / internal_token_latency, tokens/s (Ianvs' figure)
    e2e_latency: float  # request sent to last token
    queue_time: float  # waited for a slot before service
    network_time: float  # on the wire (round trip, transfer)
    model_load_time: float  # waited for the model to load
    itl: List[float]  # real backends: each gap between output tokens
    tpot: Optional[float]  # real backends: (e2e - ttft) / (output tokens - 1); None below 2
    arrival_s: float  # fleet: the task's arrival on the run's clock
    start_s: float  # fleet: when service started
    finish_s: float  # fleet: when the last token arrived
    busy_s: float  # fleet: seconds of node slot time the task used


class Response(TypedDict, total=False):
    completion: Optional[str]  # the model's text (None: an outcome-matrix replay)
    prediction: Any  # what scoring compares with gold (a letter, label, entity dict...)
    usage: Usage
    perf: Perf
    tier: str  # "edge" or "cloud"
    node: str  # the node that answered ("edge", "cloud" or a fleet node id)
    model: str  # the model identity
    cost_usd: float
    replayed: bool  # answered from the response store
    error: Optional[str]  # a failed request: left out of quality and latency figures
    task_type: str
    score: float  # outcome-matrix replays: the recorded 0-1 score
    router_score: float  # copied from the sample (ROUTER_SCORE)
    counterpart: dict  # replay with counterpart_model: the other model's outcome
    mean_logprob: float  # mean token log-probability, where the backend reports one
    round: int  # fleet: the task's round
    slo_s: Optional[float]  # fleet: the latency SLO the cloud fallback guarded
    cache_hit: Optional[bool]  # fleet: the task's preferred model was loaded
    fleet: dict  # fleet: facts of the run (nodes, transfers), on the first response


# [is_hard, res, edge_result, cloud_result]: Ianvs' joint-inference result of one query
# (the unused side None); a list, as sedna builds it, so metric scripts index it.
JointResult = list


def joint_result(record):
    """The ``JointResult`` of one record of a case's results.jsonl (``edgellm run``
    writes is_hard, edge and cloud; the answer is the cloud's when the query was hard,
    as sedna's joint inference has it)."""
    hard = bool(record["is_hard"])
    edge, cloud = record.get("edge"), record.get("cloud")
    return [hard, cloud if hard else edge, edge, cloud]


def token_gap(itl, completion_tokens):
    """TPOT as vLLM's serving benchmark has it: a request with fewer than two output
    tokens has no time between tokens (None, left out of means and percentiles), not 0."""
    return itl if completion_tokens is not None and completion_tokens > 1 else None


def make_response(completion, prediction, prompt_tokens, completion_tokens, *,
                  ttft, itl, e2e, tier, node, model, cost_usd=0.0, queue_time=0.0,
                  network_time=0.0, model_load_time=0.0, replayed=False, error=None,
                  task_type=DEFAULT_TASK_TYPE) -> Response:
    """A ``Response``. ``itl`` is the mean gap between tokens (vLLM's TPOT; None for
    fewer than two output tokens, ``token_gap``); ``throughput`` its inverse in
    tokens/s, as in Ianvs' example."""
    itl = token_gap(itl, completion_tokens)
    return {
        "completion": completion,
        "prediction": prediction,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "perf": {"time_to_first_token": ttft, "internal_token_latency": itl,
                 "throughput": (1.0 / itl) if itl else None, "e2e_latency": e2e,
                 "queue_time": queue_time, "network_time": network_time,
                 "model_load_time": model_load_time},
        "tier": tier, "node": node, "model": model, "cost_usd": cost_usd,
        "replayed": replayed, "error": error, "task_type": task_type,
    }


def response_score(sample, response):
    """A response's quality on 0-1: its recorded score (outcome matrices) or its
    prediction scored against the sample's gold answer; a failed request scores 0."""
    if response.get("error"):
        return 0.0
    recorded = response.get("score")
    if recorded is not None:
        return float(recorded)
    task = sample.get("task_type") or DEFAULT_TASK_TYPE
    if task == DEFAULT_TASK_TYPE:  # the common case, kept cheap
        return float(is_correct(response.get("prediction"), sample["gold"]))
    return item_score(task, response.get("prediction"), parse_reference(task, sample["gold"]))


def response_outcome(gold, response):
    """(score 0-1, cost USD, e2e seconds or NaN) of a response, or of a ``counterpart``
    record (which keeps ``e2e_latency`` at its top level)."""
    sample = {"gold": gold, "task_type": response.get("task_type") or DEFAULT_TASK_TYPE}
    perf = response.get("perf") or {}
    latency = perf.get("e2e_latency", response.get("e2e_latency"))
    return (response_score(sample, response), float(response.get("cost_usd") or 0.0),
            math.nan if latency is None else float(latency))


# -- the fleet: what an offloader sees ------------------------------------------------

@dataclass
class FleetTask:
    """What the center knows of a task when it places it."""

    index: int                 # position in the run
    task_type: str
    type_index: int            # row in the fleet's task-type list
    prompt_tokens: int
    arrival_s: float
    round: int


@dataclass
class FleetOptions:
    """The edge options for one task (numpy arrays, one entry per (node, model) row)."""

    node: np.ndarray           # node index
    model: np.ndarray          # catalog index
    quality: np.ndarray        # expected quality (0-1) of the model for the task type
    latency_s: np.ndarray      # expected end-to-end latency from arrival (the center's view)
    wait_s: np.ndarray         # expected wait before service starts (queue + model load)
    ready: np.ndarray          # model ready now (not still loading)

    def __len__(self):
        return len(self.node)


@dataclass
class FleetOutcome:
    """A served task, as learning offloaders see it after its round."""

    task: FleetTask
    node: int                  # node index; -1 for the cloud
    model: int                 # catalog index; -1 for the cloud
    expected_latency_s: float
    wait_s: float
    quality: float             # item score, 0-1
    latency_s: float           # measured end-to-end latency
