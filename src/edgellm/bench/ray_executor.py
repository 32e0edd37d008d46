"""Test cases on Ray: ``edgellm run --executor ray [--address ray://host:10001]``, one
Ray task per case, for grids that outgrow one machine.

Each task runs its case in a Ray worker exactly as a local worker process does (the
runner's own ``run_case``, after reading the job and loading its modules and dataset
there), writes the case folder in the run's workspace and returns the same outcome;
the driver ranks them as the local run does, so results and rank files are the same.
Without ``--address`` (and no ``RAY_ADDRESS``) a local Ray instance is started for the
run and stopped after it; a Ray already initialised in the process is used as it is.

On a cluster every node must see the job's files and its workspace at the same path
as the driver (a shared filesystem), and have edgellm installed (docs/ray.md). A
case whose node does not see the workspace fails with one line saying so. Ray is an
optional extra: ``pip install 'edgellm[ray]'``.
"""

import logging
import os
import socket

import edgellm
from edgellm.bench.config import read_job
from edgellm.bench.job_folder import PartialNames
from edgellm.bench.loader import ModuleLoader
from edgellm.context import use_context
from edgellm.errors import ConfigError

CANCEL_WAIT_S = 10.0  # after a Ctrl-C: how long cancelled tasks get to stop
CONNECT_TIMEOUT_S = 5.0  # reaching a cluster's address before Ray is asked to


class RayCase:
    """One run's test cases as Ray runs them: ``case(index)`` in a Ray worker. Holds
    what crosses to the worker: the runner's class and settings, the run context,
    the driver's current directory (job paths resolve against it), the run's token
    and the case folders."""

    def __init__(self, runner, context, token, folders):
        self.runner_class = type(runner)
        self.settings = dict(store=runner.store, store_mode=runner.store_mode,
                             max_failed_share=runner.max_failed_share)
        self.job_path, self.cwd = runner.job_path, os.getcwd()
        self.context, self.token, self.folders = context, token, list(folders)

    def __call__(self, index):
        if os.path.isdir(self.cwd):  # a local Ray, or a shared filesystem
            os.chdir(self.cwd)
        job = read_job(self.job_path)
        if not os.path.isdir(job.output_dir):
            raise ConfigError(job.output_dir, "the job's folder is not on this Ray node: "
                                              "the workspace must be on a filesystem every "
                                              "node shares at the same path (docs/ray.md)")
        runner = self.runner_class(self.job_path, progress=False, jobs=1, **self.settings)
        loader = ModuleLoader()
        try:
            metrics, classes, dataset, _ = runner.prepare(job, loader)
            with use_context(self.context):
                return runner.run_case(job, classes, dataset, metrics, self.context,
                                       PartialNames(self.token), self.folders, index)
        finally:
            loader.unload()


def _run(task, index):
    return task(index)


def _ray():
    try:
        import ray  # optional extra, and slow to import: only for --executor ray
    except ModuleNotFoundError:
        raise ConfigError("--executor ray", "needs the ray package: pip install "
                                            "'edgellm[ray]'") from None
    return ray


def _check_reachable(address):
    """A cluster's ``host:port`` (or ``ray://host:port``) that accepts no connection is
    one line: Ray itself retries it for minutes, logging warnings. "auto", "local"
    and no address are left to Ray."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)),
                                 CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError("--address", f"no Ray cluster answers at {address}: "
                                       f"{err.strerror or err}") from None


def run_on_ray(address, task, indices, on_result):
    """``task(index)`` for each index as Ray tasks; ``on_result(index, outcome)`` as each
    ends (a task that raised or whose worker died: the exception as the outcome). On a
    KeyboardInterrupt the pending tasks are cancelled and waited for before it goes on
    up: nothing writes in a case folder after this returns."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        _check_reachable(address or os.environ.get("RAY_ADDRESS", ""))
        # the workers of a local Ray import this edgellm, wherever it comes from
        source = os.path.dirname(os.path.dirname(os.path.abspath(edgellm.__file__)))
        path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
        runtime_env = None if address else {"env_vars": {"PYTHONPATH": path}}
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, runtime_env=runtime_env)
    remote = ray.remote(num_cpus=1, max_retries=0)(_run)
    refs = {remote.remote(task, index): index for index in indices}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # the task raised, or its worker died
                    outcome = _first_line(err)
                on_result(refs[ref], outcome)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_S)
        raise
    finally:
        if started:
            ray.shutdown()


def _first_line(err):
    cause = getattr(err, "cause", None) or err  # RayTaskError wraps the task's own
    return f"{type(cause).__name__}: {cause}".strip().splitlines()[0]
