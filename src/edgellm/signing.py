"""Files edgellm wrote itself, known again before they are trusted.

A workspace is data: anyone who can write it can put any file there. Some files
edgellm writes there are read back as code (a fitted router is a joblib pickle, and
unpickling runs code), so the run that writes one records an HMAC-SHA256 of its bytes
(and its name) in a sidecar, ``<file>.hmac``, under a secret key kept outside the
workspace: ``<user cache folder>/signing.key`` (edgellm.files.cache_dir), 32 random
bytes made on first use, readable by the user only. A later run loads the file only
when its bytes verify; whoever can write the workspace but not the key cannot forge
a sidecar. Checks and loads use the same bytes, read once.
"""

import hashlib
import hmac
import os
import tempfile

from edgellm.files import cache_dir, write_text

KEY_FILE = "signing.key"
KEY_BYTES = 32
SIDECAR = ".hmac"


def key_path():
    return os.path.join(cache_dir(), KEY_FILE)


def _read_key(path):
    """The key at ``path``, or raise ValueError when it cannot be trusted (another
    user owns it, or others may read or change it: they could forge sidecars)."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        key = handle.read()
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise ValueError(f"{path}: the signing key is not the user's own, readable by them "
                         "only (mode 0600): not trusted")
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path}: not a signing key ({len(key)} bytes)")
    return key


def user_key():
    """The user's signing key, made on first use (mode 0600, in a folder of mode 0700
    when edgellm makes it). Raises ValueError or OSError when there is none to trust."""
    path = key_path()
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".signing.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(KEY_BYTES))
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made
        except FileExistsError:
            pass
        except OSError:  # no hard links on this file system: create it exclusively
            _create_exclusively(path)
    finally:
        os.unlink(tmp)
    return _read_key(path)


def _create_exclusively(path):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(os.urandom(KEY_BYTES))


def _mac(key, path, data):
    message = os.path.basename(path).encode() + b"\0" + data  # a file renamed fails too
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(path, data):
    """Record that ``data``, the bytes just written to ``path``, are edgellm's own."""
    write_text(path + SIDECAR, _mac(user_key(), path, data) + "\n")


def verified_bytes(path):
    """(bytes of ``path``, None) when its sidecar verifies them under the user's key,
    else (None, why not)."""
    try:
        with open(path + SIDECAR, encoding="ascii") as handle:
            recorded = handle.read().strip()
    except (OSError, ValueError):
        return None, "no signature from a run of yours beside it"
    try:
        key = user_key()
    except (OSError, ValueError) as err:
        return None, f"no signing key to check it with ({err})"
    with open(path, "rb") as handle:
        data = handle.read()
    if not hmac.compare_digest(recorded, _mac(key, path, data)):
        return None, "its signature does not match (changed since a run of yours wrote it)"
    return data, None
