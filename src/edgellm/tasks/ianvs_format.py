"""Read the two test-dataset formats Ianvs' LLM examples use.

- ``test_data_info: .../metadata.json``: a metadata.json (dataset, description,
  level_1_dim, level_2_dim) beside a data.jsonl whose lines hold query, response,
  level_3_dim, level_4_dim and optionally prompt, explanation, judge_prompt.
  x = prompt + query, y = response.
- ``test_data: x.jsonl``: lines with question (x) and answer (y).

A query (or question) is text or a list of chat messages; a response (or answer) is
text or, for question answering, a list of acceptable answers; prompt, level_3_dim
and level_4_dim are text. A line that holds anything else (``"query": 42``, a number
as a label, which would score as wrong against the same label as text) is an error
naming the file, the line and the key, when the dataset loads.

The result mirrors sedna's data source objects (``x``, ``y``, ``level_3``,
``level_4``, ...) so dataset processors written for Ianvs work unchanged, but
holds lists rather than numpy string arrays: a fixed-width array of 140k
prompts costs hundreds of MB.
"""

import json
import os
from dataclasses import dataclass, field

import orjson

from edgellm.errors import ConfigError
from edgellm.rows import jsonl_text, open_jsonl

METADATA_KEYS = ("dataset", "description", "level_1_dim", "level_2_dim")
LLM_LINE_KEYS = ("query", "response", "level_3_dim", "level_4_dim")


@dataclass
class TextDataset:
    """A test set as sedna hands it to a dataset processor."""

    x: list
    y: list
    level_3: list = field(default_factory=list)
    level_4: list = field(default_factory=list)
    explanation: list = field(default_factory=list)
    judge_prompts: list = field(default_factory=list)
    dataset_name: str = ""
    description: str = ""
    source: str = ""

    def __len__(self):
        return len(self.y)


def _is_text(value):
    return isinstance(value, str)


def _is_query(value):
    return isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str) for m in value))


def _is_answer(value):
    return isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(isinstance(a, str) for a in value))


# key -> (check, what it expects, whether null may stand for it)
_QUERY = (_is_query, "text or a list of chat messages ({role, content})", False)
_ANSWER = (_is_answer, "text or a list of answers (text)", False)
_TEXT = (_is_text, "text", True)
LLM_LINE_VALUES = {"query": _QUERY, "response": _ANSWER, "prompt": _TEXT,
                   "level_3_dim": _TEXT, "level_4_dim": _TEXT}
QA_LINE_VALUES = {"question": _QUERY, "answer": _ANSWER}


def value_problem(record, values):
    """(key, what is wrong with its value) for the first value of ``record`` (a dataset
    line) that ``values`` (LLM_LINE_VALUES or QA_LINE_VALUES) refuses, or None."""
    for key, (check, expected, nullable) in values.items():
        if key not in record or (nullable and record[key] is None):
            continue
        value = record[key]
        if not check(value):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            shown = "null" if value is None else f"{type(value).__name__} {shown}"
            return key, f"expected {expected}, got {shown}"
    return None


def line_error(path, number, problem):
    """The error of line ``number`` of ``path`` for a ``value_problem``."""
    key, message = problem
    return ConfigError(f"{path}:{number}", f"key '{key}': {message}")


def _open(path):
    try:
        return open_jsonl(path)
    except OSError as err:
        raise ConfigError(path, f"cannot read: {err.strerror}") from None


def bad_line(path, number, line, required):
    """The error for a line that did not give the ``required`` keys, or None for a
    blank line (which is skipped)."""
    if not line.strip():
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        return ConfigError(f"{path}:{number}", f"invalid JSON: {err}")
    if not isinstance(record, dict):
        return ConfigError(f"{path}:{number}", "expected a JSON object")
    missing = next((k for k in required if k not in record), None)
    return ConfigError(f"{path}:{number}", f"missing key '{missing}'" if missing else
                       "unreadable line")


def read_jsonl(path, required, values=None):
    """Yield (line number, record) for each non-blank line, its ``values`` checked
    (edgellm's value_problem); name file:line on error."""
    loads = orjson.loads
    with _open(path) as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = loads(line)
                for key in required:
                    record[key]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                error = bad_line(path, number, line, required)
                if error is None:
                    continue
                raise error from None
            problem = values and value_problem(record, values)
            if problem:
                raise line_error(path, number, problem)
            yield number, record


def read_metadata(metadata_path):
    """The object of an Ianvs metadata.json, with its METADATA_KEYS checked."""
    try:
        with _open(metadata_path) as handle:
            meta = orjson.loads(handle.read())
    except orjson.JSONDecodeError as err:
        raise ConfigError(metadata_path, f"invalid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ConfigError(metadata_path, "expected a JSON object")
    for key in METADATA_KEYS:
        if key not in meta:
            raise ConfigError(metadata_path, f"missing key '{key}'")
    return meta


def load_llm_dataset(metadata_path):
    """Ianvs' LLM format: metadata.json + sibling data.jsonl."""
    meta = read_metadata(metadata_path)
    data_path = os.path.join(os.path.dirname(metadata_path), "data.jsonl")
    if not os.path.isfile(data_path):
        raise ConfigError(data_path, "file not found (data.jsonl must sit beside metadata.json)")
    ds = TextDataset([], [], dataset_name=meta["dataset"], description=meta["description"],
                     source=data_path)
    x, y, level_3, level_4 = ds.x.append, ds.y.append, ds.level_3.append, ds.level_4.append
    explanation, judge = ds.explanation.append, ds.judge_prompts.append
    # one string object per distinct level (a few subjects, 10^5 lines): less memory
    shared = {}.setdefault
    loads = orjson.loads
    # The hot loop of a 10^5-line set, written out: a line that fails any step is
    # diagnosed afterwards by bad_line().
    with _open(data_path) as handle:
        for number, line in enumerate(handle, 1):
            try:
                rec = loads(line)
                query, answer = rec["query"], rec["response"]
                level, subject = rec["level_3_dim"], rec["level_4_dim"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                error = bad_line(data_path, number, line, LLM_LINE_KEYS)
                if error is None:
                    continue
                raise error from None
            get = rec.get
            prompt = get("prompt")
            if not (type(query) is str and type(answer) is str and type(level) is str
                    and type(subject) is str and (prompt is None or type(prompt) is str)):
                problem = value_problem(rec, LLM_LINE_VALUES)  # lists may be fine
                if problem:
                    raise line_error(data_path, number, problem)
                if prompt and type(query) is not str:
                    raise ConfigError(f"{data_path}:{number}", "key 'prompt': a prompt "
                                      "goes before a text query, not chat messages")
            x(prompt + query if prompt else query)
            y(answer)
            level_3(shared(level, level) if type(level) is str else level)
            level_4(shared(subject, subject) if type(subject) is str else subject)
            explanation(get("explanation", ""))
            judge(get("judge_prompt", ""))
    return ds


def dataset_files(folder, meta, records):
    """An LLM-format dataset in ``folder`` as {path: text}: its metadata.json (``meta``)
    and its data.jsonl (``records``, one line each), for an atomic writer."""
    return {os.path.join(folder, "metadata.json"): json.dumps(meta, indent=2,
                                                              ensure_ascii=False) + "\n",
            os.path.join(folder, "data.jsonl"): jsonl_text(records)}


def load_qa_jsonl(path):
    """Ianvs' plain JSONL format: question/answer lines."""
    ds = TextDataset([], [], source=path)
    for _, rec in read_jsonl(path, ("question", "answer"), QA_LINE_VALUES):
        ds.x.append(rec["question"])
        ds.y.append(rec["answer"])
    return ds


def load_test_dataset(spec):
    """Load the test set a testenv names (``DatasetSpec``)."""
    if spec.test_key == "test_data_info":
        ds = load_llm_dataset(spec.test_path)
    else:
        ds = load_qa_jsonl(spec.test_path)
    if not len(ds):
        raise ConfigError(ds.source, "the test set has no items")
    return ds
