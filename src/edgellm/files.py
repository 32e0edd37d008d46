"""Files the library writes and checks: atomic writes (a crash never leaves a
half-written file behind), locks between processes, SHA-256 digests (what a split,
a fitted router or a model transfer records to know a file again), the user's
cache folder, and JSON files a user may have written (``read_json``)."""

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile

from edgellm.errors import ConfigError

# mkstemp creates files readable by their owner only; results are meant to be shared
# like any file the user writes, so apply the process umask instead.
_UMASK = os.umask(0)
os.umask(_UMASK)


def read_json(path, what):
    """The JSON in ``path`` (a BOM, as Windows tools write it, is dropped). A file that
    cannot be read, is not JSON or nests deeper than the parser's recursion allows (a
    crafted file) is a ConfigError naming it: "<what>: <why>"."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:  # ValueError: bad JSON, and undecodable bytes
        raise ConfigError(path, f"{what}: {err}") from None
    except RecursionError:  # json nests by recursion
        raise ConfigError(path, f"{what}: nested too deeply") from None


def write_text(path, text):
    """Write ``text`` to ``path`` via a temporary sibling and an atomic rename."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data):
    """Write ``data`` to ``path`` via a temporary sibling and an atomic rename."""
    with atomic_output(path) as handle:
        handle.write(data)


def write_files(folder, contents):
    """Write each ``{name: text or bytes}`` into ``folder``, atomically one by one, in
    the mapping's order (what a report renders first and writes after); returns the
    paths."""
    paths = []
    for name, data in contents.items():
        path = os.path.join(folder, name)
        write_bytes(path, data if isinstance(data, bytes) else data.encode("utf-8"))
        paths.append(path)
    return paths


class atomic_output:
    """``with atomic_output(path) as handle:`` a binary file handle on a temporary
    sibling of ``path``, renamed onto ``path`` when the block ends without an error
    and removed when it does not. For writers that stream (joblib, large exports)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.tmp = None

    def __enter__(self):
        folder = os.path.dirname(self.path) or "."
        os.makedirs(folder, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(self.path)}.",
                                        suffix=".tmp")
        self.handle = os.fdopen(fd, "wb")
        return self.handle

    def __exit__(self, kind, error, trace):
        try:
            self.handle.close()
            if kind is None:
                os.chmod(self.tmp, 0o666 & ~_UMASK)
                os.replace(self.tmp, self.path)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


@contextlib.contextmanager
def file_lock(path, wait=True):
    """``with file_lock(path):`` an exclusive lock between processes on ``path``
    (created if need be) for the ``with`` block. The kernel drops it when its process
    ends, however it ends (``flock``), so a killed holder never leaves it taken.
    ``wait=False`` raises ``BlockingIOError`` at once when another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # releases the lock


def cache_dir():
    """Where edgellm keeps what it builds or makes once per user (an exported ONNX
    model, the key that signs fitted routers): ``$EDGELLM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/edgellm``, else ``~/.cache/edgellm``."""
    if os.environ.get("EDGELLM_CACHE_DIR"):
        return os.environ["EDGELLM_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgellm")


def file_digest(path):
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_digest(text):
    """SHA-256 of a text's UTF-8 bytes, as hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
