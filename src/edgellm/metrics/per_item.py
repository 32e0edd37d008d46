"""Each leaderboard metric as a statistic of per-query values, for its bootstrap
interval and the paired tests of ``edgellm compare``: the one place that says how a
metric's value comes from the queries of a test case (its ``results.jsonl``).

A definition takes the metric's own arguments, ``(y_true, y_pred)``, and returns an
``edgellm.stats.bootstrap`` statistic whose value on the queries as they are is the
metric's value before rounding (tests/test_compare_items.py holds every definition to
that). Kinds:

- **mean**: a mean over the queries that count (Accuracy, Edge Ratio, TTFT, ITL,
  SLO Attainment, Cache Hit Ratio);
- **ratio**: a ratio of two sums, recomputed per resample (Throughput = answers /
  total TPOT, Ianvs' 1 / mean ITL; Request and Output Token Throughput = answers or
  tokens / total E2E latency), never a mean of ratios;
- **total**: a sum over the queries (tokens, cost, errors);
- **percentile**: a percentile recomputed per resample (TTFT P95, E2E Latency P99).

Metrics that are not a function of separate queries have no definition, with the
reason: corpus scores (BLEU, micro-F1 of entities, macro-F1 of labels), a fleet's
makespan, facts about nodes and transfers, a router's whole curve.
"""

from dataclasses import dataclass

import numpy as np

from edgellm.metrics.joint_inference import mc_item, on_edge, task_item
from edgellm.metrics.responses import makespan
from edgellm.stats.bootstrap import MeanOfRatios, Percentile, RatioOfSums, Total, mean_of
from edgellm.tasks.registry import get_task_type
from edgellm.tasks.scoring import item_score, qa_exact, qa_f1, rouge_f1

MEAN, RATIO, TOTAL, PERCENTILE = "mean", "ratio", "total", "percentile"


class NoItemValues(ValueError):
    """The metric has no per-query definition for these results; says why."""


@dataclass(frozen=True)
class ItemDefinition:
    kind: str
    build: object  # (y_true, y_pred) -> Statistic; raises NoItemValues
    binary: bool = False  # per-item values are 0/1: McNemar's test applies


def _answer(result):
    res = result[1]
    return res if res is not None and not res.get("error") else None


def _answer_perf(y_pred, key):
    """Per query: the answering response's ``perf[key]``; NaN where it has none."""
    values = np.full(len(y_pred), np.nan)
    for i, result in enumerate(y_pred):
        res = _answer(result)
        value = res["perf"].get(key) if res is not None else None
        if value is not None:
            values[i] = value
    return values


def _tiered(result):
    """(tier, response) of a query's edge and cloud responses, each once (as
    ``metrics.responses.tiered``)."""
    edge, cloud = result[2], result[3]
    if edge is not None:
        yield edge.get("tier") or "edge", edge
    if cloud is not None and cloud is not edge:
        yield cloud.get("tier") or "cloud", cloud


def _per_query_total(y_pred, value, tier=None):
    """Per query: the sum of ``value(response)`` over its responses on ``tier``
    (None: edge and cloud)."""
    out = np.zeros(len(y_pred))
    for i, result in enumerate(y_pred):
        out[i] = sum(value(r) for t, r in _tiered(result)
                     if (t == tier if tier else t in ("edge", "cloud")))
    return out


# -- quality ----------------------------------------------------------------------

_DECOMPOSABLE = ("MC", "TC", "QA", "SG")  # primary scores that are means over items


def _accuracy(y_true, y_pred):
    tasks = {(_answer(r).get("task_type") or "multiple_choice")
             for r in y_pred if _answer(r) is not None}
    if tasks <= {"multiple_choice"}:
        values = [mc_item(gold, _answer(r)) if _answer(r) is not None else np.nan
                  for gold, r in zip(y_true, y_pred)]
        return mean_of(values, 100.0)
    parts = []
    for task in sorted(tasks):
        code = get_task_type(task).code
        values = _task_values(y_true, y_pred, task, lambda t, p, ref: item_score(t, p, ref))
        recorded = _recorded(y_true, y_pred, task)
        if code not in _DECOMPOSABLE and not recorded:
            raise NoItemValues(f"its {code} part is a corpus score (no per-query value)")
        parts.append(mean_of(values))
    return MeanOfRatios(parts, scale=100.0)


def _recorded(y_true, y_pred, task):
    return any(_answer(r) is not None and _answer(r).get("score") is not None
               and (_answer(r).get("task_type") or "multiple_choice") == task for r in y_pred)


def _task_values(y_true, y_pred, task, score):
    """Per query of ``task``: its recorded score, else ``score(task, prediction,
    reference)``; NaN for the other queries and unanswered ones."""
    values = np.full(len(y_pred), np.nan)
    for i, (gold, result) in enumerate(zip(y_true, y_pred)):
        res = _answer(result)
        if res is None or (res.get("task_type") or "multiple_choice") != task:
            continue
        kind, prediction, reference, recorded = task_item(gold, res)
        values[i] = recorded if recorded is not None else score(kind, prediction, reference)
    return values


def _task_metric(code, score):
    """A task type's item-averaged score (0-100) over its queries."""
    def build(y_true, y_pred):
        tasks = {(_answer(r).get("task_type") or "multiple_choice") for r in y_pred
                 if _answer(r) is not None}
        task = next((t for t in tasks if get_task_type(t).code == code), None)
        if task is None:
            raise NoItemValues(f"no {code} queries answered")
        return mean_of(_task_values(y_true, y_pred, task, score), 100.0)
    return build


def _mc_score(task, prediction, reference):
    return item_score(task, prediction, reference)


def _tc_score(task, prediction, reference):
    labels = get_task_type("TC").labels
    return float((prediction if prediction in labels else "<none>") == reference)


def _rouge(k):
    return lambda task, prediction, reference: rouge_f1(reference, prediction or "")[k]


# -- the others -------------------------------------------------------------------

def _edge_ratio(y_true, y_pred):
    return mean_of([float(on_edge(r)) for r in y_pred], 100.0)


def _perf_mean(key):
    return lambda y_true, y_pred: mean_of(_answer_perf(y_pred, key))


def _throughput(y_true, y_pred):
    itl = _answer_perf(y_pred, "internal_token_latency")
    counted = np.isfinite(itl)
    return RatioOfSums(counted.astype(float), np.where(counted, itl, 0.0))


def _percentile(key, q):
    return lambda y_true, y_pred: Percentile(_answer_perf(y_pred, key), q)


def _serial_duration(y_pred):
    """Per query, the E2E latency of its answer: the duration is their sum, unless
    the answers overlap on a timeline (the fleet: a makespan, not a sum)."""
    answers = [_answer(r) for r in y_pred if _answer(r) is not None]
    if makespan(answers) is not None:
        raise NoItemValues("the duration is the fleet's makespan, not a sum over queries")
    return np.nan_to_num(_answer_perf(y_pred, "e2e_latency"))


def _request_throughput(y_true, y_pred):
    duration = _serial_duration(y_pred)
    return RatioOfSums([float(_answer(r) is not None) for r in y_pred], duration)


def _output_token_throughput(y_true, y_pred):
    duration = _serial_duration(y_pred)
    tokens = [_answer(r)["usage"]["completion_tokens"] if _answer(r) is not None else 0
              for r in y_pred]
    return RatioOfSums(tokens, duration)


def _usage(tier, key):
    return lambda y_true, y_pred: Total(_per_query_total(y_pred, lambda r: r["usage"][key], tier))


def _cost(tier):
    return lambda y_true, y_pred: Total(
        _per_query_total(y_pred, lambda r: float(r.get("cost_usd") or 0.0), tier))


def _errors(y_true, y_pred):
    return Total([float(r[1] is not None and bool(r[1].get("error"))) for r in y_pred])


def _estimated(y_true, y_pred):
    return Total(_per_query_total(y_pred, lambda r: float(bool(r.get("usage_estimated")))))


def _slo_attainment(y_true, y_pred):
    values = np.full(len(y_pred), np.nan)
    for i, result in enumerate(y_pred):
        res = _answer(result)
        if res is not None and res.get("slo_s") is not None:
            e2e = res["perf"].get("e2e_latency")
            values[i] = float(e2e is not None and e2e <= res["slo_s"])
    return mean_of(values, 100.0)


def _cache_hit_ratio(y_true, y_pred):
    def edge_says(r, tier):
        return tier == "edge" and r.get("tier") == "edge" and r.get("cache_hit") is not None
    hits = [sum(float(r["cache_hit"]) for t, r in _tiered(res) if edge_says(r, t))
            for res in y_pred]
    said = [sum(1.0 for t, r in _tiered(res) if edge_says(r, t)) for res in y_pred]
    return RatioOfSums(hits, said, 100.0)


def _redispatched(y_true, y_pred):
    return Total(_per_query_total(y_pred, lambda r: float(int(r.get("redispatched") or 0))))


DEFINITIONS = {
    "Accuracy": ItemDefinition(MEAN, _accuracy, binary=True),
    "Edge Ratio": ItemDefinition(MEAN, _edge_ratio),
    "Time to First Token": ItemDefinition(MEAN, _perf_mean("time_to_first_token")),
    "Internal Token Latency": ItemDefinition(MEAN, _perf_mean("internal_token_latency")),
    "Throughput": ItemDefinition(RATIO, _throughput),
    "Request Throughput": ItemDefinition(RATIO, _request_throughput),
    "Output Token Throughput": ItemDefinition(RATIO, _output_token_throughput),
    "Errors": ItemDefinition(TOTAL, _errors),
    "Estimated Token Counts": ItemDefinition(TOTAL, _estimated),
    "Cost": ItemDefinition(TOTAL, _cost(None)),
    "Cloud Cost": ItemDefinition(TOTAL, _cost("cloud")),
    "Edge Cost": ItemDefinition(TOTAL, _cost("edge")),
    "MC Accuracy": ItemDefinition(MEAN, _task_metric("MC", _mc_score), binary=True),
    "TC Accuracy": ItemDefinition(MEAN, _task_metric("TC", _tc_score), binary=True),
    "QA F1": ItemDefinition(MEAN, _task_metric("QA", lambda t, p, ref: qa_f1(p, ref))),
    "QA EM": ItemDefinition(MEAN, _task_metric("QA", lambda t, p, ref: qa_exact(p, ref)),
                            binary=True),
    "SG ROUGE-1": ItemDefinition(MEAN, _task_metric("SG", _rouge(0))),
    "SG ROUGE-2": ItemDefinition(MEAN, _task_metric("SG", _rouge(1))),
    "SG ROUGE-L": ItemDefinition(MEAN, _task_metric("SG", _rouge(2))),
    "SLO Attainment": ItemDefinition(MEAN, _slo_attainment),
    "Cache Hit Ratio": ItemDefinition(MEAN, _cache_hit_ratio),
    "Redispatched Tasks": ItemDefinition(TOTAL, _redispatched),
}
for _tier in ("Cloud", "Edge"):
    for _what, _key in (("Prompt", "prompt_tokens"), ("Completion", "completion_tokens")):
        DEFINITIONS[f"{_tier} {_what} Tokens"] = ItemDefinition(TOTAL, _usage(_tier.lower(), _key))
for _label, _key in (("TTFT", "time_to_first_token"), ("E2E Latency", "e2e_latency")):
    for _q in (50, 90, 95, 99):
        DEFINITIONS[f"{_label} P{_q}"] = ItemDefinition(PERCENTILE, _percentile(_key, _q))

_CORPUS = "a corpus score, not a mean over queries"
_FLEET_FACTS = "a fact about the fleet's nodes or transfers, not about queries"
_CURVE = "a figure of the router's whole threshold curve, not a mean over queries"
WHY_NONE = {
    "TC Macro-F1": _CORPUS, "NER F1": _CORPUS, "NER Precision": _CORPUS,
    "NER Recall": _CORPUS, "TS BLEU": _CORPUS, "TS chrF": _CORPUS,
    "Goodput": "the duration is the fleet's makespan, not a sum over queries",
    "Models Transferred": _FLEET_FACTS, "Transfer GB": _FLEET_FACTS,
    "Transfer Seconds": _FLEET_FACTS, "Load Balance": _FLEET_FACTS,
    "Node Utilisation": _FLEET_FACTS, "Max Node Utilisation": _FLEET_FACTS,
    "Node Failures": _FLEET_FACTS, "Transfer Retries": _FLEET_FACTS,
    "APGR": _CURVE, "CPT(50%)": _CURVE, "CPT(80%)": _CURVE, "AIQ": _CURVE,
}
