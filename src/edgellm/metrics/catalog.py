"""Every metric by the name a testenv.yaml gives it, and what a metric script calls.

One ``Registry`` of the joint-inference, fleet and routing-curve metrics: a name
defined twice is an error. An example metric script is one line,
``register_metric("Accuracy")``, which hands the library's function to sedna's
``ClassFactory`` under that name.
"""

from edgellm.metrics import fleet, joint_inference, routing
from edgellm.registry import ClassFactory, ClassType, Registry

METRICS = Registry("metric")
for _module in (joint_inference, fleet, routing):
    for _name, _function in _module.METRICS.items():
        METRICS.register(_name, _function)


def register_metric(name):
    """Register metric ``name`` with sedna's class registry under that name (what an
    example metric script does), and return the function."""
    return ClassFactory.register(ClassType.GENERAL, alias=name)(METRICS[name])
