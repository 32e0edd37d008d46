"""Task datasets in the formats users have, and conversion between them.

- ``tasks`` (CSV or JSONL): the distribution center's files, with columns task_id,
  task_type (0-4 or TC/NER/QA/TS/SG), task_token (the input) and reference_value
  (some files: reference_enum). The key of an item is (task_type, task_id): ids
  repeat across task types.
- ``ianvs``: Ianvs' LLM format, a folder with metadata.json and data.jsonl (query,
  response, level_1..4_dim); the task type is read from a ``task_type`` field or
  from level_3_dim, and written to both.
- ``mcq`` (CSV or JSONL): plain multiple-choice sets, with question, options (A, B,
  C, D columns or a ``choices`` list) and answer (a letter or a 0-based index).

A row that cannot be read is an error naming the file, the line and the field,
unless ``skip_bad_rows``: then it is left out and counted.
"""

import json
import os
from dataclasses import dataclass

from edgellm.errors import ConfigError
from edgellm.files import write_text
from edgellm.formats import expect_format
from edgellm.rows import BadRow, csv_text, parse_rows
from edgellm.tasks.ianvs_format import LLM_LINE_VALUES, value_problem
from edgellm.tasks.references import answer_list, parse_reference, parse_tags
from edgellm.tasks.registry import get_task_type

FORMATS = ("tasks", "ianvs", "mcq")  # what read_items reads (edgellm.formats names)
REFERENCE_COLUMNS = ("reference_value", "reference_enum")


@dataclass
class TaskItem:
    task_type: str      # canonical name, e.g. "question_answering"
    task_id: str
    text: str           # the input (task_token / query)
    reference: str      # as written in the file (a JSON list: its JSON text)
    subject: str = ""

    @property
    def code(self):
        return get_task_type(self.task_type).code


def _check_reference(task, text, reference):
    try:
        parsed = parse_reference(task.name, reference)
    except ValueError as err:
        raise BadRow("reference_value", str(err)) from None
    if task.code == "NER" and isinstance(parsed, list) and \
            parse_tags(reference) is not None and len(parsed) != len(text.split()):
        raise BadRow("reference_value", f"{len(parsed)} tags for {len(text.split())} tokens")


def _task_item(row):
    """A TaskItem from one row of the distribution center's format."""
    for column in ("task_id", "task_type", "task_token"):
        if row.get(column) in (None, ""):
            raise BadRow(column, "missing or empty")
    try:
        task = get_task_type(row["task_type"])
    except ValueError as err:
        raise BadRow("task_type", str(err)) from None
    column = next((c for c in REFERENCE_COLUMNS if row.get(c) not in (None, "")), None)
    if column is None:
        raise BadRow("reference_value", "missing or empty (also looked for reference_enum)")
    reference = _reference_text(row[column])
    _check_reference(task, str(row["task_token"]), reference)
    return TaskItem(task.name, str(row["task_id"]).removesuffix(".0"), str(row["task_token"]),
                    reference, str(row.get("subject") or ""))


def _mcq_item(row, index):
    question = row.get("question")
    if not question:
        raise BadRow("question", "missing or empty")
    choices = row.get("choices")
    if isinstance(choices, str) and choices.startswith("["):
        try:
            choices = json.loads(choices)
        except (ValueError, RecursionError):
            raise BadRow("choices", "not a JSON list of options") from None
    if not choices:
        choices = [row[k] for k in "ABCDEFGHIJ" if row.get(k) not in (None, "")]
    if not isinstance(choices, list) or not all(isinstance(c, (str, int, float))
                                                for c in choices):
        raise BadRow("choices", "expected a list of options")
    if len(choices) < 2:
        raise BadRow("choices", "fewer than two options (give A, B, ... columns or choices)")
    if len(choices) > 10:
        raise BadRow("choices", f"{len(choices)} options: at most 10 (A-J)")
    answer = str(row.get("answer", "")).strip()
    letters = list("ABCDEFGHIJ"[:len(choices)])
    if answer.isdigit() and int(answer) < len(choices):
        answer = letters[int(answer)]
    if answer not in letters:  # a list: "" or "AB" is no letter of it
        raise BadRow("answer", f"{answer!r} is not one of {letters} or a 0-based index")
    text = "Question: " + question + "".join(f"\n{k}. {c}" for k, c in zip(letters, choices))
    return TaskItem("multiple_choice", str(row.get("id", index)), text, answer,
                    str(row.get("subject") or ""))


def _ianvs_item(record, index):
    for key in ("query", "response"):
        if key not in record:
            raise BadRow(key, "missing")
    problem = value_problem(record, LLM_LINE_VALUES)
    if problem:
        raise BadRow(*problem)
    if not isinstance(record["query"], str):
        raise BadRow("query", "chat messages: a tasks file holds text queries")
    kind = record.get("task_type")
    if kind in (None, ""):
        try:
            kind = get_task_type(record.get("level_3_dim", "")).name
        except ValueError:
            kind = "multiple_choice"  # e.g. level_3_dim "knowledge Q&A"
    try:
        task = get_task_type(kind)
    except ValueError as err:
        raise BadRow("task_type", str(err)) from None
    text = record.get("prompt", "") + record["query"]
    reference = _reference_text(record["response"])
    _check_reference(task, text, reference)
    return TaskItem(task.name, str(record.get("task_id", index)), text, reference,
                    str(record.get("level_4_dim") or ""))


def read_items(path, fmt=None, skip_bad_rows=False):
    """(items, skipped rows) of a dataset file or Ianvs folder."""
    if not os.path.exists(path):
        raise ConfigError(path, "file not found")
    fmt = fmt or expect_format(path, FORMATS)
    if fmt not in FORMATS:
        raise ConfigError(path, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "ianvs":
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        path = os.path.join(folder, "data.jsonl")
        if not os.path.isfile(path):
            raise ConfigError(path, "file not found (an Ianvs folder holds data.jsonl)")
    make = {"tasks": lambda row, i: _task_item(row), "mcq": _mcq_item, "ianvs": _ianvs_item}[fmt]
    seen = {}  # (task type, id) -> line

    def item(row, line, index):
        made = make(row, index)
        key = (made.task_type, made.task_id)
        if key in seen:
            raise BadRow("task_id", f"task {made.code} {made.task_id} also at line "
                                    f"{seen[key]}: ids must be unique within a task type")
        seen[key] = line
        return made

    items, skipped = parse_rows(path, item, skip_bad_rows)
    if not items:  # nothing to convert: say why rather than write an empty dataset
        raise ConfigError(path, f"no readable rows ({skipped} bad row{'s' if skipped != 1 else ''} skipped)" if skipped
                          else "no rows")
    return items, skipped


def target_of(path, fmt=None):
    """(format, and the file or with ``ianvs`` the folder) that ``write_items`` writes
    for a target ``path``; the format is told from the name when not given."""
    fmt = fmt or ("ianvs" if not path.endswith((".csv", ".jsonl")) else "tasks")
    if fmt == "tasks" and not path.endswith((".csv", ".jsonl")):
        raise ConfigError(path, "the tasks format is written to a .csv or .jsonl file")
    if fmt == "ianvs":
        return fmt, os.path.dirname(path) if path.endswith("metadata.json") else path
    if fmt != "tasks":
        raise ConfigError(path, f"cannot write format {fmt!r} (writable: tasks, ianvs)")
    return fmt, path


def write_items(items, path, fmt=None):
    """Write items as ``tasks`` CSV/JSONL or as an Ianvs folder (atomically per file).
    A QA item's list of acceptable answers is written as a JSON list (tasks JSONL) or
    its JSON text (a CSV cell; Ianvs' ``response``, which Ianvs loads into a numpy
    array of strings that cannot hold lists), whatever literal its source used (e.g.
    numpy's "['a' 'b']")."""
    fmt, target = target_of(path, fmt)
    if fmt == "tasks" and path.endswith(".csv"):
        rows = [{"task_id": i.task_id, "task_type": get_task_type(i.task_type).id
                 if get_task_type(i.task_type).id is not None else i.code,
                 "task_token": i.text, "reference_value": _written_reference(i, as_text=True)}
                for i in items]
        write_text(path, csv_text(["task_id", "task_type", "task_token", "reference_value"],
                                  rows))
    elif fmt == "tasks":
        write_text(path, "".join(json.dumps(
            {"task_id": i.task_id, "task_type": i.code, "task_token": i.text,
             "reference_value": _written_reference(i)}, ensure_ascii=False) + "\n"
            for i in items))
    else:
        folder = target
        codes = sorted({i.code for i in items})
        write_text(os.path.join(folder, "metadata.json"), json.dumps({
            "dataset": os.path.basename(os.path.abspath(folder)),
            "description": f"{len(items)} items of task types {', '.join(codes)}",
            "level_1_dim": "single-modal", "level_2_dim": "text",
            "level_3_dim": "/".join(codes), "level_4_dim": "general"}, indent=2) + "\n")
        write_text(os.path.join(folder, "data.jsonl"), "".join(json.dumps(
            {"query": i.text, "response": _written_reference(i, as_text=True),
             "explanation": "",
             "level_1_dim": "single-modal", "level_2_dim": "text",
             "level_3_dim": i.code, "level_4_dim": i.subject,
             "task_type": i.code, "task_id": i.task_id}, ensure_ascii=False) + "\n"
            for i in items))
    return len(items)


def _written_reference(item, as_text=False):
    """The reference as written: a QA item's answer list as a list (``as_text``: its
    JSON text), any other reference as read."""
    if item.code == "QA":
        answers = answer_list(item.reference)
        if answers is not None:
            return json.dumps(answers, ensure_ascii=False) if as_text else answers
    return item.reference


def _reference_text(value):
    """A reference as TaskItem keeps it: text (a list, from JSON: its JSON text)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)
