"""Write files so that a crash never leaves a half-written one behind."""

import os
import tempfile

# mkstemp creates files readable by their owner only; results are meant to be shared
# like any file the user writes, so apply the process umask instead.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_text(path, text):
    """Write ``text`` to ``path`` via a temporary sibling and an atomic rename."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data):
    """Write ``data`` to ``path`` via a temporary sibling and an atomic rename."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
