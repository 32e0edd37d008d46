"""Is a prediction right? One rule per task type."""

from edgellm.tasks.multiple_choice import extract_choice


def _normalise_choice(value):
    return extract_choice(value) if value is not None else None


def _exact(prediction, gold):
    return prediction is not None and str(prediction).strip() == str(gold).strip()


# task type -> (prediction, gold) -> bool
CORRECTNESS = {
    "multiple_choice": lambda p, g: p is not None and _normalise_choice(p) == _normalise_choice(g),
}


def is_correct(prediction, gold, task_type="multiple_choice"):
    return CORRECTNESS.get(task_type, _exact)(prediction, gold)
