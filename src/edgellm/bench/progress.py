"""A test case's progress on stderr: a tqdm bar on a terminal, plain lines anywhere
else (a log file, a pipe, CI), never cursor movements or carriage returns there.

Worker processes each draw one bar on the line of their own slot (``position``),
cleared when the case ends, under the lock tqdm shares between forked processes, so
bars of cases running side by side neither interleave nor pile up. A description is
cut to ``DESC_WIDTH`` characters so that the bar stays readable at 120 columns.
"""

import sys
import time

from tqdm import tqdm

DESC_WIDTH = 40
PLAIN_INTERVAL_S = 30.0  # a long case says how far it got this often


def _cut(text, width=DESC_WIDTH):
    return text if len(text) <= width else text[:width - 1] + "…"


class PlainProgress:
    """The same calls as a tqdm bar; writes one line every ``interval_s`` and one at
    the end, each with a single write (lines of processes sharing the stream stay
    whole)."""

    def __init__(self, total, desc, stream, interval_s=PLAIN_INTERVAL_S):
        self.total, self.desc, self.stream = total, desc, stream
        self.interval_s, self.done, self.postfix = interval_s, 0, {}
        self.start = self.last = time.monotonic()

    def set_postfix(self, values, refresh=False):
        self.postfix = dict(values)

    def update(self, n=1):
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval_s and self.done < self.total:
            self.last = now
            self._line(f"{self.done}/{self.total} queries ({100 * self.done // max(1, self.total)} %)")

    def close(self):
        self._line(f"{self.done}/{self.total} queries in {time.monotonic() - self.start:.1f} s")

    def _line(self, text):
        counts = ", ".join(f"{k.lower()} {v}" for k, v in self.postfix.items())
        self.stream.write(f"{self.desc}: {text}{f' ({counts})' if counts else ''}\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        return False


def case_progress(total, desc, enabled=True, position=None, stream=None):
    """A progress bar (context manager) for one test case. ``position``: the worker
    slot's line when cases run side by side (None: one case at a time)."""
    stream = stream or sys.stderr
    if not enabled:
        return tqdm(total=total, disable=True)
    if not _is_terminal(stream):
        return PlainProgress(total, desc, stream)
    return tqdm(total=total, desc=_cut(desc), unit="q", file=stream, dynamic_ncols=True,
                mininterval=0.1, position=position, leave=position is None)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False
