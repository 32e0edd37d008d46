"""A job's output folder, ``<workspace>/<job>``, shared by every run of the job: which
run owns what while runs go on side by side, and what a killed run left behind.

- Each run holds a lock on ``.runs/<token>`` for as long as it lives; the kernel drops
  it when the run ends, however it ends (``kill -9`` too), so a free lock is a dead run.
- A test case writes in ``<algorithm>/<uuid>.<token>.partial``, its run's token in the
  name. A succeeded case's folder becomes ``<uuid>`` when its rank row is written,
  under the rank lock (``Leaderboard.lock``): other runs see a row and its folder
  together. A failed case's folder becomes ``<uuid>`` when the case ends (it is never
  ranked); an interrupted case's folder is removed.
- A run starts by cleaning up, under the rank lock: a dead run's partial folder is
  removed, or moved into place where a rank row already names it (the run was killed
  between the two steps); temporary rank files (``rank/.*.tmp``, which only a writer
  holding the rank lock has) are removed; a case folder no rank row names (an older
  edgellm's, or one whose row was deleted) is reported, never removed (not with
  ``save_mode: selected_only``, whose rank file keeps the last run's rows only). A
  live run's folders are never touched.
"""

import contextlib
import logging
import os
import re
import shutil
import uuid

from edgellm.errors import ConfigError
from edgellm.files import file_lock

LOG = logging.getLogger(__name__)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PARTIAL = ".partial"


def _plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


class PartialNames:
    """Where a run's test case writes while it is not done: ``<folder>.<run token>
    .partial`` (what a worker elsewhere, a Ray task, needs of the run's JobFolder)."""

    def __init__(self, token):
        self.token = token

    def partial(self, folder):
        return f"{folder}.{self.token}{_PARTIAL}"


class JobFolder:
    """``with JobFolder(job, board):`` the run's claim on the job's output folder.
    Entering checks that the workspace is writable (a one-line ``ConfigError``
    naming it, before the first test case), takes the run's lock and cleans up what
    dead runs left; leaving gives the lock back."""

    def __init__(self, job, board):
        self.job, self.board = job, board
        self.path = job.output_dir
        self.runs_dir = os.path.join(self.path, ".runs")
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # the pid for people reading it
        self._lock_path = os.path.join(self.runs_dir, self.token)
        self._held = None  # the run's lock, once taken (an ExitStack)

    def __enter__(self):
        try:
            os.makedirs(self.runs_dir, exist_ok=True)
            with self.board.lock():
                # taken under the rank lock: a run that cleans up sees it, or sees no
                # partial folder of this run
                held = contextlib.ExitStack()
                held.enter_context(file_lock(self._lock_path))
                self._held = held
                report = self._clean_up()
        except OSError as err:
            self.__exit__(None, None, None)
            raise ConfigError(self.job.path, f"key 'benchmarkingjob.workspace': cannot write "
                                             f"in {self.job.workspace}: "
                                             f"{err.strerror or err}") from None
        if report:
            LOG.warning("%s: %s", self.path, report)
        return self

    def __exit__(self, *exc):
        if self._held is not None:
            with self._held:  # released once the file is gone: no one takes it for dead
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._lock_path)
            self._held = None
        return False

    # -- the case folders of this run -------------------------------------------

    def new_case_folder(self, algorithm):
        """Where a test case of ``algorithm`` ends up (uuid4, not Ianvs' uuid1: uuid1
        can repeat across forked workers)."""
        return os.path.join(self.path, algorithm, str(uuid.uuid4()))

    def partial(self, folder):
        """Where the case of ``folder`` writes while it is not done."""
        return PartialNames(self.token).partial(folder)

    def move_into_place(self, folders):
        for folder in folders:
            os.replace(self.partial(folder), folder)

    def discard(self, folders):
        for folder in folders:
            shutil.rmtree(self.partial(folder), ignore_errors=True)

    # -- what dead runs left ----------------------------------------------------

    def _clean_up(self):
        """Under the rank lock: one line saying what was done, or ''."""
        live = {token for token in os.listdir(self.runs_dir) if self._alive(token)}
        ranked = self.board.ranked_folders()
        removed, restored, unranked = 0, 0, []
        for algorithm in sorted(os.listdir(self.path)):
            folder = os.path.join(self.path, algorithm)
            if algorithm.startswith(".") or algorithm == "rank" or not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                case_id, _, rest = name.partition(".")
                path = os.path.join(folder, name)
                if not _UUID.fullmatch(case_id) or not os.path.isdir(path):
                    continue
                token = rest[:-len(_PARTIAL)] if rest.endswith(_PARTIAL) else None
                if token in live:
                    continue
                if token:  # a dead run's
                    if case_id in ranked:
                        os.replace(path, os.path.join(folder, case_id))
                        restored += 1
                    else:
                        shutil.rmtree(path)
                        removed += 1
                elif self.board.keeps_every_row and case_id not in ranked and \
                        not os.path.exists(os.path.join(path, "error.txt")):
                    unranked.append(path)  # an older edgellm's, partial or not
        temporary = 0
        if os.path.isdir(self.board.rank_dir):
            for name in os.listdir(self.board.rank_dir):
                if name.startswith(".") and name.endswith(".tmp"):
                    os.unlink(os.path.join(self.board.rank_dir, name))
                    temporary += 1
        return self._report(removed, temporary, restored, unranked)

    @staticmethod
    def _report(removed, temporary, restored, unranked):
        done = [_plural(removed, 'unfinished test case folder')] if removed else []
        if temporary:
            done.append(_plural(temporary, "temporary rank file"))
        parts = [f"removed {' and '.join(done)}"] if done else []
        if restored:
            parts.append(f"restored {_plural(restored, 'ranked test case folder')}")
        if parts:
            parts = [f"cleaned up after a killed run: {', '.join(parts)}"]
        if unranked:
            more = f" and {len(unranked) - 1} more" if len(unranked) > 1 else ""
            parts.append(f"{_plural(len(unranked), 'test case folder')} "
                         f"{'is' if len(unranked) == 1 else 'are'} in no rank row: "
                         f"{unranked[0]}{more}")
        return "; ".join(parts)

    def _alive(self, token):
        """Whether the run of ``token`` still lives; a dead one's lock file goes."""
        path = os.path.join(self.runs_dir, token)
        try:
            with file_lock(path, wait=False):
                os.unlink(path)
            return False
        except (BlockingIOError, PermissionError):  # held; or another user's: not ours to judge
            return True
