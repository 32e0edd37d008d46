"""Reading the responses out of Ianvs joint-inference results, shared by the metric
modules: which responses answered, which were produced on which tier, and how long
the run took."""

import numpy as np


def answers(y_pred):
    """The responses that answered, without failed requests."""
    return [r[1] for r in y_pred if r[1] is not None and not r[1].get("error")]


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


def produced(y_pred):
    """Every response produced: the edge and cloud results (``r[2]``, ``r[3]``), each
    once, failed ones included (the fleet charges its facts, transfers and nodes, to
    whichever task triggered them). ``r[1]`` is always one of the two, but sedna hands
    it over as a copy, so it is not counted again."""
    return [response for _, response in tiered(y_pred)]


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
