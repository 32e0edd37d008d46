"""Confidence on the printed leaderboard: the ``±`` columns (half a 95 % bootstrap
interval, for the metrics ``rank.confidence`` or ``--confidence`` names) and, for
the first sort_by metric, which adjacent rows the items cannot tell apart (a paired
bootstrap of their difference, p >= 0.05). Both read the rows' case folders; a row
whose folder or results are gone simply has no interval."""

from edgellm.bench.case_items import CaseCache
from edgellm.bench.table import TableView
from edgellm.metrics.catalog import item_definition
from edgellm.stats.bootstrap import Bootstrap

LEADERBOARD_RESAMPLES = 2_000  # at the end of every run: enough for a 95 % interval
ALPHA = 0.05


class RowConfidence:
    def __init__(self, rows, resamples=LEADERBOARD_RESAMPLES, seed=0, cases=None):
        self.rows, self.resamples, self.seed = rows, resamples, seed
        self.cases = cases or CaseCache()
        self.why = {}  # metric -> the first reason a row had no statistic of it
        self.tested = {}  # metric -> adjacent pairs tested for noise

    def _statistic(self, row, metric):
        if item_definition(metric) is None:  # nothing to resample: read no results
            self.why.setdefault(metric, "it is not a mean over queries")
            return None, None
        case, why = self.cases.get(row.get("url"))
        if case is None:
            self.why.setdefault(metric, why)
            return None, None
        statistic, why = case.statistic(metric)
        if statistic is None:
            self.why.setdefault(metric, why)
        return case, statistic

    def intervals(self, metric):
        """[Interval or None] per row."""
        out = []
        for row in self.rows:
            case, statistic = self._statistic(row, metric)
            if statistic is None:
                out.append(None)
                continue
            bootstrap = Bootstrap(case.n, self.resamples, self.seed)
            out.append(bootstrap.interval(bootstrap.replicates([statistic])[0]))
        return out

    def adjacent_ties(self, metric):
        """[(row i, row i + 1, p)] (0-based) of adjacent rows on the same queries whose
        difference in ``metric`` is within the noise at 95 %; ``self.tested[metric]``:
        how many adjacent pairs could be tested."""
        ties = []
        self.tested[metric] = 0
        for i in range(len(self.rows) - 1):
            (a, sa), (b, sb) = (self._statistic(r, metric) for r in self.rows[i:i + 2])
            if sa is None or sb is None or not a.same_queries(b):
                continue
            self.tested[metric] += 1
            bootstrap = Bootstrap(a.n, self.resamples, self.seed)
            first, second = bootstrap.replicates([sa, sb])
            p = bootstrap.difference(first, second, sb.estimate() - sa.estimate()).p_value
            if p >= ALPHA:
                ties.append((i, i + 1, p))
        return ties


def ties_note(metric, ties):
    """One line naming the adjacent rows ``metric`` does not distinguish."""
    if not ties:
        return ""
    pairs = ", ".join(f"{i + 1}-{j + 1} p={p:.2f}" for i, j, p in ties)
    return f"within noise at 95 % by {metric} (paired bootstrap, same queries): rows {pairs}"


def leaderboard_view(job_name, standings, confidence=(), notes=(), resamples=None):
    """The ``TableView`` of a job's ``Standings``: ``±`` columns for the metrics in
    ``confidence``, and a line naming the adjacent rows the first sort_by metric
    does not distinguish."""
    rows = standings.rows
    rank = RowConfidence(rows, resamples or LEADERBOARD_RESAMPLES)
    intervals = {m: rank.intervals(m) for m in confidence if m in standings.metrics}
    lines = list(notes)
    if standings.sort_metrics:
        first = standings.sort_metrics[0]
        note = ties_note(first, rank.adjacent_ties(first))
        if note:
            lines.insert(0, note)
        elif len(rows) > 1 and not rank.tested[first] and first in rank.why:
            lines.insert(0, f"{first}: adjacent rows not tested for noise ({rank.why[first]})")
    for metric in dict.fromkeys(confidence):
        if metric not in standings.metrics:
            lines.append(f"{metric}: no interval column (not a column of this leaderboard: "
                         f"rank.selected_dataitem.metrics leaves it out)")
    for metric, values in intervals.items():
        if rows and all(v is None for v in values):
            lines.append(f"{metric}: no intervals (its rows have no per-query results to "
                         f"resample, or it is not a mean over queries)")
    return TableView(job_name, rows, standings.selected_header, standings.metrics,
                     standings.sort_metrics, standings.simulated, intervals, lines)
