"""Reading the responses out of Ianvs joint-inference results, shared by the metric
modules: which responses answered, which were produced on which tier, and how long
the run took.

The runner, like Ianvs, hands every metric script of a test case the same results
list; what the metrics derive from it (the answering responses, their timings, the
token and cost totals per tier) is computed once per list (``once``), not once per
metric: a case of 10^5 results would otherwise be walked a dozen times. Metrics
read results and never change them."""

import collections

import numpy as np

_last = {"results": None, "length": -1, "values": {}}


def once(y_pred, name, compute):
    """``compute(y_pred)``, computed once per results list and ``name``. The list
    is held until the next one (or ``forget``), so its identity cannot be reused."""
    if _last["results"] is not y_pred or _last["length"] != len(y_pred):
        _last.update(results=y_pred, length=len(y_pred), values={})
    values = _last["values"]
    if name not in values:
        values[name] = compute(y_pred)
    return values[name]


def forget():
    """Drop the last results list and what was computed from it (after a case)."""
    _last.update(results=None, length=-1, values={})


def answers(y_pred):
    """The responses that answered, without failed requests (a shared list: read it,
    do not change it)."""
    return once(y_pred, "answers", lambda results: [
        r[1] for r in results if r[1] is not None and not r[1].get("error")])


def answer_perf(y_pred, key):
    """``perf[key]`` of the answering responses that have it (``perf``), read-only."""
    def compute(results):
        values = perf(answers(results), key)
        values.flags.writeable = False
        return values
    return once(y_pred, ("perf", key), compute)


def tiered(y_pred):
    """``(tier, response)`` of every edge and cloud result (``r[2]``, ``r[3]``), each
    response once. The tier is the response's own: a fleet's cloud fallback comes
    back as the edge module's result with tier "cloud". A response without one takes
    the side it sits on."""
    for r in y_pred:
        edge, cloud = r[2], r[3]
        if edge is not None:
            yield edge.get("tier") or "edge", edge
        if cloud is not None and cloud is not edge:
            yield cloud.get("tier") or "cloud", cloud


def tier_totals(y_pred):
    """{(tier, key): total} over every response produced (``tiered``, failed ones
    included) for the keys ``prompt_tokens``, ``completion_tokens`` (from ``usage``)
    and ``cost_usd``; ``("all", "cost_usd")`` sums the edge and cloud costs in the
    results' order."""
    def compute(results):
        totals = collections.defaultdict(int)
        for tier, r in tiered(results):
            usage, cost = r["usage"], float(r.get("cost_usd") or 0.0)
            totals[tier, "prompt_tokens"] += usage["prompt_tokens"]
            totals[tier, "completion_tokens"] += usage["completion_tokens"]
            totals[tier, "cost_usd"] += cost
            if tier in ("edge", "cloud"):
                totals["all", "cost_usd"] += cost
        return dict(totals)
    return once(y_pred, "tier_totals", compute)


def produced(y_pred):
    """Every response produced: the edge and cloud results (``r[2]``, ``r[3]``), each
    once, failed ones included (the fleet charges its facts, transfers and nodes, to
    whichever task triggered them). ``r[1]`` is always one of the two, but sedna hands
    it over as a copy, so it is not counted again. A shared list: read it only."""
    return once(y_pred, "produced", lambda results: [response for _, response in tiered(results)])


def perf(responses, key):
    """``perf[key]`` of the responses that have it, as a float array."""
    values = [r["perf"].get(key) for r in responses]
    return np.array([v for v in values if v is not None], dtype=np.float64)


def makespan(responses):
    """max(finish_s) - min(arrival_s) when every response carries both (requests on a
    shared timeline, as the fleet's), else None."""
    arrival = perf(responses, "arrival_s")
    finish = perf(responses, "finish_s")
    if not responses or arrival.size != len(responses) or finish.size != len(responses):
        return None
    return float(finish.max() - arrival.min())


def duration(responses):
    """Seconds the requests took: their makespan when they overlap on a timeline (the
    fleet), else the sum of their end-to-end latencies, as Ianvs' loop issues them
    one after another."""
    span = makespan(responses)
    return span if span is not None else float(perf(responses, "e2e_latency").sum())
