"""Where a command writes, checked before it reads or computes anything: a path under
a regular file, a file where a folder goes (or the other way round) or a folder the
user cannot write is one line naming the path, and nothing is half-done. A write that
fails anyway (a full disk) is the same one line."""

import contextlib
import os

from edgellm.errors import ConfigError


def check_target(path, folder=False):
    """Raise ConfigError when ``path`` (a file, or with ``folder`` a folder, that the
    command will create or replace) cannot be written."""
    if os.path.exists(path):
        if folder and not os.path.isdir(path):
            raise ConfigError(path, "exists and is not a folder")
        if not folder and os.path.isdir(path):
            raise ConfigError(path, "is a folder (give a file name)")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the folders the write will create
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(path, f"cannot be written: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(path, f"cannot be written: no permission to write in {parent}")


@contextlib.contextmanager
def writing(path):
    """``with writing(path):`` around a write to ``path``: an OSError is one line."""
    try:
        yield
    except OSError as err:
        raise ConfigError(path, f"cannot be written: {err.strerror or err}") from None
