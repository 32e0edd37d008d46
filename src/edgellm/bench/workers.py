"""Test cases side by side in forked worker processes, and the signals around them.

The run (the parent process) alone decides what a Ctrl-C means: the terminal sends
SIGINT to every process of the group, so workers ignore it, and the parent stops
the pool, ranks what finished and reports the rest. A worker never outlives its run:
one whose parent dies (``kill -9``) is killed by the kernel (Linux
``PR_SET_PDEATHSIG``) or, where that is not offered, by a watchdog thread.
"""

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_PERIOD_S = 0.5

# What forked workers run, set just before they are forked (fork shares it for free;
# pickling a dataset to each worker would cost more than the cases).
_TASK = None
# This worker's slot, 0..count-1 (its progress bar's line); None in the parent
_SLOT = None


def worker_slot():
    """The slot of the worker process this runs in (0 outside workers)."""
    return _SLOT or 0


def run_in_workers(count, func, args, indices, on_result):
    """``func(*args, index)`` for each index in ``count`` forked workers; the parent
    calls ``on_result(index, result)`` as each one finishes. On a KeyboardInterrupt
    in the parent the workers are stopped (terminated, waited for) before it goes on
    up, so that nothing writes in a case folder after this returns."""
    global _TASK

    _TASK = (func, args)
    fork = multiprocessing.get_context("fork")
    try:
        slots = fork.Value("i", 0)
        pool = fork.Pool(count, initializer=_start_worker, initargs=(os.getpid(), slots))
        try:
            for index, result in pool.imap_unordered(_call, indices, chunksize=1):
                on_result(index, result)
        finally:
            with sigint_held():  # a second Ctrl-C must not leave workers running
                pool.terminate()
                pool.join()
    finally:
        _TASK = None


def _call(index):
    func, args = _TASK
    return index, func(*args, index)


def _start_worker(parent, slots):
    global _SLOT

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    die_with_parent(parent)
    with slots.get_lock():
        _SLOT = slots.value
        slots.value += 1


def die_with_parent(parent, use_prctl=True):
    """Have this process killed when ``parent`` (the process that forked it) dies."""
    if not (use_prctl and _set_parent_death_signal(signal.SIGKILL)):
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                         name="edgellm-parent-watchdog").start()
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _set_parent_death_signal(signum):
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def _watch_parent(parent):
    while os.getppid() == parent:  # an orphan is adopted by another process
        time.sleep(_WATCHDOG_PERIOD_S)
    os._exit(1)


@contextlib.contextmanager
def sigint_held():
    """A Ctrl-C inside the block takes effect at its end: for the short steps that
    must not stop halfway (stopping workers, writing the rank files and moving their
    folders into place). The handler is swapped, not the signal mask blocked: any
    thread (the pool's, a backend's) may receive a signal sent to the process. A
    no-op outside the main thread, where handlers cannot be set."""
    before = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or before is None:
        yield  # (None: a handler set outside Python, which could not be put back)
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        if caught:
            signal.raise_signal(signal.SIGINT)
