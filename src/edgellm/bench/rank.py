"""Rank files exactly where and as Ianvs writes them, and the printed table.

``<workspace>/<job>/rank/all_rank.csv``: every test case ever run in this
workspace (rows accumulate across runs), sorted by ``rank.sort_by``; columns
rank, algorithm, metrics..., paradigm, one per module type (its alias), one per
hyperparameter ``<module type>-<hp>``, time, url. ``selected_rank.csv``: the
columns ``rank.selected_dataitem`` picks, duplicate rows (same values apart from
time and url) dropped.

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

from prettytable import from_csv

from edgellm.files import file_lock, write_text

INDEX = "rank"


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
        modules, hyperparameters, time, url). Holds the rank lock from reading the old
        rows to writing the new files, and through ``then()`` (the runner moves the
        ranked case folders into place: other runs see a row and its folder together)."""
        header = ["algorithm", *metric_names, "paradigm", *module_types, *hp_names, "time", "url"]
        with self.lock():
            old_header, old_rows = self._read_existing()
            columns = old_header + [c for c in header if c not in old_header]
            table = self._sort(old_rows + [{c: _cell(r.get(c)) for c in header} for r in rows],
                               metric_names)
            os.makedirs(self.rank_dir, exist_ok=True)
            if self.keeps_every_row:
                write_text(self.all_file, _csv(columns, table))
            write_text(self.selected_file,
                       _csv(*self._selected(table, metric_names, module_types, hp_names)))
            if then is not None:
                then()
        return self.selected_file

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

    def _selected(self, table, metric_names, module_types, hp_names):
        chosen = self.spec.selected_dataitem

        def pick(key, default):
            values = chosen.get(key) or ["all"]
            return list(default) if values == ["all"] else list(values)

        header = ["algorithm", *pick("metrics", metric_names), "paradigm",
                  *pick("modules", module_types), *pick("hyperparameters", hp_names),
                  "time", "url"]
        paradigms = pick("paradigms", [])
        seen, selected = set(), []
        for row in table:
            values = [row.get(c, "") for c in header]
            key = tuple(values[:-2])
            if key in seen or (paradigms and row.get("paradigm") not in paradigms):
                continue
            seen.add(key)
            selected.append(dict(zip(header, values)))
        return header, selected


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


def format_table(rank_file, title=None):
    """The selected rank file as a text table, as Ianvs' ``print_table`` shows it."""
    with open(rank_file, newline="", encoding="utf-8") as handle:
        table = from_csv(handle, delimiter=",")
    if title:
        table.title = title
    return table.get_string()
