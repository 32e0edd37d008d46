"""Recorded outcomes of an edge and a cloud model on the same items: what learned
routers train on and what the routing curves (edgellm.metrics.routing_curves)
evaluate.

An ``OutcomeSet`` holds aligned columns, one entry per item: the item's id, query,
subject and task type, and for each tier its score (0-1: correctness, or a graded
item score), its cost in USD and its end-to-end latency in seconds (NaN where not
recorded). It is read from an outcome matrix in either layout
(``OutcomeSet.from_matrix``: edgellm.outcomes.matrix, docs/response-store.md) or from
the ``results.jsonl`` of two test cases of a job that answered every query on the edge
and on the cloud (``OutcomeSet.from_results``).
"""

import os
from dataclasses import dataclass, field, replace

import numpy as np

from edgellm.errors import ConfigError
from edgellm.outcomes.matrix import read_matrix
from edgellm.outcomes.split import split_indices
from edgellm.records import DEFAULT_TASK_TYPE, response_outcome
from edgellm.rows import BadRow, parse_rows


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
        """Read an outcome matrix, long or wide (edgellm.outcomes.matrix). Items are
        matched across the two models on ``item_id`` (or ``id``), else on ``query``;
        every item must have an outcome of both models. Other models are skipped."""
        if not os.path.isfile(path):
            raise ConfigError(path, "outcome matrix not found")
        if edge_model == cloud_model:
            raise ConfigError(path, f"edge and cloud model are both {edge_model!r}")
        names = (str(edge_model), str(cloud_model))
        matrix = read_matrix(path, models=names)
        for model in names:
            if model not in matrix.models:
                known = ", ".join(sorted(matrix.models)[:10]) or "none"
                missing = (f"field 'model': no rows for {model!r}" if matrix.layout == "long"
                           else f"no column {model!r}")
                raise ConfigError(path, f"{missing} (models in the file: {known})")
        items = {}  # item key -> its outcomes of the two models, in file order
        for outcome in matrix.outcomes:
            items.setdefault(outcome.key, []).append(outcome)
        columns = []  # per item: (edge score, cost, latency, cloud score, cost, latency)
        for key, outcomes in items.items():
            by_model = {o.model: o for o in outcomes}
            for tier, model in enumerate(names):
                if model not in by_model:
                    other = by_model[names[1 - tier]]
                    raise ConfigError(f"{path}:{other.line}", f"item {key[1]!r} has a row for "
                                                              f"{other.model!r} but none for "
                                                              f"{model!r}")
            columns.append([value for model in names for value in _outcome(by_model[model])])
        outcome = np.array(columns, dtype=np.float64).reshape(len(items), 6)  # None -> NaN
        firsts = [outcomes[0] for outcomes in items.values()]
        return cls(
            ids=[str(key[1]) if key[0] == "id" else str(i) for i, key in enumerate(items)],
            queries=[first.item.get("query") or "" for first in firsts],
            subjects=[next((o.subject for o in outcomes if o.subject), None)
                      for outcomes in items.values()],
            task_types=[next((o.task_type for o in outcomes if o.task_type), None)
                        or DEFAULT_TASK_TYPE for outcomes in items.values()],
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


def _outcome(outcome):
    """(score, cost USD, e2e seconds or None) of a matrix outcome."""
    response = outcome.response
    return response["score"], response["cost_usd"], response["perf"]["e2e_latency"]


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
