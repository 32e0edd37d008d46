"""Metrics over Ianvs joint-inference results.

Every function takes ``(y_true, y_pred)`` as Ianvs calls metric scripts: ``y_true``
the raw dataset answers, ``y_pred`` a list of ``[is_hard, res, edge_result,
cloud_result]``. ``res`` is the response that answered the query.

Latency definitions follow vLLM's serving benchmark (docs/metrics.md has the
table). Responses with an ``error`` are left out of quality and latency figures
and counted by ``errors``. A response replayed from an outcome matrix carries its
recorded ``score`` (0-1) instead of a completion; quality metrics use it as is. The nine metrics named as in Ianvs' LLM example keep
that example's meaning and rounding, so its users read them as before.

Edge or cloud goes by each response's ``tier`` (a fleet's cloud fallback is the edge
module's result with tier "cloud"); a response without one goes by where it sits.
The fleet's own metrics live in ``edgellm.metrics.fleet``, the routing curves' in
``edgellm.metrics.routing``; ``edgellm.metrics.catalog`` names them all.
"""

import math

import numpy as np

from edgellm.metrics.responses import answer_perf as _answer_perf
from edgellm.metrics.responses import answers as _answers
from edgellm.metrics.responses import duration as _duration
from edgellm.metrics.responses import once as _once
from edgellm.metrics.responses import produced as _produced
from edgellm.metrics.responses import tier_totals as _tier_totals
from edgellm.tasks.extraction import extract_prediction
from edgellm.tasks.multiple_choice import extract_choice
from edgellm.tasks.references import parse_reference
from edgellm.tasks.registry import get_task_type
from edgellm.tasks.scoring import PRIMARY, is_correct, item_score, score_task


def _mean(values, digits):
    return round(float(values.mean()), digits) if values.size else math.nan


def _percentile(values, q):
    return round(float(np.percentile(values, q)), 4) if values.size else math.nan


def by_task_type(y_true, y_pred):
    """{task type: (predictions, references, recorded scores)} of the answered
    queries; a recorded score is None where the response has none. Computed once per
    results list (shared by the task metrics: read it, do not change it)."""
    golds, groups = _once(y_pred, ("by_task_type", id(y_true)),
                          lambda results: (y_true, _by_task_type(y_true, results)))
    return groups if golds is y_true else _by_task_type(y_true, y_pred)


def task_item(gold, res):
    """(task type, prediction, reference, recorded score or None) of one answered
    query: what the task metrics score (the per-item values too)."""
    task = res.get("task_type") or "multiple_choice"
    prediction = res.get("prediction")
    if prediction is None and res.get("completion"):
        prediction = extract_prediction({"task_type": task, "query": ""}, res["completion"])
    return task, prediction, parse_reference(task, gold), res.get("score")


def _by_task_type(y_true, y_pred):
    groups = {}
    for gold, result in zip(y_true, y_pred):
        res = result[1]
        if res is None or res.get("error"):
            continue
        task, prediction, reference, recorded = task_item(gold, res)
        predictions, references, scores = groups.setdefault(task, ([], [], []))
        predictions.append(prediction)
        references.append(reference)
        scores.append(recorded)
    return groups


def task_scores(task, predictions, references, recorded, keys):
    """``score_task`` of one task type's queries; when responses carry recorded
    scores (outcome matrices have no text to score), the primary score is their mean
    (items without one scored one by one) and the other scores are unknown (NaN)."""
    if all(r is None for r in recorded):
        return score_task(task, predictions, references, keys=keys)
    primary = PRIMARY[get_task_type(task).code]
    item = [r if r is not None else item_score(task, p, g)
            for p, g, r in zip(predictions, references, recorded)]
    return {key: 100.0 * float(np.mean(item)) if key == primary else math.nan for key in keys}


def _mc_accuracy(y_true, y_pred):
    """MC accuracy in one pass; None as soon as another task type shows up."""
    right = total = 0
    for gold, result in zip(y_true, y_pred):
        res = result[1]
        if res is None or res.get("error"):
            continue
        if (res.get("task_type") or "multiple_choice") != "multiple_choice":
            return None
        right += mc_item(gold, res)
        total += 1
    return round(100.0 * right / total, 2) if total else math.nan


def mc_item(gold, res):
    """One answered multiple-choice query's score: its recorded score, else 1 when
    the option letter matches the gold one (Accuracy's per-item value)."""
    recorded = res.get("score")
    if recorded is not None:
        return recorded
    prediction = res.get("prediction")
    if prediction is None:
        prediction = extract_choice(res.get("completion"))
    return float(prediction == gold or is_correct(prediction, gold))


def accuracy(y_true, y_pred):
    """Accuracy (%), the headline. Multiple choice only: answered queries whose option
    letter matches the gold one. Mixed task types: the mean over the task types present
    of each one's primary score (TC accuracy, NER F1, QA F1, TS BLEU, SG ROUGE-L, MC
    accuracy), so that every task type weighs the same whatever its item count."""
    mc_only = _mc_accuracy(y_true, y_pred)
    if mc_only is not None:
        return mc_only
    scores = []
    for task, group in by_task_type(y_true, y_pred).items():
        primary = PRIMARY[get_task_type(task).code]
        scores.append(task_scores(task, *group, keys=[primary])[primary])
    return round(float(np.mean(scores)), 2)


def _task_metric(code, key, label):
    def metric(y_true, y_pred):
        for task, group in by_task_type(y_true, y_pred).items():
            if get_task_type(task).code == code:
                return round(float(task_scores(task, *group, keys=[key])[key]), 2)
        return math.nan
    metric.__name__ = f"{code.lower()}_{key}"
    metric.__doc__ = f"{label}: over the {code} queries only (docs/metrics.md)."
    return metric


def on_edge(result):
    """Whether the answering response came from the edge: its tier, else not hard."""
    tier = result[1].get("tier") if result[1] is not None else None
    return tier == "edge" if tier else not result[0]


def edge_ratio(y_true, y_pred):
    """Edge Ratio (%): queries answered on the edge (the answer's tier is "edge";
    without a tier, the router kept it: not hard)."""
    return round(100.0 * (1 - sum(not on_edge(r) for r in y_pred) / len(y_pred)), 2)


def time_to_first_token(y_true, y_pred):
    """Time to First Token (s): mean TTFT of the answering responses."""
    return _mean(_answer_perf(y_pred, "time_to_first_token"), 3)


def internal_token_latency(y_true, y_pred):
    """Internal Token Latency (s): mean over requests of the mean gap between
    output tokens (vLLM's TPOT)."""
    return _mean(_answer_perf(y_pred, "internal_token_latency"), 3)


def throughput(y_true, y_pred):
    """Throughput (token/s), as Ianvs defines it: 1 / mean Internal Token Latency,
    i.e. per-request decode speed, not system throughput (see Output Token Throughput)."""
    itl = _answer_perf(y_pred, "internal_token_latency")
    return round(1.0 / float(itl.mean()), 2) if itl.size and itl.mean() > 0 else math.nan


def _token_sum(y_pred, tier, key):
    return int(_tier_totals(y_pred).get((tier, key), 0))


def edge_prompt_tokens(y_true, y_pred):
    """Edge Prompt Tokens: prompt tokens edge models consumed."""
    return _token_sum(y_pred, "edge", "prompt_tokens")


def edge_completion_tokens(y_true, y_pred):
    """Edge Completion Tokens: completion tokens edge models generated."""
    return _token_sum(y_pred, "edge", "completion_tokens")


def cloud_prompt_tokens(y_true, y_pred):
    """Cloud Prompt Tokens: prompt tokens sent to the cloud model."""
    return _token_sum(y_pred, "cloud", "prompt_tokens")


def cloud_completion_tokens(y_true, y_pred):
    """Cloud Completion Tokens: completion tokens the cloud model generated."""
    return _token_sum(y_pred, "cloud", "completion_tokens")


def _percentile_metric(key, q, doc):
    def metric(y_true, y_pred):
        return _percentile(_answer_perf(y_pred, key), q)
    metric.__doc__ = doc
    metric.__name__ = f"{key}_p{q}"
    return metric


def request_throughput(y_true, y_pred):
    """Request Throughput (req/s): answered requests / duration (their makespan when
    every answer has perf arrival_s and finish_s, as the fleet's do; else the sum of
    their E2E latencies, requests issued one after another as Ianvs' loop does)."""
    responses = _answers(y_pred)
    duration = _duration(responses)
    return round(len(responses) / duration, 4) if duration > 0 else math.nan


def output_token_throughput(y_true, y_pred):
    """Output Token Throughput (token/s): completion tokens / duration."""
    responses = _answers(y_pred)
    duration = _duration(responses)
    tokens = sum(r["usage"]["completion_tokens"] for r in responses)
    return round(tokens / duration, 4) if duration > 0 else math.nan


def _cost(y_pred, tier):
    """USD of the responses on ``tier`` ("all": edge and cloud), failed requests
    included (a provider bills what it served)."""
    return round(float(_tier_totals(y_pred).get((tier, "cost_usd"), 0.0)), 6)


def cost(y_true, y_pred):
    """Cost (USD): edge plus cloud cost of every response produced, from the price
    table (cloud: per million input and output tokens; edge: per hour, where set)."""
    return _cost(y_pred, "all")


def cloud_cost(y_true, y_pred):
    """Cloud Cost (USD): cost of the cloud responses."""
    return _cost(y_pred, "cloud")


def edge_cost(y_true, y_pred):
    """Edge Cost (USD): cost of the edge responses (0 unless cost_per_hour is set)."""
    return _cost(y_pred, "edge")


def estimated_token_counts(y_true, y_pred):
    """Estimated Token Counts: responses whose token counts are estimates (a real
    server sent no usage and no tokenizer of the model was reachable); their tokens and
    cost figures are estimates too. 0 means every count is the model's own."""
    return sum(1 for r in _produced(y_pred) if r.get("usage_estimated"))


def errors(y_true, y_pred):
    """Errors: requests that failed (recorded with an error, not scored)."""
    return sum(1 for r in y_pred if r[1] is not None and r[1].get("error"))


# Metric name (as in testenv.yaml) -> function. Names of Ianvs' LLM example first.
METRICS = {
    "Accuracy": accuracy,
    "Edge Ratio": edge_ratio,
    "Time to First Token": time_to_first_token,
    "Throughput": throughput,
    "Internal Token Latency": internal_token_latency,
    "Cloud Prompt Tokens": cloud_prompt_tokens,
    "Cloud Completion Tokens": cloud_completion_tokens,
    "Edge Prompt Tokens": edge_prompt_tokens,
    "Edge Completion Tokens": edge_completion_tokens,
    "Request Throughput": request_throughput,
    "Output Token Throughput": output_token_throughput,
    "Errors": errors,
    "Estimated Token Counts": estimated_token_counts,
    "Cost": cost,
    "Cloud Cost": cloud_cost,
    "Edge Cost": edge_cost,
}
for _name, _code, _key in (
        ("MC Accuracy", "MC", "accuracy"), ("TC Accuracy", "TC", "accuracy"),
        ("TC Macro-F1", "TC", "macro_f1"), ("NER F1", "NER", "f1"),
        ("NER Precision", "NER", "precision"), ("NER Recall", "NER", "recall"),
        ("QA F1", "QA", "f1"), ("QA EM", "QA", "exact_match"), ("TS BLEU", "TS", "bleu"),
        ("TS chrF", "TS", "chrf"), ("SG ROUGE-1", "SG", "rouge1"), ("SG ROUGE-2", "SG", "rouge2"),
        ("SG ROUGE-L", "SG", "rougeL")):
    METRICS[_name] = _task_metric(_code, _key, _name)
for _label, _key in (("TTFT", "time_to_first_token"), ("E2E Latency", "e2e_latency")):
    for _q in (50, 90, 95, 99):
        METRICS[f"{_label} P{_q}"] = _percentile_metric(
            _key, _q, f"{_label} P{_q} (s): {_q}th percentile over answering responses.")

