"""APGR, CPT(50%), CPT(80%) and AIQ as leaderboard metrics: the cost-quality curve of
one test case's router, from its joint-inference results as Ianvs hands them to a
metric script (``y_true``, and ``y_pred`` = ``[is_hard, res, edge_result,
cloud_result]`` per query).

A curve sweeps the router's threshold over the same queries (edgellm.metrics.
routing_curves), so it needs, for every query, two things one test case does not
normally hold:

- the router's **score**: a learned router (``ScoringRouter``) and the RandomRouter
  write it on the sample they route (``router_score``: sedna hands the router and then
  the model the same sample dict), and the edge and cloud modules
  (edgellm.models.tiers) copy it onto their response;
- **both models' outcomes**: the answering response has its own; the other model's
  comes with it when the models replay recorded outcomes with ``counterpart_model``
  (edgellm.models.replay: each replayed response carries the other model's recorded
  outcome of the same item as ``counterpart``), or when both tiers answered
  (inference-then-mining, escalated queries).

Where any query lacks either, the four metrics are NaN and one warning says what is
missing: a curve over part of the queries, or with outcomes guessed, would not be the
router's. Routers without a score (EdgeOnly, CloudOnly, OracleRouter, CascadeRouter)
get NaN, said at log level INFO only: that is expected. A router's curve does not
depend on its threshold: the test cases of one fitted router over a threshold grid
show the same figures.

Values: APGR and AIQ as fractions (4 decimals); CPT as a percentage of the queries
sent to the cloud (2 decimals, as Edge Ratio). docs/metrics.md has the table,
docs/routing-evaluation.md the definitions.
"""

import logging
import math

import numpy as np

from edgellm.metrics.responses import once
from edgellm.metrics.routing_curves import CPT_LEVELS, aiq, aiq_cost_range, apgr, cpt, sweep
from edgellm.outcomes import OutcomeSet
from edgellm.records import COUNTERPART, ROUTER_SCORE, response_outcome

LOG = logging.getLogger(__name__)

class MissingOutcomes(ValueError):
    """The results do not hold what a curve needs; the message says what."""


def case_outcomes(y_true, y_pred):
    """(router scores, OutcomeSet) of one test case's results; raises MissingOutcomes
    naming what is missing and for how many queries."""
    n = len(y_pred)
    if n == 0:
        raise MissingOutcomes("no results")
    scores = np.full(n, np.nan)
    edge = np.full((n, 3), np.nan)
    cloud = np.full((n, 3), np.nan)
    no_score = no_other = 0
    for i, (gold, result) in enumerate(zip(y_true, y_pred)):
        is_hard, res, edge_res, cloud_res = result
        if res is None:
            no_score += 1
            no_other += 1
            continue
        score = res.get(ROUTER_SCORE)
        if score is None or not math.isfinite(float(score)):
            no_score += 1
        else:
            scores[i] = float(score)
        tier = res.get("tier") or ("cloud" if is_hard else "edge")
        own, other = (edge, cloud) if tier == "edge" else (cloud, edge)
        own[i] = response_outcome(gold, res)
        answered_other = cloud_res if tier == "edge" else edge_res
        if answered_other is not None and answered_other is not res:
            other[i] = response_outcome(gold, answered_other)  # both tiers answered this query
        elif isinstance(res.get(COUNTERPART), dict):
            other[i] = response_outcome(gold, res[COUNTERPART])
        else:
            no_other += 1
    problems = []
    if no_score:
        problems.append(f"{no_score} of {n} answers carry no router score (the router gives "
                        "none: only learned routers and RandomRouter do, in "
                        "mining-then-inference)")
    if no_other:
        problems.append(f"{no_other} of {n} answers lack the other model's outcome (replay "
                        "recorded outcomes of both models with counterpart_model set on the "
                        "edge and cloud modules)")
    if problems:
        err = MissingOutcomes("; ".join(problems))
        # a router that gives no scores at all (EdgeOnly, CloudOnly, ...): NaN as expected
        err.router_without_scores = no_score == n and not no_other
        raise err
    ids = [str(i) for i in range(n)]
    outcomes = OutcomeSet(ids=ids, queries=[""] * n, subjects=[None] * n,
                          task_types=["multiple_choice"] * n,
                          edge_score=edge[:, 0], edge_cost=edge[:, 1], edge_latency=edge[:, 2],
                          cloud_score=cloud[:, 0], cloud_cost=cloud[:, 1],
                          cloud_latency=cloud[:, 2], source="test case results")
    return scores, outcomes


def curve_figures(y_true, y_pred):
    """{"APGR", "CPT(50%)", "CPT(80%)", "AIQ"} of the case's router curve (CPT in %),
    all NaN (with one warning) when the results cannot give the curve. Computed once
    per results list (edgellm.metrics.responses.once): the four metric functions of
    one case share it."""
    # the value holds y_true, so its id in the key cannot be reused while cached
    return once(y_pred, ("curve_figures", id(y_true)),
                lambda results: (y_true, _curve_figures(y_true, results)))[1]


def _curve_figures(y_true, y_pred):
    names = ["APGR", *(f"CPT({level:.0%})" for level in CPT_LEVELS), "AIQ"]
    try:
        scores, outcomes = case_outcomes(y_true, y_pred)
    except MissingOutcomes as err:
        log = LOG.info if getattr(err, "router_without_scores", False) else LOG.warning
        log("routing curve metrics (APGR, CPT, AIQ) are NaN for this test case: %s", err)
        return dict.fromkeys(names, math.nan)
    curve = sweep(scores, outcomes, name="router")
    figures = {"APGR": round(apgr(curve), 4)}
    for level in CPT_LEVELS:
        figures[f"CPT({level:.0%})"] = round(100.0 * cpt(curve, level), 2)
    figures["AIQ"] = round(aiq(curve, aiq_cost_range(outcomes)), 4)
    return {k: (math.nan if v is None or not math.isfinite(v) else v)
            for k, v in figures.items()}


def _figure(name, doc):
    def metric(y_true, y_pred):
        return curve_figures(y_true, y_pred)[name]
    metric.__name__ = name.lower().replace("(", "_").replace("%)", "")
    metric.__doc__ = doc
    return metric


METRICS = {
    "APGR": _figure("APGR", "APGR: average performance gap recovered over the router's "
                            "threshold sweep (RouteLLM), 0-1; NaN without scores and both "
                            "models' outcomes."),
    "CPT(50%)": _figure("CPT(50%)", "CPT(50%) (%): share of queries sent to the cloud at "
                                    "which half the gap between the models is recovered "
                                    "(RouteLLM)."),
    "CPT(80%)": _figure("CPT(80%)", "CPT(80%) (%): the same for 80 % of the gap."),
    "AIQ": _figure("AIQ", "AIQ: area under the router's non-decreasing convex hull in "
                          "cost-quality space over the cost range (RouterBench), 0-1."),
}

