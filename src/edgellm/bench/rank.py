"""Rank files exactly where and as Ianvs writes them, and the printed table.

``<workspace>/<job>/rank/all_rank.csv``: every test case ever run in this
workspace (rows accumulate across runs), sorted by ``rank.sort_by``; columns
rank, algorithm, metrics..., paradigm, one per module type (its alias), one per
hyperparameter ``<module type>-<hp>``, simulated, time, url. ``simulated`` (ours,
not Ianvs'): True where the case's answers came from the simulated backend's model
profiles, not real inference. ``selected_rank.csv``: the columns
``rank.selected_dataitem`` picks, duplicate rows (same values apart from simulated,
time and url) dropped, the newest of them kept (Ianvs keeps the oldest, whose case
folder a rerun does not describe).

The printed table shows each configuration (algorithm, modules, hyperparameters)
once, from its latest run: ``Standings``.

Ianvs does this with pandas; we use the csv module because importing pandas
alone takes half a second, half of our whole-run budget. Unlike Ianvs, metric
columns follow testenv.yaml's order (Ianvs' come from a set, so their order
changes between runs). Files are replaced atomically: a failure never leaves a
half-written rank file. Runs of one job side by side (several ``edgellm run``
processes on one workspace) take turns: each reads, merges and writes the rank files
under the job's rank lock, so no run's rows overwrite another's.
"""

import csv
import io
import math
import os
from dataclasses import dataclass, field

from edgellm.files import file_lock, write_text

INDEX = "rank"
SIMULATED = "simulated"
TRAILING = (SIMULATED, "time", "url")  # the last columns, in this order


def _number(value):
    """Sort key of a cell: its float value, NaN when empty or not numeric."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


class Leaderboard:
    """Writes a job's rank files from its test cases' rows."""

    def __init__(self, spec, output_dir):
        self.spec = spec
        self.rank_dir = os.path.join(output_dir, "rank")
        self.all_file = os.path.join(self.rank_dir, "all_rank.csv")
        self.selected_file = os.path.join(self.rank_dir, "selected_rank.csv")
        # beside rank/, not in it: rank/ holds what Ianvs writes and nothing else
        self.lock_file = os.path.join(output_dir, ".rank.lock")

    def lock(self):
        """The job's rank lock: held while a run reads or writes the rank files."""
        return file_lock(self.lock_file)

    def save(self, rows, metric_names, module_types, hp_names, then=None):
        """``rows``: one dict per succeeded test case (algorithm, metrics, paradigm,
        modules, hyperparameters, simulated, time, url). Holds the rank lock from
        reading the old rows to writing the new files, and through ``then()`` (the
        runner moves the ranked case folders into place: other runs see a row and its
        folder together). Returns the ``Standings`` the table is printed from."""
        header = ["algorithm", *metric_names, "paradigm", *module_types, *hp_names, *TRAILING]
        with self.lock():
            old_header, old_rows = self._read_existing()
            columns = _trailing_last(old_header + [c for c in header if c not in old_header])
            table = self._sort(old_rows + [{c: _cell(r.get(c)) for c in header} for r in rows],
                               metric_names)
            os.makedirs(self.rank_dir, exist_ok=True)
            if self.keeps_every_row:
                write_text(self.all_file, _csv(columns, table))
            selected_header, selected = self._selected(table, metric_names, module_types,
                                                       hp_names)
            write_text(self.selected_file, _csv(selected_header, selected))
            if then is not None:
                then()
        paradigms = self._pick("paradigms", [])
        latest = [r for r in latest_rows(table, ["algorithm", "paradigm", *module_types,
                                                 *hp_names])
                  if not paradigms or r.get("paradigm") in paradigms]
        return Standings(self.selected_file, selected_header, latest,
                         [m for m in self._pick("metrics", metric_names)],
                         [m for m, _ in self.spec.sort_by if m in metric_names])

    def ranked_folders(self):
        """The case folders the rows of the rank files name (their ``url``s' last
        part). Hold ``lock()``."""
        names = set()
        for path in (self.all_file, self.selected_file):
            if os.path.isfile(path):
                with open(path, newline="", encoding="utf-8") as handle:
                    names.update(os.path.basename(os.path.normpath(row.get("url") or "."))
                                  for row in csv.DictReader(handle))
        return names

    @property
    def keeps_every_row(self):
        """Whether all_rank.csv is kept, with a row for every case ever ranked."""
        return self.spec.save_mode != "selected_only"

    def _read_existing(self):
        if not os.path.isfile(self.all_file):
            return [], []
        with open(self.all_file, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [c for c in (reader.fieldnames or []) if c != INDEX]
            rows = [{c: row.get(c, "") for c in header} for row in reader]
        return header, rows

    def _sort(self, rows, metric_names):
        # Ianvs sorts by the sort_by metrics this run produced, in priority order;
        # empty cells last. Stable sorts from the least to the most important key.
        for metric, ascending in reversed(self.spec.sort_by):
            if metric not in metric_names:
                continue
            present = [r for r in rows if not math.isnan(_number(r.get(metric)))]
            missing = [r for r in rows if math.isnan(_number(r.get(metric)))]
            present.sort(key=lambda r: _number(r[metric]), reverse=not ascending)
            rows = present + missing
        return rows

    def _pick(self, key, default):
        values = self.spec.selected_dataitem.get(key) or ["all"]
        return list(default) if values == ["all"] else list(values)

    def _selected(self, table, metric_names, module_types, hp_names):
        header = ["algorithm", *self._pick("metrics", metric_names), "paradigm",
                  *self._pick("modules", module_types),
                  *self._pick("hyperparameters", hp_names), *TRAILING]
        paradigms = self._pick("paradigms", [])
        where, selected = {}, []
        for row in table:
            if paradigms and row.get("paradigm") not in paradigms:
                continue
            values = dict(zip(header, (row.get(c, "") for c in header)))
            key = tuple(v for c, v in values.items() if c not in TRAILING)
            if key not in where:
                where[key] = len(selected)
                selected.append(values)
            elif _newer(values, selected[where[key]]):  # same figures: the newest run's
                selected[where[key]] = values
        return header, selected


@dataclass
class Standings:
    """What the printed table shows: each configuration's latest row (every column
    of all_rank.csv), in rank order; the columns ``selected_dataitem`` picks; its
    metrics; the sort_by metrics this job produces."""

    selected_file: str
    selected_header: list
    rows: list
    metrics: list
    sort_metrics: list = field(default_factory=list)

    @property
    def simulated(self):
        """Rows whose figures come from simulated models (True/False/None: unknown)."""
        return [_flag(r.get(SIMULATED)) for r in self.rows]


def _flag(value):
    return {"True": True, "False": False}.get(value)


def _newer(row, other):
    """Whether ``row`` comes from a later run than ``other`` (its time; a tie goes to
    ``row``, which comes later in the file: rows are appended in run order)."""
    return (row.get("time") or "") >= (other.get("time") or "")


def _trailing_last(columns):
    return [c for c in columns if c not in TRAILING] + list(TRAILING)


def latest_rows(rows, key_columns):
    """Each configuration (its values in ``key_columns``) once, from its latest run,
    at the place of that run's row: ``rows`` in rank order."""
    latest = {}
    for i, row in enumerate(rows):
        key = tuple(row.get(c, "") for c in key_columns)
        if key not in latest or _newer(row, rows[latest[key]]):
            latest[key] = i
    keep = set(latest.values())
    return [row for i, row in enumerate(rows) if i in keep]


def configuration_columns(header, metric_names=()):
    """The columns that name a row's configuration in a rank file of ``header``:
    algorithm, paradigm and what follows it (modules, hyperparameters), without
    the trailing columns and any column of ``metric_names``. Ianvs' layout puts the
    metrics between algorithm and paradigm."""
    after = header[header.index("paradigm"):] if "paradigm" in header else []
    return ["algorithm"] + [c for c in after
                            if c not in TRAILING and c != INDEX and c not in metric_names]


def _csv(header, rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([INDEX, *header])
    for i, row in enumerate(rows, 1):
        writer.writerow([i, *(row.get(c, "") for c in header)])
    return out.getvalue()


def read_rank_file(path):
    """(header, rows) of a rank file as written, its ``rank`` column included; rows
    are dicts of strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)
