"""The run context: what the runner tells a test case's modules about where they run.

``edgellm run`` builds one ``RunContext`` per test case and makes it current while the
case's modules are built, run and cleaned up (``use_context``); library code reads it
with ``current_context()``: the response store's path and mode (real backends), the
case folder (the fleet's round log) and the algorithm's folder (fitted routers kept
for the next case). Nothing travels through environment variables.

Under real Ianvs, which calls the modules without a context, ``current_context()``
falls back to what the environment says (``from_environment``): Ianvs sets
``RESULT_SAVED_URL`` to ``<workspace>/<job>/<algorithm>`` for joint inference, and a
user may set ``EDGELLM_STORE`` and ``EDGELLM_STORE_MODE`` as ``edgellm run``'s
``--store`` and ``--store-mode`` would. There is no case folder then: the fleet writes
its round log under ``<algorithm folder>/fleet/<time>-<id>``.
"""

import contextvars
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

STORE_MODES = ("record", "replay", "auto")


@dataclass(frozen=True)
class RunContext:
    workspace: str = "./workspace"  # the job's workspace
    algorithm_dir: Optional[str] = None  # <workspace>/<job>/<algorithm>: shared by its cases
    case_dir: Optional[str] = None  # this test case's folder (while it runs: <uuid>.<run>.partial)
    store_path: Optional[str] = None  # the response store; None: <workspace>/responses.sqlite
    store_mode: Optional[str] = None  # record | replay | auto; None: the backend's setting


_CURRENT = contextvars.ContextVar("edgellm_run_context", default=None)


def current_context():
    """The context ``use_context`` made current, else ``from_environment()``."""
    context = _CURRENT.get()
    return context if context is not None else from_environment()


@contextmanager
def use_context(context):
    """Make ``context`` current inside the ``with`` block."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def from_environment(environ=os.environ):
    """The context of modules run by real Ianvs (the module docstring)."""
    algorithm_dir = environ.get("RESULT_SAVED_URL") or None
    workspace = os.path.dirname(os.path.dirname(os.path.abspath(algorithm_dir))) \
        if algorithm_dir else "./workspace"
    return RunContext(workspace=workspace, algorithm_dir=algorithm_dir,
                      store_path=environ.get("EDGELLM_STORE") or None,
                      store_mode=environ.get("EDGELLM_STORE_MODE") or None)
