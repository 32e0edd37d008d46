"""Recorded outcomes of an edge and a cloud model on the same items: what learned
routers train on and what the routing curves (edgellm.metrics.routing_curves)
evaluate.

An ``OutcomeSet`` holds aligned columns, one entry per item: the item's id, query,
subject and task type, and for each tier its score (0-1: correctness, or a graded
item score), its cost in USD and its end-to-end latency in seconds (NaN where not
recorded). It is read from an outcome matrix (``OutcomeSet.from_matrix``, the CSV or
JSONL format ``edgellm import`` reads, docs/response-store.md) or from the
``results.jsonl`` of two test cases of a job that answered every query on the edge and
on the cloud (``OutcomeSet.from_results``).
"""

import math
import os
from dataclasses import dataclass, field, replace

import numpy as np

from edgellm.errors import ConfigError
from edgellm.files import file_digest
from edgellm.records import response_outcome
from edgellm.rows import BadRow, parse_rows


SPLIT_FILE = "split.json"  # what `edgellm dataset split` writes beside the two parts


def split_indices(items, fraction=0.5, seed=0):
    """(train indices, test indices), each ascending: the split rule of every split in
    edgellm (``OutcomeSet.split``, the learned routers' ``split``, ``edgellm report``,
    ``edgellm dataset split``): ``numpy.random.default_rng(seed).permutation(items)``,
    whose first round(fraction x items) are train."""
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
    import json

    sidecar = os.path.join(os.path.dirname(os.path.abspath(path)), SPLIT_FILE)
    if not os.path.isfile(sidecar):
        return None, None
    try:
        with open(sidecar, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError) as err:
        raise ConfigError(sidecar, f"not a split record: {err}") from None
    name = os.path.basename(path)
    for part in ("train", "test"):
        entry = record.get(part) if isinstance(record, dict) else None
        if isinstance(entry, dict) and entry.get("path", entry.get("file")) == name:
            return (part if entry.get("sha256") == file_digest(path) else None), record
    return None, None


@dataclass
class OutcomeSet:
    ids: list
    queries: list
    subjects: list  # str or None per item
    task_types: list
    edge_score: np.ndarray  # 0..1 per item
    cloud_score: np.ndarray
    edge_cost: np.ndarray  # USD per item (zeros where not recorded)
    cloud_cost: np.ndarray
    edge_latency: np.ndarray = None  # e2e seconds per item, NaN where not recorded
    cloud_latency: np.ndarray = None
    edge_model: str = "edge"
    cloud_model: str = "cloud"
    source: str = ""
    split_info: dict = field(default_factory=dict)  # how this set was cut from another

    def __post_init__(self):
        n = len(self.ids)
        for name in ("edge_score", "cloud_score", "edge_cost", "cloud_cost"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        for name in ("edge_latency", "cloud_latency"):
            value = getattr(self, name)
            setattr(self, name, np.full(n, np.nan) if value is None
                    else np.asarray(value, dtype=np.float64))
        columns = (self.queries, self.subjects, self.task_types, self.edge_score,
                   self.cloud_score, self.edge_cost, self.cloud_cost, self.edge_latency,
                   self.cloud_latency)
        if any(len(c) != n for c in columns):
            raise ValueError("OutcomeSet columns must all have one entry per item")

    def __len__(self):
        return len(self.ids)

    @property
    def edge_accuracy(self):
        return float(self.edge_score.mean())

    @property
    def cloud_accuracy(self):
        return float(self.cloud_score.mean())

    @property
    def has_latency(self):
        return bool(np.isfinite(self.edge_latency).all() and np.isfinite(self.cloud_latency).all())

    def subset(self, indices, **split_info):
        """The items at ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        pick = [self.ids, self.queries, self.subjects, self.task_types]
        ids, queries, subjects, task_types = ([column[i] for i in idx] for column in pick)
        return replace(self, ids=ids, queries=queries, subjects=subjects, task_types=task_types,
                       edge_score=self.edge_score[idx], cloud_score=self.cloud_score[idx],
                       edge_cost=self.edge_cost[idx], cloud_cost=self.cloud_cost[idx],
                       edge_latency=self.edge_latency[idx], cloud_latency=self.cloud_latency[idx],
                       split_info=split_info or dict(self.split_info))

    def split(self, fraction=0.5, seed=0):
        """(train, test): a seeded split of the items (never of rows: both tiers'
        outcomes of an item land on the same side). ``fraction`` of the items, rounded,
        go to train; each part keeps the original item order and records the split in
        ``split_info``."""
        train, test = split_indices(len(self), fraction, seed)
        info = {"fraction": float(fraction), "seed": seed, "train_items": len(train),
                "test_items": len(test)}
        return (self.subset(train, part="train", **info),
                self.subset(test, part="test", **info))

    def samples(self):
        """Sample dicts as the routers see them (no gold answer, no outcome)."""
        return [{"id": i, "query": q, "subject": s, "task_type": t}
                for i, q, s, t in zip(self.ids, self.queries, self.subjects, self.task_types)]

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def from_matrix(cls, path, edge_model, cloud_model):
        """Read an outcome matrix (CSV or JSONL; columns as ``edgellm import`` reads
        them, plus an optional ``subject``). Items are matched across the two models on
        ``item_id`` (or ``id``), else on ``query``; every item must have a row for both
        models. Rows of other models are skipped."""
        from edgellm.models.importers import outcome_entry

        if not os.path.isfile(path):
            raise ConfigError(path, "outcome matrix not found")
        if not str(path).endswith((".csv", ".jsonl")):
            raise ConfigError(path, "expected an outcome matrix (.csv or .jsonl)")
        if edge_model == cloud_model:
            raise ConfigError(path, f"edge and cloud model are both {edge_model!r}")
        tiers = {str(edge_model): 0, str(cloud_model): 1}
        items, models_seen = {}, set()  # key -> {"lines", "outcomes", "query", ...}

        def read(row, line, index):
            model = row.get("model")
            model = None if model is None else str(model).strip()
            if not model:
                raise BadRow("model", "missing or empty (the model that answered)")
            models_seen.add(model)
            if model not in tiers:
                return
            entry = outcome_entry(row)
            key = ("id", entry.item["id"]) if "id" in entry.item else \
                ("query", entry.item["query"])
            item = items.setdefault(key, {"lines": [None, None], "outcomes": [None, None]})
            tier = tiers[model]
            if item["lines"][tier] is not None:
                raise BadRow(key[0] if key[0] == "query" else "item_id",
                             f"model {model!r} has this item already at line "
                             f"{item['lines'][tier]}")
            item["lines"][tier] = line
            record = entry.response
            item["outcomes"][tier] = (record["score"], record["cost_usd"],
                                      record["perf"]["e2e_latency"])
            item.setdefault("query", entry.item.get("query"))
            subject = row.get("subject")
            if subject is not None and str(subject).strip() and item.get("subject") is None:
                item["subject"] = str(subject).strip()
            if row.get("task_type") not in (None, "") and item.get("task_type") is None:
                item["task_type"] = record["task_type"]

        parse_rows(path, read)
        for model in tiers:
            if model not in models_seen:
                known = ", ".join(sorted(models_seen)[:10]) or "none"
                raise ConfigError(path, f"field 'model': no rows for {model!r} "
                                        f"(models in the file: {known})")
        names = (str(edge_model), str(cloud_model))
        for key, item in items.items():
            for tier in (0, 1):
                if item["lines"][tier] is None:
                    other = item["lines"][1 - tier]
                    raise ConfigError(f"{path}:{other}", f"item {key[1]!r} has a row for "
                                                         f"{names[1 - tier]!r} but none for "
                                                         f"{names[tier]!r}")
        rows = list(items.items())
        outcome = np.array([[*item["outcomes"][0], *item["outcomes"][1]] for _, item in rows],
                           dtype=np.float64)  # None (no latency) becomes NaN
        return cls(
            ids=[str(key[1]) if key[0] == "id" else str(i) for i, (key, _) in enumerate(rows)],
            queries=[item.get("query") or "" for _, item in rows],
            subjects=[item.get("subject") for _, item in rows],
            task_types=[item.get("task_type") or "multiple_choice" for _, item in rows],
            edge_score=outcome[:, 0], edge_cost=outcome[:, 1], edge_latency=outcome[:, 2],
            cloud_score=outcome[:, 3], cloud_cost=outcome[:, 4], cloud_latency=outcome[:, 5],
            edge_model=names[0], cloud_model=names[1], source=str(path))

    @classmethod
    def from_results(cls, edge_results, cloud_results, queries=None, subjects=None):
        """From two test cases' ``results.jsonl`` of the same job (``edgellm run``
        writes one per case): one where the edge answered every query (e.g. the
        edge-only algorithm) and one where the cloud did. Records align on their
        ``index`` (the dataset line). Scores are the recorded ones, else the prediction
        scored against ``gold`` as the OracleRouter scores it; a failed request scores 0."""
        edge, cloud = _read_side(edge_results, "edge"), _read_side(cloud_results, "cloud")
        if len(edge) != len(cloud):
            raise ConfigError(cloud_results, f"{len(cloud)} records, but {edge_results} has "
                                             f"{len(edge)}: not the same dataset")
        for line, (e_row, c_row) in enumerate(zip(edge, cloud), 1):
            if e_row[0] != c_row[0]:
                raise ConfigError(f"{cloud_results}:{line}", f"field 'id': {c_row[0]!r}, but "
                                                             f"{edge_results} has {e_row[0]!r}")
        ids = [str(r[0]) for r in edge]
        e, c = (np.array([r[3:] for r in side], dtype=np.float64) for side in (edge, cloud))
        n = len(ids)
        return cls(ids=ids, queries=list(queries) if queries is not None else [""] * n,
                   subjects=list(subjects) if subjects is not None else [None] * n,
                   task_types=[r[2] for r in edge],
                   edge_score=e[:, 0], edge_cost=e[:, 1], edge_latency=e[:, 2],
                   cloud_score=c[:, 0], cloud_cost=c[:, 1], cloud_latency=c[:, 2],
                   edge_model=edge[0][1] if edge else "edge",
                   cloud_model=cloud[0][1] if cloud else "cloud",
                   source=f"{edge_results} + {cloud_results}")


def read_results(path):
    """The records of a results.jsonl, in dataset order (one-line errors)."""
    if not os.path.isfile(path):
        raise ConfigError(path, "results file not found")

    def record(row, line, index):
        if "is_hard" not in row:
            raise BadRow("is_hard", "missing (not a results.jsonl of edgellm run)")
        return row

    records, _ = parse_rows(path, record)
    if not records:
        raise ConfigError(path, "no records")
    return records


def side_outcome(record, side):
    """(score, cost USD, e2e seconds) of the ``side`` ("edge"/"cloud") response of a
    results.jsonl record; None when that side did not answer."""
    response = record.get(side)
    if response is None:
        return None
    return response_outcome(record.get("gold"), response)


def _read_side(path, side):
    rows = []
    for line, record in enumerate(read_results(path), 1):
        outcome = side_outcome(record, side)
        if outcome is None:
            raise ConfigError(f"{path}:{line}", f"field '{side}': no {side} response (this "
                                                f"case did not answer every query on the "
                                                f"{side})")
        response = record[side]
        item_id = record.get("id") if record.get("id") is not None else record.get("index")
        rows.append((item_id, response.get("model") or side,
                     response.get("task_type") or "multiple_choice", *outcome))
    return rows
