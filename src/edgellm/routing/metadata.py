"""``MetadataRouter``: a prior from item metadata, the smoothed share of hard train
items of the query's subject (Ianvs' level_4_dim) or task type."""

import numpy as np

from edgellm.routing.features import _as_list
from edgellm.routing.scoring import ScoringRouter


class MetadataRouter(ScoringRouter):
    """A prior from item metadata: the score of a query is the share of hard train
    items in its group (``by``: "subject", Ianvs' level_4_dim, default; "task_type";
    or a list of keys, grouped together), smoothed towards the share over all train
    items with ``smoothing`` pseudo-items (additive smoothing, an m-estimate):

        score(group) = (hard items of the group + smoothing x global share)
                       / (items of the group + smoothing)

    With ``label: expected_gain`` the score is the group's smoothed share of items the
    cloud got right minus its smoothed share of items the edge got right.
    A group with few items stays close to the global share; a group not seen in
    training, or a query without that metadata, scores the global share."""

    def __init__(self, by="subject", smoothing=10.0, **params):
        self.by = by
        self.smoothing = smoothing
        super().__init__(**params)

    def _key(self, sample):
        values = tuple(sample.get(k) if isinstance(sample, dict) else None
                       for k in self.keys_)
        return None if any(v is None or v == "" for v in values) else values

    def _fit(self, samples, y):
        self.keys_ = tuple(_as_list(self.by))
        if not self.keys_:
            raise ValueError("MetadataRouter: 'by' names no metadata key")
        if float(self.smoothing) < 0:
            raise ValueError(f"MetadataRouter: smoothing must be >= 0, got {self.smoothing}")
        # per item: +1 / -1 weights of the shares the score adds and subtracts
        columns = [(y[:, 1], 1.0), (y[:, 0], -1.0)] if y.ndim == 2 else [(y, 1.0)]
        groups = {}
        for i, sample in enumerate(samples):
            key = self._key(sample)
            if key is not None:
                groups.setdefault(key, []).append(i)
        if not groups:
            raise ValueError(f"MetadataRouter: no train item has {' and '.join(self.keys_)} "
                             "(the outcome matrix needs that column)")
        m = float(self.smoothing)
        self.global_share_ = float(sum(sign * column.mean() for column, sign in columns))
        self.group_share_ = {}
        for key, items in groups.items():
            self.group_share_[key] = float(sum(
                sign * (column[items].sum() + m * column.mean()) / (len(items) + m)
                for column, sign in columns))
        self.group_items_ = {key: len(items) for key, items in groups.items()}

    def _score(self, samples):
        shares, default = self.group_share_, self.global_share_
        return np.array([shares.get(self._key(s), default) for s in samples], dtype=np.float64)

