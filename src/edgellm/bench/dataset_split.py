"""``edgellm dataset split``: a dataset into a train and a test part, so that a job
routes test items only and learned routers fit on the train part.

- An Ianvs LLM dataset (a folder or its metadata.json, with data.jsonl beside it):
  ``OUT/train_data/`` and ``OUT/test_data/``, each a metadata.json and a data.jsonl
  holding the part's lines.
- An outcome matrix (CSV or JSONL, long or wide, as ``edgellm import`` reads it):
  ``OUT/train.<ext>`` and ``OUT/test.<ext>`` and, when the rows give the query,
  ``OUT/test_data/`` (edgellm.outcomes.split).

The split is of items, by the rule every split in edgellm follows
(edgellm.outcomes.split.split_indices: ``numpy.random.default_rng(seed)
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

import os

from edgellm.errors import ConfigError
from edgellm.files import file_digest
from edgellm.outcomes.split import (
    new_split, part_dataset_files, split_indices, split_matrix, write_split)
from edgellm.tasks.ianvs_format import LLM_LINE_KEYS, LLM_LINE_VALUES, read_jsonl, read_metadata

SOURCES = ("ianvs", "outcomes", "outcomes-wide")  # what it splits (edgellm.formats names)


def split_dataset(source, out, train_fraction=0.5, seed=0):
    """Split ``source`` into ``out`` (see the module docstring); returns the split
    record written to ``out/split.json``."""
    record = new_split(source, out, train_fraction, seed, SOURCES)
    split = _split_ianvs if record["format"] == "ianvs" else split_matrix
    return write_split(out, record, *split(source, out, record))


def _split_ianvs(source, out, record):
    """(files, parts, train indices, test indices) of an Ianvs dataset."""
    meta, records, data_path = _read_ianvs(source)
    if len(records) < 2:
        raise ConfigError(data_path, f"{len(records)} items: too few to split")
    seed = record["seed"]
    train, test = split_indices(len(records), record["train_fraction"], seed)
    counts = {"items": len(records), "train": len(train), "test": len(test), "seed": seed}
    files = {}
    for part, idx in (("train", train), ("test", test)):
        files.update(part_dataset_files(os.path.join(out, f"{part}_data"), meta,
                                        [records[i] for i in idx], part, counts))
    record.update(source_sha256=file_digest(data_path), items=len(records))
    parts = {"train": "train_data/data.jsonl", "test": "test_data/data.jsonl"}
    return files, parts, train, test


def _read_ianvs(path):
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    meta_path = os.path.join(folder, "metadata.json")
    data_path = os.path.join(folder, "data.jsonl")
    for needed in (meta_path, data_path):
        if not os.path.isfile(needed):
            raise ConfigError(needed, "file not found (an Ianvs dataset is a metadata.json "
                                      "with data.jsonl beside it)")
    meta = read_metadata(meta_path)
    records = [record for _, record in read_jsonl(data_path, LLM_LINE_KEYS, LLM_LINE_VALUES)]
    return meta, records, data_path
