"""Task types, declared in task_types.yaml and looked up by any of their names."""

import os
from dataclasses import dataclass
from functools import lru_cache

from edgellm.registry import Registry
from edgellm.yaml_file import load_yaml

TASK_TYPES_PATH = os.path.join(os.path.dirname(__file__), "task_types.yaml")


@dataclass(frozen=True)
class TaskType:
    name: str
    code: str
    prompt: str
    primary_metric: str
    answer_marker: str
    id: int = None
    aliases: tuple = ()
    labels: tuple = ()
    entity_types: tuple = ()

    def render(self, query):
        """The prompt a model sees for ``query``."""
        return self.prompt.format(query=query)


@lru_cache(maxsize=None)
def task_types():
    """name -> TaskType, in file order."""
    data = load_yaml(TASK_TYPES_PATH, "task types")
    return {name: TaskType(name=name, code=spec["code"], prompt=spec["prompt"],
                           primary_metric=spec["primary_metric"],
                           answer_marker=spec["answer_marker"], id=spec.get("id"),
                           aliases=tuple(spec.get("aliases", ())),
                           labels=tuple(spec.get("labels", ())),
                           entity_types=tuple(spec.get("entity_types", ())))
            for name, spec in data.items()}


@lru_cache(maxsize=None)
def _lookup():
    """Every name of every task type (lower case) -> TaskType: a name that two task
    types claim is an error in task_types.yaml."""
    table = Registry("task type")
    for t in task_types().values():
        for key in {str(k).lower() for k in (t.name, t.code, *t.aliases,
                                             *(() if t.id is None else (t.id,)))}:
            table.register(key, t)
    return table


def get_task_type(value):
    """The TaskType named by ``value``: its name, short code (TC, NER, QA, TS, SG, MC),
    an alias, or its numeric id (0-4, as in the distribution center's files)."""
    if isinstance(value, TaskType):
        return value
    found = _SEEN.get(value) if type(value) is str else None
    if found is not None:  # the hot path: a name seen before (one per sample and call)
        return found
    key = str(value).strip().lower()
    if key.endswith(".0"):  # ids read from spreadsheets as floats
        key = key[:-2]
    found = _lookup().get(key) if key in _lookup() else None
    if found is None:
        names = ", ".join(f"{t.code} ({t.id})" if t.id is not None else t.code
                          for t in task_types().values())
        raise ValueError(f"unknown task type {value!r} (known: {names})")
    if type(value) is str and len(_SEEN) < 1024:
        _SEEN[value] = found
    return found


_SEEN = {}  # value as given -> TaskType


def prompt_for(sample):
    """The prompt text of a sample: its task type's template around its query."""
    query = sample.get("query", "")
    if not isinstance(query, str):  # chat messages are sent as they are
        return query
    return get_task_type(sample.get("task_type") or "multiple_choice").render(query)


def messages_text(messages):
    """The text of a query given as chat messages: their contents, one per line."""
    return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m)
                     for m in messages)
