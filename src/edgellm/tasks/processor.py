"""The dataset processor: turns the loaded test set into sample records."""


class SampleProcessor:
    """Ianvs ``dataset_processor`` module: ``dataset.x`` becomes a list of samples
    ``{"id", "query", "gold", "task_type", "subject"}``, which routers (the oracle
    needs ``gold``) and models receive. ``subject`` is Ianvs' level_4_dim."""

    def __init__(self, task_type="multiple_choice", **kwargs):
        self.task_type = task_type

    def __call__(self, dataset):
        subjects = getattr(dataset, "level_4", None)
        if subjects is None or len(subjects) != len(dataset.x):
            subjects = [None] * len(dataset.x)
        dataset.x = [
            {"id": i, "query": x, "gold": y, "task_type": self.task_type, "subject": subject}
            for i, (x, y, subject) in enumerate(zip(dataset.x, dataset.y, subjects))
        ]
        return dataset
