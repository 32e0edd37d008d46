"""Outcome-matrix files: their rows read into one outcome per (item, model), in both
layouts (the package docstring and docs/response-store.md describe them), and the
long layout written.

An item is keyed by its id (``item_id`` or ``id``) when the row gives one, else by
its ``query``: the key an item's outcomes are matched on across models. In the wide
layout every row is an item; without an id column its id is the row's position among
the data rows (0, 1, ...). An item twice for the same model is an error naming both
lines.
"""

from dataclasses import dataclass, field
from typing import Optional

import orjson

from edgellm.errors import ConfigError
from edgellm.formats import expect_format
from edgellm.records import DEFAULT_TASK_TYPE, make_response
from edgellm.rows import BadRow, count, csv_header, csv_text, number, parse_rows, present
from edgellm.tasks.registry import get_task_type

LAYOUTS = {"outcomes": "long", "outcomes-wide": "wide"}  # edgellm.formats name -> layout
# the columns of the long layout, in the order writers put them
LONG_COLUMNS = ("item_id", "query", "subject", "task_type", "model", "correct", "score",
                "prompt_tokens", "completion_tokens", "ttft", "tpot", "itl", "e2e_latency",
                "cost_usd")
# the wide layout's columns that describe the item; every other named column is a model
ITEM_COLUMNS = ("item_id", "id", "prompt", "query", "subject", "task_type")

_TRUE = {"1", "true", "yes", "y", "t", "correct", "1.0"}
_FALSE = {"0", "false", "no", "n", "f", "wrong", "incorrect", "0.0"}


@dataclass
class Outcome:
    """One model's recorded outcome of one item."""

    line: int  # the file line of its row
    model: str
    key: tuple  # ("id", id) or ("query", text): what an item's outcomes are matched on
    item: dict  # {"id"} and/or {"query"}: what the response store files it under
    subject: Optional[str]
    task_type: Optional[str]  # canonical name when the row gives one, else None
    response: dict  # a replayed response: score, tokens, e2e latency, cost (no completion)


@dataclass
class MatrixFile:
    """What an outcome-matrix file holds: its rows as read (for writing parts of it
    back), the item key of each row, and the outcomes they record."""

    path: str
    layout: str  # "long" or "wide"
    header: Optional[list]  # a CSV file's columns (None: JSONL)
    rows: list = field(default_factory=list)
    row_keys: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    models: list = field(default_factory=list)  # every model the file names, first seen first

    def items(self):
        """The item keys, in order of first appearance."""
        return list(dict.fromkeys(self.row_keys))


def read_matrix(path, models=None):
    """The ``MatrixFile`` of an outcome matrix in either layout (told by its columns:
    edgellm.formats). With ``models``, only those models' outcomes are read (rows and
    columns of others are skipped unchecked). A bad row is one ``ConfigError``."""
    layout = LAYOUTS[expect_format(path, tuple(LAYOUTS))]
    matrix = MatrixFile(str(path), layout, csv_header(path) if str(path).endswith(".csv")
                        else None)
    wanted = None if models is None else {str(m) for m in models}
    named, seen = {}, {}  # model -> None (ordered set); (model, key) -> line

    def read(row, line, index):
        if layout == "long":
            name = _model(row)
            named.setdefault(name)
            if wanted is not None and name not in wanted:
                return None
            outcomes = [long_outcome(row, line)]
            key = outcomes[0].key
        else:
            columns = [c for c in row if c not in ITEM_COLUMNS and c and isinstance(c, str)]
            named.update(dict.fromkeys(columns))
            chosen = [c for c in columns if wanted is None or c in wanted]
            key, outcomes = wide_outcomes(row, line, index, chosen)
        for outcome in outcomes:
            first = seen.setdefault((outcome.model, key), line)
            if first != line:
                raise BadRow(key[0] if key[0] == "query" else "item_id",
                             f"model {outcome.model!r} has this item already at line {first}")
        matrix.rows.append(row)
        matrix.row_keys.append(key)
        matrix.outcomes += outcomes
        return None

    parse_rows(path, read)
    matrix.models = list(named)
    if not matrix.rows and not matrix.models:
        raise ConfigError(path, "no rows")
    return matrix


def long_outcome(row, line=None):
    """The outcome of one long-layout row (raises BadRow naming the field)."""
    model = _model(row)
    item_id, query = _item_id(row), row.get("query") if present(row, "query") else None
    if item_id is None and query is None:
        raise BadRow("item_id", "missing: give item_id (or id), or query")
    task_type = _task_type(row)
    score = _score(row)
    prompt_tokens = count(row, "prompt_tokens")
    completion_tokens = count(row, "completion_tokens")
    ttft, e2e = number(row, "ttft"), number(row, "e2e_latency")
    tpot = number(row, "tpot") if present(row, "tpot") else number(row, "itl")
    cost = number(row, "cost_usd")
    if e2e is None and ttft is not None and tpot is not None:
        e2e = end_to_end(ttft, tpot, completion_tokens)
    response = make_response(None, None, prompt_tokens, completion_tokens, ttft=ttft, itl=tpot,
                             e2e=e2e, tier=None, node=None, model=model, cost_usd=cost or 0.0,
                             task_type=task_type or DEFAULT_TASK_TYPE)
    response["perf"]["tpot"] = tpot
    response["score"] = score
    if cost is not None:
        response["cost_recorded"] = True  # replay keeps the study's cost, not today's prices
    item = {"id": item_id} if item_id is not None else {}
    if query is not None:
        item["query"] = query
    key = ("id", item_id) if item_id is not None else ("query", query)
    return Outcome(line, model, key, item, _subject(row), task_type, response)


def wide_outcomes(row, line, index, models):
    """(item key, outcomes) of one wide-layout row: one outcome per column of
    ``models`` that holds a value (an empty cell records none)."""
    item_id = _item_id(row)
    item_id = str(index) if item_id is None else item_id
    query = _text(row, "prompt", "query")
    task_type, subject = _task_type(row), _subject(row)
    item = {"id": item_id} if query is None else {"id": item_id, "query": query}
    outcomes = []
    for model in models:
        if not present(row, model):
            continue
        response = make_response(None, None, 0, 0, ttft=None, itl=None, e2e=None, tier=None,
                                 node=None, model=model,
                                 task_type=task_type or DEFAULT_TASK_TYPE)
        response["perf"]["tpot"] = None
        response["score"] = _cell_score(row, model)
        outcomes.append(Outcome(line, model, ("id", item_id), dict(item), subject, task_type,
                                response))
    return ("id", item_id), outcomes


def long_matrix_csv(rows):
    """A long-layout CSV of ``rows`` (dicts keyed by LONG_COLUMNS names), with the
    columns the rows give, in LONG_COLUMNS order."""
    columns = [c for c in LONG_COLUMNS if any(c in row for row in rows)]
    return csv_text(columns, rows)


def end_to_end(ttft, tpot, completion_tokens):
    """E2E latency from TTFT and the time per further output token (vLLM's TPOT)."""
    if ttft is None or tpot is None:
        return ttft
    return ttft + tpot * max(completion_tokens - 1, 0)


def _score(row):
    if present(row, "score"):
        score = number(row, "score")
        if score > 1:
            raise BadRow("score", f"{row['score']!r} is not between 0 and 1")
        return score
    if present(row, "correct"):
        correct = _truth(row["correct"])
        if correct is None:
            raise BadRow("correct", f"{row['correct']!r} is not true/false or 1/0")
        return correct
    raise BadRow("correct", "missing: give correct (true/false, 1/0) or score (0..1)")


def _cell_score(row, model):
    """A wide-layout cell: true/false (1/0, yes/no...) or a score between 0 and 1."""
    value = row[model]
    correct = _truth(value)
    if correct is not None:
        return correct
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = -1.0
    if not 0.0 <= score <= 1.0:
        raise BadRow(model, f"{value!r} is not true/false, 1/0 or a score between 0 and 1")
    return score


def _truth(value):
    """1.0 or 0.0 for a true/false value (also 1/0, yes/no, correct/wrong), else None."""
    if isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    return 1.0 if text in _TRUE else 0.0 if text in _FALSE else None


def _text(row, *columns):
    for column in columns:
        if present(row, column):
            value = row[column]
            if isinstance(value, (list, dict)):  # a JSONL query given as chat messages
                return orjson.dumps(value).decode()
            if isinstance(value, float) and value.is_integer():  # 17.0 from a spreadsheet
                value = int(value)
            return str(value)
    return None


def _model(row):
    model = _text(row, "model")
    if model is None:
        raise BadRow("model", "missing or empty (the model that answered)")
    return model.strip()


def _item_id(row):
    item_id = _text(row, "item_id", "id")
    if item_id is not None and item_id.endswith(".0") and item_id[:-2].isdigit():
        item_id = item_id[:-2]  # line numbers read by a spreadsheet as floats
    return item_id


def _task_type(row):
    if not present(row, "task_type"):
        return None
    try:
        return get_task_type(row["task_type"]).name
    except ValueError as err:
        raise BadRow("task_type", str(err)) from None


def _subject(row):
    subject = row.get("subject")
    return str(subject).strip() if subject is not None and str(subject).strip() else None
