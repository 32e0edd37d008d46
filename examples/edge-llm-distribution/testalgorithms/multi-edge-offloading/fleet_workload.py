"""Dataset processor: samples become tasks arriving in rounds (fixed, Poisson or a trace)."""
from edgellm.fleet.workload import RoundWorkload
from edgellm.registry import ClassFactory, ClassType

ClassFactory.register_cls(RoundWorkload, ClassType.GENERAL, alias="RoundWorkload")
