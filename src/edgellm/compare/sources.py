"""What ``edgellm compare`` is given, read as rank rows: a workspace, a job folder,
its rank folder, a rank file (``all_rank.csv`` or ``selected_rank.csv``) or one test
case's folder. Each source keeps each configuration once, from its latest run; each
row keeps its ``url``, the case folder whose per-query results give the intervals.
Bad input is a one-line ``ConfigError`` naming the path."""

import os
import time
from dataclasses import dataclass, field

from edgellm.bench.case_items import RESULTS
from edgellm.bench.rank import configuration_columns, latest_rows
from edgellm.errors import ConfigError
from edgellm.files import read_json
from edgellm.rows import BadRow, csv_header, read_rows, row_error
from edgellm.yaml_file import load_yaml

RANK_FILES = ("all_rank.csv", "selected_rank.csv")


@dataclass
class Source:
    label: str  # "A", "B", ...
    path: str  # as given
    where: str  # the file or folder the rows come from
    rows: list  # dicts: configuration columns, metrics, url
    metrics: list  # the metric columns, in file order
    shown: list  # the metrics shown by default (the job's selected ones)
    key_columns: list = field(default_factory=list)

    def describe(self):
        count = len(self.rows)
        return f"{self.label}: {self.where} ({count} configuration{'s' * (count != 1)})"


def read_source(label, path, job=None):
    if not os.path.exists(path):
        raise ConfigError(path, "no such file or folder")
    if os.path.isfile(path):
        if path.endswith(".csv"):
            return _rank_source(label, path, path)
        if os.path.basename(path) in (RESULTS, "metrics.json"):
            return _case_source(label, path, os.path.dirname(path) or ".")
        raise ConfigError(path, "not a rank file (.csv), a test case folder or a workspace")
    if _is_case(path):
        return _case_source(label, path, path)
    for folder in (path, os.path.join(path, "rank")):
        rank_file = _rank_file(folder)
        if rank_file:
            return _rank_source(label, path, rank_file)
    return _workspace_source(label, path, job)


def _is_case(folder):
    return os.path.isfile(os.path.join(folder, "metrics.json")) or \
        os.path.isfile(os.path.join(folder, RESULTS))


def _rank_file(folder):
    return next((os.path.join(folder, name) for name in RANK_FILES
                 if os.path.isfile(os.path.join(folder, name))), None)


def workspace_jobs(path):
    """The jobs with rank files in ``path`` when it is a workspace; None when it is
    anything else (a rank file or folder, a case folder, nothing)."""
    if not os.path.isdir(path) or _is_case(path) or _rank_file(path) or \
            _rank_file(os.path.join(path, "rank")):
        return None
    return sorted(name for name in os.listdir(path)
                  if _rank_file(os.path.join(path, name, "rank")))


def common_job(paths):
    """The one job every workspace among ``paths`` holds, where one of them holds
    several (``edgellm compare workspace other`` after several jobs ran in
    ./workspace); None when that does not settle it."""
    found = [jobs for jobs in map(workspace_jobs, paths) if jobs is not None]
    if not any(len(jobs) > 1 for jobs in found):
        return None
    common = set.intersection(*map(set, found))
    return common.pop() if len(common) == 1 else None


def _workspace_source(label, path, job):
    jobs = workspace_jobs(path)
    if job is not None:
        if job not in jobs:
            raise ConfigError(path, f"no job {job!r} with rank files here "
                                    f"(jobs: {', '.join(jobs) or 'none'})")
        jobs = [job]
    if not jobs:
        raise ConfigError(path, "no rank files (<job>/rank/all_rank.csv or "
                                "selected_rank.csv) and no test case folder here")
    if len(jobs) > 1:
        raise ConfigError(path, f"holds the rank files of several jobs ({', '.join(jobs)}): "
                                f"give --job NAME or the job's rank folder")
    return _rank_source(label, path, _rank_file(os.path.join(path, jobs[0], "rank")))


def _read_csv(path):
    """(header, rows) of a rank file; a row that does not fit the header, bytes that
    are not UTF-8 or a NUL byte are one line naming the file and line."""
    try:
        header = csv_header(path) or []
        rows = []
        for line, row in read_rows(path):
            if isinstance(row, BadRow):
                raise row_error(path, line, row)
            rows.append(row)
    except OSError as err:
        raise ConfigError(path, f"cannot read the rank file: {err.strerror}") from None
    return header, rows


def _rank_source(label, path, rank_file):
    header, rows = _read_csv(rank_file)
    if "algorithm" not in header or "paradigm" not in header:
        raise ConfigError(rank_file, "not a rank file: it needs the columns algorithm and "
                                     "paradigm (Ianvs' all_rank.csv or selected_rank.csv)")
    metrics = header[header.index("algorithm") + 1:header.index("paradigm")]
    keys = configuration_columns(header, metrics)
    latest = latest_rows(rows, keys)
    shown = metrics
    selected = os.path.join(os.path.dirname(rank_file), RANK_FILES[1])
    if os.path.basename(rank_file) == RANK_FILES[0] and os.path.isfile(selected):
        selected_header, _ = _read_csv(selected)
        if "algorithm" in selected_header and "paradigm" in selected_header:
            shown = selected_header[selected_header.index("algorithm") + 1:
                                    selected_header.index("paradigm")]
    return Source(label, path, rank_file, latest, metrics, shown, keys)


def _case_source(label, path, folder):
    """One test case's folder as a single row, named like its rank row."""
    config_path = os.path.join(folder, "config.yaml")
    metrics_path = os.path.join(folder, "metrics.json")
    if not os.path.isfile(metrics_path):
        raise ConfigError(folder, "a test case folder without metrics.json (a failed or "
                                  "unfinished case?)")
    metrics = read_json(metrics_path, "cannot read the test case's metrics")
    if not isinstance(metrics, dict):
        raise ConfigError(metrics_path, "not a test case's metrics: expected a JSON object")
    config = load_yaml(config_path, "test case configuration") or {}
    if not isinstance(config, dict):
        raise ConfigError(config_path, "not a test case's configuration: expected a mapping")
    algorithm = config.get("algorithm") or {}
    row = {"algorithm": algorithm.get("name", os.path.basename(os.path.dirname(
        os.path.abspath(folder)))), "paradigm": algorithm.get("paradigm_type", "")}
    for module in config.get("modules") or []:
        if not isinstance(module, dict) or not module.get("type"):
            raise ConfigError(config_path, "modules: each module needs a type")
        row[module["type"]] = module.get("name", "")
        for name, value in (module.get("hyperparameters") or {}).items():
            row[f"{module['type']}-{name}"] = str(value)
    keys = list(row)
    row.update({name: _cell(value) for name, value in metrics.items()})
    row["url"] = folder
    row["time"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(
        metrics_path)))
    return Source(label, path, folder, [row], list(metrics), list(metrics), keys)


def _cell(value):
    return "" if value is None or value != value else str(value)

