"""Reference answers as users' files write them, turned into what scorers compare."""

import json
import re

from edgellm.tasks.extraction import parse_entity_pairs
from edgellm.tasks.multiple_choice import extract_choice
from edgellm.tasks.registry import get_task_type

# A list literal of acceptable answers: Python's "['a', 'b']" or numpy's "['a' 'b']"
# (numpy prints string arrays without commas).
_QUOTED = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)\"""")
_TAG = re.compile(r"^(O|[BI]-[A-Z]+)$")


def parse_answers(raw):
    """Acceptable answers of a QA item: a list (literal), or one plain answer."""
    answers = answer_list(raw)
    return answers if answers is not None else [str(raw).strip()]


def answer_list(raw):
    """The answers of a QA reference given as a list: a list, or a list literal of
    strings (JSON's, Python's or numpy's); None for one plain answer."""
    if isinstance(raw, (list, tuple)):
        return [str(a) for a in raw]
    text = str(raw).strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a list nested very deep
        parsed = None
    if isinstance(parsed, list) and parsed and all(isinstance(a, str) for a in parsed):
        return parsed
    items = [a if a or not b else b for a, b in _QUOTED.findall(text[1:-1])]
    return items or None


def parse_tags(raw, entity_types=("PER", "LOC", "ORG", "MISC")):
    """BIO tags of an NER item, or None when ``raw`` is not a tag sequence. A bare
    entity type ("LOC") is the reference of a single-token input: ["B-LOC"]."""
    tags = raw if isinstance(raw, (list, tuple)) else str(raw).split()
    if len(tags) == 1 and tags[0] in entity_types:
        return ["B-" + tags[0]]
    if tags and all(_TAG.match(t) for t in tags):
        return list(tags)
    return None


def parse_label(raw, labels):
    """A TC label: an id (0..n-1, also "3" or "3.0") or the label word itself."""
    text = str(raw).strip().lower()
    if text.endswith(".0"):
        text = text[:-2]
    if text.isdigit() and int(text) < len(labels):
        return labels[int(text)]
    if text in labels:
        return text
    raise ValueError(f"{raw!r} is not a label id 0-{len(labels) - 1} or one of {list(labels)}")


def parse_reference(task_type, raw):
    """The reference of one item in the form its scorer compares."""
    task = get_task_type(task_type)
    if task.code == "MC":
        return extract_choice(str(raw), "ABCDEFGHIJ") or str(raw).strip()
    if task.code == "TC":
        return parse_label(raw, task.labels)
    if task.code == "NER":
        tags = parse_tags(raw, task.entity_types)
        if tags is not None:
            return tags
        pairs = parse_entity_pairs(str(raw))
        if not pairs:
            raise ValueError(f"{str(raw)[:60]!r} is not BIO tags, an entity type or a "
                             f"list of entities")
        return {"entities": [list(p) for p in pairs]}
    if task.code == "QA":
        return parse_answers(raw)
    return str(raw).strip()
