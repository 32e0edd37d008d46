"""From a completion to a prediction a scorer can compare, per task type.

Models echo: a completion may repeat the prompt, or its instructions, before
answering. So we first cut the completion down to its answer (after the prompt
if it was repeated, after the last answer marker such as "Emotion:", without
lines copied from the instructions), and only then look for labels, entities
or letters: instructions that list "sad" or mention "location" never score.
"""

import json
import re

from edgellm.tasks.multiple_choice import extract_choice, option_letters
from edgellm.tasks.registry import get_task_type, prompt_for

_TYPE_WORDS = {"per": "PER", "person": "PER", "people": "PER", "loc": "LOC",
               "location": "LOC", "place": "LOC", "org": "ORG", "organization": "ORG",
               "organisation": "ORG", "company": "ORG", "misc": "MISC",
               "miscellaneous": "MISC", "other": "MISC"}
_TYPE = r"(PER|LOC|ORG|MISC|person|location|organi[sz]ation|misc(?:ellaneous)?)"
_ENTITY_FORMS = (
    re.compile(rf"^\[?{_TYPE}\]?\s*[:\-–]\s*(.+)$", re.IGNORECASE),      # PER: Ada Lovelace
    re.compile(rf"^(.+?)\s*[\(\[]\s*{_TYPE}\s*[\)\]]$", re.IGNORECASE),  # Ada Lovelace (PER)
    re.compile(rf"^(.+?)\s*[:\-–]\s*{_TYPE}$", re.IGNORECASE),          # Ada Lovelace - PER
)


def answer_text(completion, prompt, task):
    """The part of ``completion`` that answers, without echoed prompt or instructions."""
    text = str(completion or "")
    if prompt and isinstance(prompt, str):
        at = text.find(prompt)
        if at >= 0:
            text = text[at + len(prompt):]
    marker = task.answer_marker
    at = text.rfind(marker)
    if at >= 0:
        text = text[at + len(marker):]
    instructions = _instruction_lines(task)
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line and line not in instructions)


def _instruction_lines(task):
    return {line.strip() for line in task.prompt.splitlines()
            if "{query}" not in line and line.strip()}


def _label(text, task):
    listing = ", ".join(task.labels)
    text = text.lower().replace(listing, " ")  # an echoed label list is not an answer
    found = [(m.start(), m.group(1)) for m in
             re.finditer(r"\b(" + "|".join(task.labels) + r")\b", text)]
    labels = {label for _, label in found}
    if not found or len(labels) >= 4:  # naming most labels is listing, not answering
        return None
    return found[0][1]


def parse_entity_pairs(text):
    """[(entity text, TYPE), ...] written as JSON or as lines "TYPE: entity",
    "entity (TYPE)", "entity - TYPE" (also separated by ";")."""
    pairs = []
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
            items = data if isinstance(data, list) else [data]
            for item in items:
                if isinstance(item, dict):
                    pairs.append((str(item.get("text") or item.get("entity") or ""),
                                  str(item.get("type") or item.get("label") or "")))
                elif isinstance(item, (list, tuple)) and len(item) == 2:
                    pairs.append((str(item[0]), str(item[1])))
        except (ValueError, RecursionError):  # RecursionError: an answer nested very deep
            pass
    if not pairs:
        for line in re.split(r"[\n;]", text):
            line = line.strip().lstrip("-*•0123456789. ").strip()
            for form in _ENTITY_FORMS:
                match = form.match(line)
                if match:
                    a, b = match.groups()
                    kind, span = (a, b) if _TYPE_WORDS.get(a.lower()) else (b, a)
                    pairs.append((span, kind))
                    break
    out = []
    for span, kind in pairs:
        kind = _TYPE_WORDS.get(kind.strip().lower())
        span = span.strip().strip("\"'")
        if kind and span and (span, kind) not in out:
            out.append((span, kind))
    return out


def _entities(text, query):
    """[[entity text, TYPE], ...] the completion names that occur in the input (an
    echoed instruction such as "LOC (location)" names nothing in the input)."""
    out = []
    for span, kind in parse_entity_pairs(text):
        if span in query and [span, kind] not in out:
            out.append([span, kind])
    return out


def entities_to_tags(entities, tokens):
    """BIO tags over ``tokens`` for entity spans, each at its first free occurrence."""
    tags = ["O"] * len(tokens)
    for span, kind in sorted(entities, key=lambda e: -len(e[0].split())):
        words = span.split()
        for start in range(len(tokens) - len(words) + 1):
            if tokens[start:start + len(words)] == words and \
                    all(t == "O" for t in tags[start:start + len(words)]):
                tags[start:start + len(words)] = ["B-" + kind] + ["I-" + kind] * (len(words) - 1)
                break
    return tags


def extract_prediction(sample, completion):
    """The prediction a completion makes for ``sample`` (its task type decides how).

    MC: a letter; TC: a label; NER: {"entities": [[span, TYPE]...], "tags": BIO over
    the query's whitespace tokens}; QA, TS, SG: the answer text."""
    task = get_task_type(sample.get("task_type") or "multiple_choice")
    query = sample.get("query", "")
    text = answer_text(completion, prompt_for(sample), task)
    if task.code == "MC":
        return extract_choice(text, option_letters(query) or "ABCD")
    if task.code == "TC":
        return _label(text, task)
    if task.code == "NER":
        entities = _entities(text, query)
        return {"entities": entities, "tags": entities_to_tags(entities, query.split())}
    first = text.split("\n", 1)[0] if task.code == "QA" else text
    return " ".join(first.split()).strip(" .") if task.code == "QA" else " ".join(text.split())
