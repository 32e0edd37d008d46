"""Every metric by the name a testenv.yaml gives it, and what a metric script calls.

One ``Registry`` of the joint-inference, fleet and routing-curve metrics: a name
defined twice is an error. An example metric script is one line,
``register_metric("Accuracy")``, which hands the library's function to sedna's
``ClassFactory`` under that name.
"""

from edgellm.metrics import fleet, joint_inference, routing
from edgellm.metrics.responses import answers
from edgellm.registry import ClassFactory, ClassType, Registry

METRICS = Registry("metric")
for _module in (joint_inference, fleet, routing):
    for _name, _function in _module.METRICS.items():
        METRICS.register(_name, _function)


def register_metric(name):
    """Register metric ``name`` with sedna's class registry under that name (what an
    example metric script does), and return the function."""
    return ClassFactory.register(ClassType.GENERAL, alias=name)(METRICS[name])


# Why a metric has nothing to measure, by the responses it reads (the first that holds)
_TOKEN_GAP = ("Throughput", "Internal Token Latency")
_SLO = ("SLO Attainment", "Goodput")
_CURVES = ("APGR", "CPT(50%)", "CPT(80%)", "AIQ")


def why_empty(name, y_true, y_pred):
    """One short reason why metric ``name`` is empty (NaN) for these results."""
    answered = answers(y_pred)
    failed = sum(1 for r in y_pred if r[1] is not None and r[1].get("error"))
    if name in _CURVES:
        return ("the router gives no score per query, or the results lack the other "
                "model's outcome (docs/routing-evaluation.md)")
    if not answered:
        return f"no answered request ({failed} failed)" if failed else "no answered request"
    if name in _TOKEN_GAP:
        return "no answer has two or more output tokens (a gap between tokens needs two)"
    if name in _SLO:
        return "no request has an SLO"
    if name == "Cache Hit Ratio":
        return "no edge answer says whether its model was loaded"
    code = name.split(" ", 1)[0]
    if code in ("MC", "TC", "NER", "QA", "TS", "SG"):
        return f"no {code} items answered"
    return "nothing to measure in these results"
