"""A test case's per-query results, read back from its folder for intervals and
paired tests: the ``(y_true, y_pred)`` its metrics were computed from, and which
queries they were (two cases are paired when they answered the same queries)."""

import os
from dataclasses import dataclass

from edgellm.errors import ConfigError
from edgellm.metrics.catalog import item_statistic
from edgellm.metrics.per_item import NoItemValues
from edgellm.outcomes import read_results
from edgellm.records import joint_result

RESULTS = "results.jsonl"


@dataclass
class CaseItems:
    folder: str
    y_true: list
    y_pred: list
    queries: tuple  # (id, gold) per query, in order

    @classmethod
    def read(cls, folder):
        """The case in ``folder``; a ``ConfigError`` naming the file when it has no
        readable results."""
        records = read_results(os.path.join(folder, RESULTS))
        return cls(folder, [r.get("gold") for r in records], [joint_result(r) for r in records],
                   tuple((r.get("id"), repr(r.get("gold"))) for r in records))

    @property
    def n(self):
        return len(self.y_pred)

    def same_queries(self, other):
        return self.queries == other.queries

    def statistic(self, metric):
        """``(statistic, None)`` or ``(None, why there is none)``."""
        try:
            return item_statistic(metric, self.y_true, self.y_pred), None
        except NoItemValues as err:
            return None, str(err)


class CaseCache:
    """Case folders read once: ``get(url)`` -> (CaseItems or None, why not)."""

    def __init__(self):
        self._cases = {}

    def get(self, url):
        if not url:
            return None, "the row names no case folder (url)"
        if url not in self._cases:
            if not os.path.isfile(os.path.join(url, RESULTS)):
                self._cases[url] = (None, f"{url} has no {RESULTS} (folder removed?)")
            else:
                try:
                    self._cases[url] = (CaseItems.read(url), None)
                except ConfigError as err:
                    self._cases[url] = (None, str(err))
        return self._cases[url]
