"""The dataset processor: turns the loaded test set into sample records."""

from edgellm.tasks.registry import get_task_type


class SampleProcessor:
    """Ianvs ``dataset_processor`` module: ``dataset.x`` becomes a list of samples
    ``{"id", "query", "gold", "task_type", "subject"}``, which routers (the oracle
    needs ``gold``) and models receive.

    The task type comes from ``task_type`` when given, else from Ianvs' level_3_dim
    when that names a task type (TC, NER, QA, TS, SG, ...), else multiple choice.
    ``subject`` is level_4_dim. ``id`` is the line number: the only key sedna keeps,
    so samples are the same under ``ianvs`` and ``edgellm run``."""

    def __init__(self, task_type=None):
        self.task_type = get_task_type(task_type).name if task_type else None

    def _type_of(self, level_3, cache):
        if self.task_type:
            return self.task_type
        if level_3 not in cache:
            try:
                cache[level_3] = get_task_type(level_3).name
            except ValueError:  # e.g. "knowledge Q&A" in MMLU-style sets
                cache[level_3] = "multiple_choice"
        return cache[level_3]

    def __call__(self, dataset):
        n = len(dataset.x)
        subjects = getattr(dataset, "level_4", None)
        if subjects is None or len(subjects) != n:
            subjects = [None] * n
        level_3 = getattr(dataset, "level_3", None)
        if level_3 is None or len(level_3) != n:
            level_3 = [None] * n
        cache = {}
        types = {kind: self._type_of(kind, cache) for kind in set(level_3)}
        dataset.x = [
            {"id": i, "query": x, "gold": y, "task_type": types[kind], "subject": subject}
            for i, (x, y, kind, subject) in enumerate(zip(dataset.x, dataset.y, level_3, subjects))
        ]
        return dataset
