"""What a path holds, told from its name and its first row: the one format sniffer of
``edgellm dataset convert``, ``edgellm dataset split``, ``edgellm import`` and the
outcome-matrix readers. Each caller names the formats it reads; any other is one line
saying which it expected.

| format | what tells it |
| --- | --- |
| ``ianvs`` | a folder or a metadata.json (Ianvs' LLM dataset); rows with query and response |
| ``ianvs-cache`` | a .json file (Ianvs' cache.json) |
| ``store`` | rows with ``edgellm_store`` (``edgellm export``) |
| ``outcomes`` | rows with ``model``, ``correct`` or ``score``: the long outcome matrix |
| ``tasks`` | rows with ``task_token`` (the distribution center's files) |
| ``mcq`` | rows with ``question`` (multiple-choice sets) |
| ``outcomes-wide`` | rows with ``prompt`` or ``query`` and none of the above: the wide outcome matrix |
| ``tasks`` | rows with ``task_type`` and none of the above |

The rows are those of a .csv or .jsonl file, checked in the order of the table (the
first row that is a JSON object, or a CSV's first data row).
"""

import os

from edgellm.errors import ConfigError
from edgellm.rows import BadRow, csv_header, first_row, read_rows, row_error

# what each format is, as an error names it
FORMATS = {
    "ianvs": "an Ianvs dataset (a folder or its metadata.json, or query/response lines)",
    "ianvs-cache": "Ianvs' cache.json (.json)",
    "store": "an 'edgellm export' file (edgellm_store lines)",
    "outcomes": "an outcome matrix, long (a row per item and model: model, correct or score)",
    "outcomes-wide": "an outcome matrix, wide (a row per item: prompt, a true/false column "
                     "per model)",
    "tasks": "a tasks file (task_id, task_type, task_token, reference_value)",
    "mcq": "a multiple-choice set (question, A-D or choices, answer)",
}
ROW_FILES = (".csv", ".jsonl")
LONG_MATRIX_COLUMNS = ("model", "correct", "score")


def names_ianvs_dataset(path):
    """Whether ``path`` is an Ianvs dataset folder or its metadata.json."""
    return os.path.isdir(path) or os.path.basename(path) == "metadata.json"


def sniff(path):
    """The format of ``path`` (a key of FORMATS), or None when nothing tells it."""
    path = os.fspath(path)
    if names_ianvs_dataset(path):
        return "ianvs"
    if path.endswith(".json"):
        return "ianvs-cache"
    if not path.endswith(ROW_FILES):
        return None
    first = first_row(path)
    if "edgellm_store" in first:
        return "store"
    if any(column in first for column in LONG_MATRIX_COLUMNS):
        return "outcomes"
    if "query" in first and "response" in first:
        return "ianvs"
    if "task_token" in first:
        return "tasks"
    if "question" in first:
        return "mcq"
    if "prompt" in first or "query" in first:
        return "outcomes-wide"
    if "task_type" in first:
        return "tasks"  # without its task_token: the reader names what is missing
    return None


def expect_format(path, accepted):
    """The format of ``path`` when it is one of ``accepted``; else a one-line
    ``ConfigError`` naming the formats expected (and the one found)."""
    found = sniff(path)
    if found in accepted:
        return found
    expected = ", ".join(FORMATS[name] for name in accepted[:-1])
    expected = f"{expected} or {FORMATS[accepted[-1]]}" if expected else FORMATS[accepted[0]]
    if found is not None:
        raise ConfigError(path, f"holds {FORMATS[found].split(' (')[0]}, expected {expected}")
    if str(path).endswith(ROW_FILES):
        _no_readable_row(path)
    raise ConfigError(path, f"unknown format: expected {expected}")


def _no_readable_row(path):
    """A row file that tells no format because it has no row that can be read: the
    error that says so (no rows at all, or its first bad row's)."""
    first_bad = None
    for line, row in read_rows(path):
        if not isinstance(row, BadRow):
            return  # a readable row of no known format
        first_bad = first_bad or (line, row)
    if first_bad:
        raise row_error(path, *first_bad)
    if str(path).endswith(".csv") and csv_header(path):
        raise ConfigError(path, "no rows: the file holds only its header")
    raise ConfigError(path, "no rows: the file is empty")
