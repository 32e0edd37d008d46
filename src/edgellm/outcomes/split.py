"""Train/test splits of items: the one split rule of edgellm, the split.json record
``edgellm dataset split`` writes beside the two parts (and learned routers read), and
the split of an outcome matrix into its two parts.

The rule (``split_indices``): ``numpy.random.default_rng(seed).permutation(items)``,
whose first round(fraction x items) are train; each part keeps the source order.
``OutcomeSet.split``, the learned routers' ``split``, ``edgellm report --outcomes``
and ``edgellm dataset split`` all cut by it, so on a matrix whose items all have a
row for each model they make the same split.

An outcome matrix (either layout) splits into ``OUT/train.<ext>`` and
``OUT/test.<ext>``, the rows of each part's items (every model's outcome of an item on
the same side), and, when every item gives its query, ``OUT/test_data/``: the test
items as an Ianvs dataset for a job to route (``response`` empty: a matrix holds no
gold answers; replayed responses carry the recorded scores).
"""

import json
import os

import numpy as np

from edgellm.errors import ConfigError
from edgellm.files import file_digest, read_json, text_digest, write_text
from edgellm.formats import expect_format
from edgellm.outcomes.matrix import read_matrix
from edgellm.rows import csv_text, jsonl_text
from edgellm.tasks.ianvs_format import dataset_files

SPLIT_FILE = "split.json"  # what `edgellm dataset split` writes beside the two parts
SPLIT_RULE = ("numpy.random.default_rng(seed).permutation(items); the first "
              "round(train_fraction x items) are train; each part keeps the source order")


def split_indices(items, fraction=0.5, seed=0):
    """(train indices, test indices), each ascending: the split rule of every split in
    edgellm (the module docstring)."""
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"train fraction must be between 0 and 1, got {fraction}")
    order = np.random.default_rng(seed).permutation(items)
    cut = int(round(float(fraction) * items))
    return np.sort(order[:cut]), np.sort(order[cut:])


def split_part(path):
    """What ``edgellm dataset split`` recorded about the file at ``path``: (part,
    record), part "train" or "test", record the content of the split.json beside it;
    (None, None) when no split.json there names the file. A file changed since the
    split (another SHA-256) is no longer a part of it: (None, record)."""
    sidecar = os.path.join(os.path.dirname(os.path.abspath(path)), SPLIT_FILE)
    if not os.path.isfile(sidecar):
        return None, None
    record = read_json(sidecar, "not a split record")
    name = os.path.basename(path)
    for part in ("train", "test"):
        entry = record.get(part) if isinstance(record, dict) else None
        if isinstance(entry, dict) and entry.get("path", entry.get("file")) == name:
            return (part if entry.get("sha256") == file_digest(path) else None), record
    return None, None


# -- writing a split ------------------------------------------------------------------


def new_split(source, out, train_fraction, seed, formats):
    """The start of a split's record, after checking its arguments and that
    ``source`` holds one of ``formats`` (edgellm.formats names; one-line errors)."""
    if not os.path.exists(source):
        raise ConfigError(source, "file not found")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(out, "exists and is not a folder")
    try:
        seed = int(seed)
        split_indices(1, train_fraction, seed)  # checks the fraction
    except (TypeError, ValueError) as err:
        raise ConfigError("--train-fraction", str(err)) from None
    return {"edgellm_split": 1, "format": expect_format(source, formats), "source": source,
            "train_fraction": float(train_fraction), "seed": seed, "rule": SPLIT_RULE}


def write_split(out, record, files, parts, train, test):
    """Write the split: ``files`` ({path: text}, every part computed, nothing written
    yet), then ``out/split.json``, ``record`` completed with the counts and each
    part's (``parts``: {"train": path under out, "test": ...}) file and SHA-256.
    Returns the record."""
    record.update(train_items=len(train), test_items=len(test))
    for part in ("train", "test"):
        record[part] = {"file": os.path.basename(parts[part]), "path": parts[part],
                        "sha256": text_digest(files[os.path.join(out, parts[part])])}
    files[os.path.join(out, SPLIT_FILE)] = json.dumps(record, indent=2) + "\n"
    for path, text in files.items():
        write_text(path, text)
    return record


def part_dataset_files(folder, meta, records, part, counts):
    """An Ianvs dataset of one part ({path: text}), its description saying which."""
    meta = dict(meta)
    meta["description"] = (f"{meta.get('description', '')} ({part} part: {counts[part]} of "
                           f"{counts['items']} items, seed {counts['seed']})").strip()
    return dataset_files(folder, meta, records)


def split_matrix(source, out, record):
    """The parts of an outcome matrix (the module docstring): (files, parts, train
    indices, test indices), ``record`` completed with what the split saw."""
    matrix = read_matrix(source)
    fraction, seed = record["train_fraction"], record["seed"]
    items = matrix.items()  # in order of first appearance, as OutcomeSet reads them
    if len(items) < 2:
        raise ConfigError(source, f"{len(items)} items: too few to split")
    train, test = split_indices(len(items), fraction, seed)
    ext = os.path.splitext(source)[1]
    parts = {"train": f"train{ext}", "test": f"test{ext}"}
    files = {}
    for part, idx in (("train", train), ("test", test)):
        chosen = {items[i] for i in idx}
        rows = [row for row, key in zip(matrix.rows, matrix.row_keys) if key in chosen]
        text = csv_text(matrix.header, rows) if matrix.header is not None else jsonl_text(rows)
        files[os.path.join(out, parts[part])] = text
    queries, subjects = {}, {}
    for outcome in matrix.outcomes:
        if outcome.item.get("query") is not None:
            queries.setdefault(outcome.key, outcome.item["query"])
        if outcome.subject is not None:
            subjects.setdefault(outcome.key, outcome.subject)
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
        files.update(part_dataset_files(os.path.join(out, "test_data"), meta, lines, "test",
                                        counts))
        record["test_dataset"] = "test_data/metadata.json"
    record.update(source_sha256=file_digest(source), items=len(items), rows=len(matrix.rows))
    return files, parts, train, test
