"""Dataset processor: dataset.x becomes sample dicts (query, gold, task_type, subject)."""
from edgellm.registry import ClassFactory, ClassType
from edgellm.tasks.processor import SampleProcessor

ClassFactory.register_cls(SampleProcessor, ClassType.GENERAL, alias="SampleProcessor")
