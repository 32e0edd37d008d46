"""A workspace's leaderboards, as the monitor's table shows them.

Every job folder of the workspace (``<workspace>/<job>/rank/``) with a rank file gives
one board: the rows of all_rank.csv (or selected_rank.csv where all_rank.csv is not
kept), the columns of selected_rank.csv first and the others after, each row with its
case (the folder its ``url`` names, as a path under the workspace) and whether its
figures come from simulated models. That is the rank file's own ``simulated`` column
where it has one; otherwise it is told from the case's config.yaml and results.jsonl
as the runner tells it: a model that answered is simulated when its backend is the
embedded ``simulated`` one (a fleet module: no live center and no node endpoint).
"""

import functools
import os
from dataclasses import dataclass, field

import orjson
import yaml

from edgellm.bench.rank import INDEX, read_rank_file
from edgellm.errors import ConfigError

RANK_FILES = ("all_rank.csv", "selected_rank.csv")
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ten times faster
TRUE = ("true", "1", "yes", "y", "simulated")


@dataclass
class Board:
    job: str
    rank_file: str
    columns: list                 # selected ones first
    selected: list                # the columns selected_rank.csv has
    rows: list = field(default_factory=list)  # {"cells", "case", "simulated"}


class Workspace:
    """``folder``: a workspace (jobs under it) or one job's folder (``rank/`` in it).
    ``may_be_new``: the folder may not exist yet (a center started before the first run
    that writes to it); its leaderboard is empty until then."""

    def __init__(self, folder, may_be_new=False):
        self.folder = os.path.realpath(folder)
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise ConfigError(folder, "not a folder")
        if not (may_be_new or os.path.isdir(self.folder)):
            raise ConfigError(folder, "no such workspace folder")

    def job_folders(self):
        if not os.path.isdir(self.folder):
            return []
        if os.path.isdir(os.path.join(self.folder, "rank")):
            return [self.folder]
        return [os.path.join(self.folder, name) for name in sorted(os.listdir(self.folder))
                if os.path.isdir(os.path.join(self.folder, name, "rank"))]

    def check(self):
        """A one-line error where the workspace has no rank file at all."""
        if not any(_rank_file(f) for f in self.job_folders()):
            raise ConfigError(self.folder, "no rank files (<job>/rank/all_rank.csv or "
                                           "selected_rank.csv) under this workspace: run a "
                                           "job with it first")

    def boards(self):
        return [self.board(job) for job in self.job_folders() if _rank_file(job)]

    def board(self, job):
        rank_file = _rank_file(job)
        header, rows = read_rank_file(rank_file)
        selected_file = os.path.join(job, "rank", "selected_rank.csv")
        selected = read_rank_file(selected_file)[0] if os.path.isfile(selected_file) else header
        selected = [c for c in selected if c != INDEX]
        columns = [INDEX, *selected, *(c for c in header if c not in selected and c != INDEX)]
        board = Board(os.path.basename(job), rank_file, columns, selected)
        flag = next((c for c in header if c.lower() == "simulated"), None)
        for row in rows:
            case = self._case_of(job, row.get("url") or "")
            if flag and (row.get(flag) or "").strip():
                simulated = row[flag].strip().lower() in TRUE
            else:
                simulated = case_simulated(os.path.join(self.folder, case)) if case else None
            board.rows.append({"cells": row, "case": case, "simulated": simulated})
        return board

    def _case_of(self, job, url):
        """The case folder a row's ``url`` names, relative to the workspace; a workspace
        moved since the run is looked up by the url's last two parts; None if gone."""
        if not url:
            return None
        found = os.path.realpath(url)
        if not (self._inside(found) and os.path.isdir(found)):
            parts = os.path.normpath(url).split(os.sep)[-2:]
            found = os.path.realpath(os.path.join(job, *parts))
            if not (self._inside(found) and os.path.isdir(found)):
                return None
        return os.path.relpath(found, self.folder).replace(os.sep, "/")

    def _inside(self, path):
        return path.startswith(self.folder + os.sep)

    def case_folder(self, case_id):
        """The folder of a case some rank file lists; None for anything else (no
        request reaches outside the workspace or into a folder no row names)."""
        if not case_id:
            return None
        for board in self.boards():
            if any(row["case"] == case_id for row in board.rows):
                return os.path.join(self.folder, *case_id.split("/"))
        return None


def _rank_file(job):
    return next((p for p in (os.path.join(job, "rank", n) for n in RANK_FILES)
                 if os.path.isfile(p)), None)


def case_simulated(folder):
    """Whether the models that answered in the case at ``folder`` are simulated; None
    where that cannot be told (no config.yaml, a live center's engines)."""
    config, results = (os.path.join(folder, n) for n in ("config.yaml", "results.jsonl"))
    try:
        stamp = tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in (config, results))
    except OSError:
        return None
    return _case_simulated(config, results, stamp)


@functools.lru_cache(maxsize=4096)
def _case_simulated(config, results, stamp):
    try:
        with open(config, "rb") as handle:
            modules = {m["type"]: m.get("hyperparameters") or {}
                       for m in yaml.load(handle, Loader=LOADER).get("modules") or []}
        answered = set()
        with open(results, "rb") as handle:
            for line in handle:
                record = orjson.loads(line)
                answered.update(s for s in ("edge", "cloud") if record.get(s) is not None)
                if len(answered) == 2:
                    break
    except (OSError, ValueError, AttributeError, KeyError, TypeError, yaml.YAMLError):
        return None
    folder = os.path.dirname(config)
    sides = [_side_simulated(modules.get(f"{side}model") or {}, folder)
             for side in sorted(answered)]
    if any(sides):
        return True
    return None if None in sides else False


def _side_simulated(params, folder):
    if "topology" in params:  # the fleet module
        if params.get("center_url"):
            return _live_engines_simulated(folder)
        return not _has_endpoints(params["topology"])
    return params.get("backend", "simulated") == "simulated"


def _live_engines_simulated(folder):
    """A live run: its fleet.json names the engine of each node that answered (the
    center's cloud is simulated); None for a run recorded before it did."""
    try:
        with open(os.path.join(folder, "fleet.json"), "rb") as handle:
            engines = orjson.loads(handle.read()).get("engines")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(engines, dict) or not engines:
        return None
    if any(engine == "simulated" for engine in engines.values()):
        return True
    return None if None in engines.values() else False


def _has_endpoints(topology_path):
    try:
        stamp = os.stat(topology_path).st_mtime_ns
    except (OSError, TypeError, ValueError):
        return False  # not readable from here: taken for the embedded default, simulated
    return _topology_endpoints(topology_path, stamp)


@functools.lru_cache(maxsize=256)
def _topology_endpoints(path, stamp):
    try:
        with open(path, "rb") as handle:
            nodes = (yaml.load(handle, Loader=LOADER) or {}).get("nodes") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return False
    return any(isinstance(n, dict) and n.get("base_url") for n in nodes)
