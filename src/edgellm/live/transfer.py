"""Model files between the center and its nodes: checked, resumable, installed atomically.

The center's ``ModelStore`` holds one file per catalog model in its models folder
(``<model id>`` with any extension, e.g. ``qwen2.5-3b.gguf``), addressed by the model's
catalog id only, so that no request can name a path outside the folder, with each
file's SHA-256 computed once. The node's ``download`` pulls a file over HTTP, resumes
a cut transfer with a ``Range`` request (as exo's and GPUStack's downloads do), checks
the SHA-256 of every byte before it installs the file with an atomic rename, and
retries a corrupt download from scratch: a bad file never reaches the engine.
"""

import hashlib
import os
import queue
import threading
import time
from dataclasses import dataclass

import httpx

from edgellm.errors import ConfigError
from edgellm.files import file_digest

CHUNK = 4 << 20  # bytes per read and write: large chunks keep loopback near memory speed
SOCKET_READ = 1 << 20  # bytes per socket read of a download (httpcore's default: 64 KiB)


def _larger_socket_reads():
    """httpx's sync connections read the socket 64 KiB at a time, each read parsed by
    h11 in Python: a 1 GiB download is 16,000 of them, and on two cores they, not the
    disk or SHA-256, bounded it (274-402 MB/s into memory; with 1 MiB reads 680-745,
    alternated in one run). httpcore has no setting for it: its class attribute is
    raised, only where it is the default it was measured against (the agent's other
    requests are small: a larger read costs them nothing)."""
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", None) == 64 * 1024:
        HTTP11Connection.READ_NUM_BYTES = SOCKET_READ


_larger_socket_reads()
PARTIAL = ".partial"  # where a download in progress lives, under the models folder


@dataclass(frozen=True)
class ModelFile:
    model_id: str
    path: str
    size: int
    sha256: str


class ModelStore:
    """The center's model files (the module docstring)."""

    def __init__(self, folder, topology, make_placeholders=False, bytes_per_gb=1 << 20):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.files = {}
        for model in topology.models:
            path = self._find(model.id)
            if path is None and make_placeholders:
                path = write_placeholder(os.path.join(self.folder, f"{model.id}.bin"),
                                         int(model.size_gb * bytes_per_gb), model.id)
            if path is None:
                raise ConfigError(self.folder, f"no file for catalog model {model.id!r} "
                                               f"(expected {model.id}.<ext> in the models "
                                               f"folder)")
            self.files[model.id] = ModelFile(model.id, path, os.path.getsize(path),
                                             file_digest(path))

    def _find(self, model_id):
        for name in sorted(os.listdir(self.folder)):
            path = os.path.join(self.folder, name)
            if os.path.isfile(path) and os.path.splitext(name)[0] == model_id:
                return path
        return None

    def get(self, model_id):
        return self.files.get(model_id)

    def manifest(self):
        return {m: {"size": f.size, "sha256": f.sha256, "name": os.path.basename(f.path)}
                for m, f in self.files.items()}


def write_placeholder(path, size, seed_text):
    """A model file of ``size`` bytes for a simulated fleet (its engines answer from
    profiles; the file only has to travel): deterministic bytes, so that every center
    makes the same file and a node can keep it across runs."""
    block = hashlib.sha256(seed_text.encode()).digest() * (CHUNK // 32)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        left = max(1, size)
        while left:
            piece = block[:min(left, len(block))]
            handle.write(piece)
            left -= len(piece)
    os.replace(tmp, path)
    return path


class TransferError(Exception):
    """A download that failed after its retries (the message says why)."""


@dataclass
class TransferResult:
    path: str
    size: int
    seconds: float
    retries: int          # corrupt or cut downloads that were started again or resumed
    resumed_bytes: int    # bytes kept from a cut transfer instead of fetched again


def download(client, url, folder, model_id, sha256, size, filename=None, headers=None,
             retries=3, progress=None):
    """Fetch ``url`` into ``<folder>/<filename>`` (default: the model id): resume a
    partial file with ``Range``, verify ``sha256`` and install atomically;
    ``progress(done, total)`` is called as bytes arrive. Raises ``TransferError`` after
    ``retries`` failed attempts (a cut transfer, a corrupt file, an HTTP error)."""
    partial_dir = os.path.join(folder, PARTIAL)
    os.makedirs(partial_dir, exist_ok=True)
    partial = os.path.join(partial_dir, model_id)
    started, failures, resumed = time.perf_counter(), 0, 0
    while True:
        have = os.path.getsize(partial) if os.path.exists(partial) else 0
        if have > size:  # not this file's beginning: start again
            os.unlink(partial)
            have = 0
        if failures and have:
            resumed += have
        try:
            digest = _fetch(client, url, partial, have, size, headers, progress)
            problem = None if digest == sha256 else "SHA-256 mismatch"
        except (httpx.HTTPError, OSError, TransferError) as err:
            problem = f"{type(err).__name__}: {err}"
        else:
            if problem:  # corrupt: never resumed, started again from nothing
                os.unlink(partial)
        if problem is None:
            final = os.path.join(folder, filename or model_id)
            os.replace(partial, final)
            return TransferResult(final, size, time.perf_counter() - started, failures,
                                  resumed)
        failures += 1
        if failures > retries:
            raise TransferError(f"{model_id}: {problem} (after {failures} attempts)")


def _fetch(client, url, path, have, size, headers, progress):
    """Append the rest of the file to ``path``; the SHA-256 of the whole file, hashed
    as the bytes arrive (the part kept from a cut transfer first), not read again.
    The socket's pieces are taken as they come (``iter_raw``: re-cutting them into
    CHUNK-sized ones cost a fifth of the time) and a thread writes them while this one
    receives and hashes (both release the GIL: disk, hash and HTTP overlap)."""
    headers = dict(headers or {})
    if have:
        headers["Range"] = f"bytes={have}-"
    hasher = hashlib.sha256()
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and have == size:  # it had arrived whole
            return file_digest(path)
        if response.status_code not in (200, 206):
            raise TransferError(f"HTTP {response.status_code} from {url}")
        mode = "ab" if response.status_code == 206 else "wb"
        done = have if mode == "ab" else 0
        if done:
            with open(path, "rb") as kept:
                for block in iter(lambda: kept.read(CHUNK), b""):
                    hasher.update(block)
        # raw bytes are the file's unless the server encoded them (it does not)
        pieces = (response.iter_bytes() if response.headers.get("content-encoding")
                  else response.iter_raw())
        reported = done
        with open(path, mode) as handle, _Writer(handle) as writer:
            for piece in pieces:
                writer.write(piece)
                hasher.update(piece)
                done += len(piece)
                if progress is not None and (done - reported >= CHUNK or done >= size):
                    progress(done, size)  # every few MB: not once per socket read
                    reported = done
    if done < size:
        raise TransferError(f"the transfer ended after {done} of {size} bytes")
    return hasher.hexdigest()


class _Writer:
    """Writes pieces to ``handle`` in a thread of its own, a few MB behind at most; a
    failed write is raised in the caller (at its next piece or at the end)."""

    DEPTH = 64  # pieces in flight (socket reads of up to 64 KiB)

    def __init__(self, handle):
        self.handle, self.error = handle, None
        self.queue = queue.Queue(self.DEPTH)
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="edgellm-model-writer")

    def __enter__(self):
        self.thread.start()
        return self

    def write(self, piece):
        if self.error is not None:
            raise self.error
        self.queue.put(piece)

    def _run(self):
        while (piece := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.handle.write(piece)
                except OSError as err:  # a full disk: said to the receiving thread
                    self.error = err

    def __exit__(self, *exc):
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error
        return False
