"""Recorded responses in, and out of, the response store (``edgellm import`` and
``edgellm export``; docs/response-store.md describes each format).

- ``ianvs-cache``: the cache.json of Ianvs' cloud-edge LLM example, a JSON list of
  ``{"config": {model settings}, "result": [{"query", "response", "prediction",
  "gold"}]}``. Each result is filed under the messages edgellm's ``ChatBackend``
  sends for that query, so replaying the same dataset finds it.
- ``outcomes``, ``outcomes-wide``: outcome matrices of routing studies, CSV or JSONL,
  with a correctness or score per item and model, and optionally token counts,
  latencies and cost, but no completion text (edgellm.outcomes reads both layouts).
- ``store``: the JSONL ``edgellm export`` writes.

Every file is read and checked in full before anything is stored: a bad row is one
error naming the file, the line (or JSON key) and the field, and the store is left
as it was.
"""

import math
import os

import orjson

from edgellm.errors import ConfigError
from edgellm.files import read_json, write_text
from edgellm.formats import expect_format
from edgellm.models.chat import SamplingSettings, messages_for
from edgellm.models.store import SCHEMA_VERSION, StoredResponse, item_key
from edgellm.outcomes.matrix import end_to_end, read_matrix
from edgellm.records import make_response
from edgellm.rows import BadRow, count, number, parse_rows, present, row_error
from edgellm.tasks.extraction import extract_prediction
from edgellm.tasks.registry import get_task_type

FORMATS = ("outcomes", "outcomes-wide", "store", "ianvs-cache")  # what import reads (edgellm.formats names)

# What Ianvs' BaseLLM uses when its config leaves a setting out (models/base_llm.py).
IANVS_DEFAULTS = {"temperature": 0.8, "top_p": 0.8, "max_tokens": 512,
                  "repetition_penalty": 1.05}


def read_entries(path, fmt=None, task_type=None, system_prompt=None):
    """The ``StoredResponse`` entries of a file; ``task_type`` and ``system_prompt``
    shape the messages cache.json queries are filed under (see IanvsCacheReader)."""
    if not os.path.isfile(path):
        raise ConfigError(path, "file not found")
    fmt = fmt or expect_format(path, FORMATS)
    if fmt == "ianvs-cache":
        try:
            reader = IanvsCacheReader(task_type, system_prompt)
        except ValueError as err:
            raise ConfigError("--task-type", str(err)) from None
        return reader.read(path)
    if fmt in ("outcomes", "outcomes-wide"):
        return read_outcomes(path)
    if fmt == "store":
        return read_export(path)
    raise ConfigError(path, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


# -- Ianvs' cache.json ----------------------------------------------------------------


class IanvsCacheReader:
    """Entries from Ianvs' cache.json.

    Ianvs sent the system message "You are a helpful assistant." and the query as the
    user message, and keys its cache by the query. edgellm sends the query in its task type's prompt
    (``task_type``, default multiple choice: Ianvs' example is MMLU) after the
    algorithm's ``system_prompt`` (default none). Each result is filed under those
    messages, with the config's ``model`` as the identity and its temperature, top_p,
    max_tokens and repetition_penalty (Ianvs' defaults where left out) as settings,
    so that ``backend: replay`` with the same model and settings finds it.

    Ianvs records TTFT, the mean gap between tokens (ITL) and throughput; the end-to-end
    latency is derived as TTFT + ITL x (completion tokens - 1). The prediction is
    extracted again by edgellm's rules (Ianvs takes the last letter A-D)."""

    def __init__(self, task_type=None, system_prompt=None):
        self.task_type = get_task_type(task_type or "multiple_choice").name
        self.system_prompt = system_prompt or None

    def read(self, path):
        data = read_json(path, "invalid JSON")  # the stdlib's, as Ianvs wrote it (NaN too)
        if not isinstance(data, list):
            raise ConfigError(path, "expected a JSON list of {\"config\", \"result\"} "
                                    "objects (Ianvs' cache.json)")
        entries = []
        for i, block in enumerate(data):
            where = f"[{i}]"
            if not isinstance(block, dict) or not isinstance(block.get("config"), dict):
                raise ConfigError(path, f"{where}.config: missing (expected an object)")
            identity, settings = self._model(path, where, block["config"])
            results = block.get("result")
            if not isinstance(results, list):
                raise ConfigError(path, f"{where}.result: missing (expected a list)")
            for j, result in enumerate(results):
                try:
                    entries.append(self._entry(identity, settings, result))
                except BadRow as err:
                    raise ConfigError(path, f"{where}.result[{j}].{err.field}: {err}") from None
        return entries

    @staticmethod
    def _model(path, where, config):
        model = config.get("model")
        if not isinstance(model, str) or not model:
            raise ConfigError(path, f"{where}.config.model: missing (the model's name)")
        values = {}
        for key, default in IANVS_DEFAULTS.items():
            value = config.get(key, default)
            try:
                number = float(value)  # Ianvs wrote numbers, or their text
            except (TypeError, ValueError):
                number = math.nan
            # NaN, Infinity (json reads both) and true/false are no setting
            if isinstance(value, bool) or not math.isfinite(number):
                finite = "" if isinstance(value, bool) or math.isnan(number) else "finite "
                raise ConfigError(path, f"{where}.config.{key}: {value!r} is not a "
                                        f"{finite}number")
            values[key] = int(number) if key == "max_tokens" else number
        return model, SamplingSettings(**values).as_dict()

    def _entry(self, identity, settings, result):
        if not isinstance(result, dict):
            raise BadRow("(item)", "expected an object with query and response")
        query = result.get("query")
        if query is not None and not isinstance(query, str):
            raise BadRow("query", f"expected text, got {type(query).__name__} {query!r:.40}")
        if not query:
            raise BadRow("query", "missing or empty")
        response = result.get("response")
        if not isinstance(response, dict) or not isinstance(response.get("completion"), str):
            raise BadRow("response.completion", "missing (expected the completion text)")
        usage = response.get("usage") or {}
        perf = response.get("perf") or {}
        for name, part in (("usage", usage), ("perf", perf)):
            if not isinstance(part, dict):
                raise BadRow(f"response.{name}", "expected an object")
        prompt_tokens = count(usage, "prompt_tokens", "response.usage.")
        completion_tokens = count(usage, "completion_tokens", "response.usage.")
        ttft = number(perf, "time_to_first_token", "response.perf.")
        itl = number(perf, "internal_token_latency", "response.perf.")
        sample = {"query": query, "task_type": self.task_type}
        completion = response["completion"]
        record = make_response(
            completion, extract_prediction(sample, completion), prompt_tokens,
            completion_tokens, ttft=ttft, itl=itl, e2e=end_to_end(ttft, itl, completion_tokens),
            tier=None, node=None, model=identity, task_type=self.task_type)
        record["perf"].update(itl=[], tpot=record["perf"]["internal_token_latency"])
        return StoredResponse(identity, settings, record,
                              messages=messages_for(sample, self.system_prompt))


# -- outcome matrices ---------------------------------------------------------------


def read_outcomes(path):
    """The entries of an outcome matrix, long or wide (edgellm.outcomes.matrix reads
    and checks its rows); an item twice under the store's key (its query when given,
    else its id) for one model is an error naming both lines."""
    entries, seen = [], {}  # (model, store item key) -> line
    for outcome in read_matrix(path).outcomes:
        key = (outcome.model, item_key(outcome.item))
        first = seen.setdefault(key, outcome.line)
        if first != outcome.line:
            raise row_error(path, outcome.line, BadRow(
                "query", f"model {outcome.model!r} has this query already at line {first}"))
        entries.append(StoredResponse(outcome.model, {}, outcome.response, item=outcome.item))
    return entries


# -- edgellm export -------------------------------------------------------------------


def export_line(entry):
    line = {"edgellm_store": SCHEMA_VERSION, "model": entry.identity, "settings": entry.settings}
    if entry.messages is not None:
        line["messages"] = entry.messages
    else:
        line["item"] = entry.item
    line.update(response=entry.response, created=entry.created)
    return orjson.dumps(line) + b"\n"


def _export_entry(row):
    if not isinstance(row.get("model"), str) or not row["model"]:
        raise BadRow("model", "missing or empty")
    if not isinstance(row.get("settings"), dict):
        raise BadRow("settings", "missing (expected an object)")
    if not isinstance(row.get("response"), dict):
        raise BadRow("response", "missing (expected an object)")
    messages, item = row.get("messages"), row.get("item")
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise BadRow("messages", "expected a list of chat messages")
    elif not isinstance(item, dict) or not (present(item, "id") or present(item, "query")):
        raise BadRow("messages", "missing (or an item with id or query)")
    created = row.get("created")
    if created is not None and not isinstance(created, (int, float)):
        raise BadRow("created", f"{created!r} is not a Unix time")
    return StoredResponse(row["model"], row["settings"], row["response"], messages=messages,
                          item=None if messages is not None else item, created=created)


def read_export(path):
    def entry(row, line, index):
        version = row.get("edgellm_store")
        if not isinstance(version, int) or isinstance(version, bool) or \
                not 1 <= version <= SCHEMA_VERSION:
            raise BadRow("edgellm_store", f"{version!r} is not a store format this "
                                          f"edgellm reads (1..{SCHEMA_VERSION})")
        return _export_entry(row)

    return parse_rows(path, entry)[0]


def export_store(store, path, identity=None):
    """Write the store (or one model's responses) to ``path`` as JSONL, atomically;
    returns the number of responses written."""
    lines = [export_line(entry) for entry in store.entries(identity)]
    write_text(path, b"".join(lines).decode())
    return len(lines)
