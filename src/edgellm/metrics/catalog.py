"""Every metric by the name a testenv.yaml gives it, and what a metric script calls.

One ``Registry`` of the joint-inference, fleet and routing-curve metrics: a name
defined twice is an error. An example metric script is one line,
``register_metric("Accuracy")``, which hands the library's function to sedna's
``ClassFactory`` under that name.
"""

from edgellm.metrics import fleet, joint_inference, routing
from edgellm.metrics.per_item import DEFINITIONS, WHY_NONE, NoItemValues
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


# -- per-query definitions (intervals, paired tests) and short names (the printed table)

def item_statistic(name, y_true, y_pred):
    """Metric ``name`` of these results as a statistic of per-query values
    (``edgellm.metrics.per_item``); raises ``NoItemValues`` saying why it has none."""
    definition = DEFINITIONS.get(name)
    if definition is None:
        raise NoItemValues(WHY_NONE.get(name, "no per-query definition in the catalog"))
    return definition.build(y_true, y_pred)


def item_definition(name):
    """The ``ItemDefinition`` of metric ``name`` (kind, binary), or None."""
    return DEFINITIONS.get(name)


# Headers of the narrow printed leaderboard (unit-free; the legend under the table
# names each in full). A metric not listed keeps its name.
SHORT_NAMES = {
    "Accuracy": "Acc", "Edge Ratio": "Edge%", "Time to First Token": "TTFT",
    "Throughput": "Tok/s", "Internal Token Latency": "ITL",
    "Cloud Prompt Tokens": "CloudIn", "Cloud Completion Tokens": "CloudOut",
    "Edge Prompt Tokens": "EdgeIn", "Edge Completion Tokens": "EdgeOut",
    "Request Throughput": "Req/s", "Output Token Throughput": "OutTok/s",
    "Estimated Token Counts": "EstTok", "Cloud Cost": "CloudUSD", "Edge Cost": "EdgeUSD",
    "Cost": "USD", "SLO Attainment": "SLO%", "Goodput": "Goodput",
    "Cache Hit Ratio": "Hit%", "Models Transferred": "Moves", "Transfer GB": "MoveGB",
    "Transfer Seconds": "MoveS", "Load Balance": "Balance", "Node Utilisation": "Util%",
    "Max Node Utilisation": "MaxUtil%", "Redispatched Tasks": "Redisp",
    "Node Failures": "NodeFail", "Transfer Retries": "Retries", "MC Accuracy": "MC",
    "TC Accuracy": "TC", "TC Macro-F1": "TC-F1", "NER F1": "NER", "NER Precision": "NER-P",
    "NER Recall": "NER-R", "QA F1": "QA", "QA EM": "QA-EM", "TS BLEU": "TS", "TS chrF": "TS-chrF",
    "SG ROUGE-1": "SG-R1", "SG ROUGE-2": "SG-R2", "SG ROUGE-L": "SG",
}
for _label, _short in (("TTFT", "TTFT"), ("E2E Latency", "E2E")):
    for _q in (50, 90, 95, 99):
        SHORT_NAMES[f"{_label} P{_q}"] = f"{_short}p{_q}"


def short_name(name):
    return SHORT_NAMES.get(name, name)
