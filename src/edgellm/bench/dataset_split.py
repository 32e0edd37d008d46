"""``edgellm dataset split``: a dataset into a train and a test part, so that a job
routes test items only and learned routers fit on the train part.

- An Ianvs LLM dataset (a folder or its metadata.json, with data.jsonl beside it):
  ``OUT/train_data/`` and ``OUT/test_data/``, each a metadata.json and a data.jsonl
  holding the part's lines.
- An outcome matrix (CSV or JSONL, as ``edgellm import`` reads it): ``OUT/train.<ext>``
  and ``OUT/test.<ext>`` holding the rows of the part's items (every model's rows of
  an item on the same side), and, when the rows give the query, ``OUT/test_data/``:
  the test items as an Ianvs dataset for the job to route (``response`` empty: an
  outcome matrix has no gold answers; replayed responses carry recorded scores).

The split is of items, by the rule every split in edgellm follows
(edgellm.routing.outcomes.split_indices: ``numpy.random.default_rng(seed)
.permutation``, the first round(fraction x items) train), each part in the source's
order; on a matrix whose items all have a row for each model it is the split
``edgellm report --outcomes --seed S --train-fraction F`` and a learned router's
``split``/``split_seed`` make. ``OUT/split.json`` records the source, its SHA-256,
the fraction, the seed, the counts and each part's file and SHA-256: a learned
router given the train part (``train_outcomes``) trains on all of it and reports that
split; given the test part, it refuses.

Everything is read and checked before the first file is written, and each file is
replaced atomically: bad input is one line naming the file, line and field, and
changes nothing.
"""

import csv
import io
import json
import os

import orjson

from edgellm.files import file_digest, text_digest, write_text
from edgellm.errors import ConfigError
from edgellm.formats import expect_format
from edgellm.rows import csv_header, parse_rows
from edgellm.routing.outcomes import SPLIT_FILE, split_indices
from edgellm.tasks.ianvs_format import LLM_LINE_KEYS, METADATA_KEYS, read_jsonl

SPLIT_RULE = ("numpy.random.default_rng(seed).permutation(items); the first "
              "round(train_fraction x items) are train; each part keeps the source order")


def _read_ianvs(path):
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    meta_path = os.path.join(folder, "metadata.json")
    data_path = os.path.join(folder, "data.jsonl")
    for needed in (meta_path, data_path):
        if not os.path.isfile(needed):
            raise ConfigError(needed, "file not found (an Ianvs dataset is a metadata.json "
                                      "with data.jsonl beside it)")
    try:
        with open(meta_path, "rb") as handle:
            meta = orjson.loads(handle.read())
    except orjson.JSONDecodeError as err:
        raise ConfigError(meta_path, f"invalid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ConfigError(meta_path, "expected a JSON object")
    missing = next((k for k in METADATA_KEYS if k not in meta), None)
    if missing:
        raise ConfigError(meta_path, f"missing key '{missing}'")
    records = [record for _, record in read_jsonl(data_path, LLM_LINE_KEYS)]
    return meta, records, data_path


def _read_matrix(path):
    """(header or None, rows, item key per row, query per item key, subject per key)."""
    from edgellm.models.importers import outcome_entry

    header = csv_header(path) if path.endswith(".csv") else None
    rows, keys, queries, subjects = [], [], {}, {}
    for row, entry in parse_rows(path, lambda row, line, index: (row, outcome_entry(row)))[0]:
        # the key OutcomeSet.from_matrix matches an item's rows on
        key = ("id", entry.item["id"]) if "id" in entry.item else ("query", entry.item["query"])
        rows.append(row)
        keys.append(key)
        if entry.item.get("query") is not None:
            queries.setdefault(key, entry.item["query"])
        subject = row.get("subject")
        if subject is not None and str(subject).strip():
            subjects.setdefault(key, str(subject).strip())
    if not rows:
        raise ConfigError(path, "no rows")
    return header, rows, keys, queries, subjects


def _csv_text(header, rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _jsonl_text(records):
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


def _ianvs_files(folder, meta, records, part, counts):
    meta = dict(meta)
    meta["description"] = (f"{meta.get('description', '')} ({part} part: {counts[part]} of "
                           f"{counts['items']} items, seed {counts['seed']})").strip()
    return {os.path.join(folder, "metadata.json"): json.dumps(meta, indent=2,
                                                              ensure_ascii=False) + "\n",
            os.path.join(folder, "data.jsonl"): _jsonl_text(records)}


def split_dataset(source, out, train_fraction=0.5, seed=0):
    """Split ``source`` into ``out`` (see the module docstring); returns the split
    record written to ``out/split.json``."""

    if not os.path.exists(source):
        raise ConfigError(source, "file not found")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(out, "exists and is not a folder")
    try:
        seed = int(seed)
        split_indices(1, train_fraction, seed)  # checks the fraction
    except (TypeError, ValueError) as err:
        raise ConfigError("--train-fraction", str(err)) from None
    kind = expect_format(source, ("ianvs", "outcomes"))
    files = {}  # path -> text, all computed before the first is written
    record = {"edgellm_split": 1, "format": kind, "source": source, "train_fraction":
              float(train_fraction), "seed": seed, "rule": SPLIT_RULE}
    if kind == "ianvs":
        meta, records, data_path = _read_ianvs(source)
        if len(records) < 2:
            raise ConfigError(data_path, f"{len(records)} items: too few to split")
        train, test = split_indices(len(records), train_fraction, seed)
        counts = {"items": len(records), "train": len(train), "test": len(test), "seed": seed}
        for part, idx in (("train", train), ("test", test)):
            files.update(_ianvs_files(os.path.join(out, f"{part}_data"), meta,
                                      [records[i] for i in idx], part, counts))
        record.update(source_sha256=file_digest(data_path), items=len(records))
        parts = {"train": "train_data/data.jsonl", "test": "test_data/data.jsonl"}
    else:
        header, rows, keys, queries, subjects = _read_matrix(source)
        items = list(dict.fromkeys(keys))  # first appearance, as OutcomeSet reads them
        if len(items) < 2:
            raise ConfigError(source, f"{len(items)} items: too few to split")
        train, test = split_indices(len(items), train_fraction, seed)
        ext = os.path.splitext(source)[1]
        parts = {"train": f"train{ext}", "test": f"test{ext}"}
        for part, idx in (("train", train), ("test", test)):
            chosen = {items[i] for i in idx}
            part_rows = [row for row, key in zip(rows, keys) if key in chosen]
            text = _csv_text(header, part_rows) if header is not None else _jsonl_text(part_rows)
            files[os.path.join(out, parts[part])] = text
        if all(key in queries for key in items):
            counts = {"items": len(items), "train": len(train), "test": len(test), "seed": seed}
            meta = {"dataset": os.path.splitext(os.path.basename(source))[0],
                    "description": f"items of the outcome matrix {os.path.basename(source)}",
                    "level_1_dim": "single-modal", "level_2_dim": "text",
                    "level_3_dim": "multiple_choice", "level_4_dim": "subject"}
            lines = [{"query": queries[items[i]], "response": "",
                      "level_1_dim": "single-modal", "level_2_dim": "text",
                      "level_3_dim": "multiple_choice",
                      "level_4_dim": subjects.get(items[i], "")} for i in test]
            files.update(_ianvs_files(os.path.join(out, "test_data"), meta, lines, "test",
                                      counts))
            record["test_dataset"] = "test_data/metadata.json"
        record.update(source_sha256=file_digest(source), items=len(items), rows=len(rows))
    record.update(train_items=len(train), test_items=len(test))
    for part in ("train", "test"):
        record[part] = {"file": os.path.basename(parts[part]), "path": parts[part],
                        "sha256": text_digest(files[os.path.join(out, parts[part])])}
    files[os.path.join(out, SPLIT_FILE)] = json.dumps(record, indent=2) + "\n"
    for path, text in files.items():
        write_text(path, text)
    return record
