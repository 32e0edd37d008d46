"""Model downloads against a real HTTP server on loopback that misbehaves on purpose: a
transfer cut half-way resumes with Range, a corrupt one is refused by its SHA-256 and
fetched again from nothing, and no bad file is ever installed."""

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from edgellm.live.transfer import PARTIAL, TransferError, download

SIZE = 3 << 20  # several socket reads and several progress steps
DATA = os.urandom(SIZE)
DIGEST = hashlib.sha256(DATA).hexdigest()


class FlakyFiles:
    """Serves DATA; ``faults`` says what each request in turn gets: "cut" (half the
    body, then the connection closes), "corrupt" (one byte flipped) or "ok"."""

    def __init__(self, *faults):
        self.faults, self.ranges = list(faults), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fault = outer.faults.pop(0) if outer.faults else "ok"
                wanted = self.headers.get("Range")
                outer.ranges.append(wanted)
                start = int(wanted[len("bytes="):-1]) if wanted else 0
                body = DATA[start:]
                if fault == "corrupt":
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(206 if wanted else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if fault == "cut" else body)
                if fault == "cut":
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def fetch(server, folder, **kwargs):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return download(client, "/models/m", str(folder), "m", DIGEST, SIZE,
                        filename="m.gguf", **kwargs)


def installed(folder):
    with open(folder / "m.gguf", "rb") as handle:
        return handle.read() == DATA


def test_a_transfer_cut_half_way_resumes_from_what_arrived(tmp_path):
    seen = []
    with FlakyFiles("cut") as server:
        result = fetch(server, tmp_path, progress=lambda done, total: seen.append(done))
    assert result.retries == 1 and 0 < result.resumed_bytes <= SIZE // 2
    # the second request asked for exactly the bytes that had not arrived
    assert server.ranges == [None, f"bytes={result.resumed_bytes}-"]
    assert installed(tmp_path) and not os.listdir(tmp_path / PARTIAL)
    assert seen[-1] == SIZE and seen == sorted(seen)
    assert len(seen) < 16  # every few MB, not once per socket read


def test_a_corrupt_transfer_is_refused_and_fetched_again_from_nothing(tmp_path):
    with FlakyFiles("corrupt") as server:
        result = fetch(server, tmp_path)
    assert result.retries == 1 and result.resumed_bytes == 0
    assert server.ranges == [None, None]  # a corrupt file is never resumed
    assert installed(tmp_path)


def test_a_file_that_never_verifies_is_never_installed(tmp_path):
    with FlakyFiles(*["corrupt"] * 5) as server:
        with pytest.raises(TransferError, match=r"m: SHA-256 mismatch \(after 3 attempts\)"):
            fetch(server, tmp_path, retries=2)
    assert not os.path.exists(tmp_path / "m.gguf")
    assert not os.listdir(tmp_path / PARTIAL)


def test_a_failed_disk_write_is_an_error_of_the_transfer(tmp_path, monkeypatch):
    import edgellm.live.transfer as transfer

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, piece):
            raise OSError(28, "No space left on device")

    real = transfer._Writer.__init__
    monkeypatch.setattr(transfer._Writer, "__init__",
                        lambda self, handle: real(self, FullDisk(handle)))
    with FlakyFiles() as server:
        with pytest.raises(TransferError, match="No space left on device"):
            fetch(server, tmp_path, retries=1)
    assert not os.path.exists(tmp_path / "m.gguf")


def test_downloads_read_the_socket_a_megabyte_at_a_time():
    """httpcore's 64 KiB reads bounded a download on two cores (benchmarks/live_fleet.py):
    importing the transfer module raises them for sync connections."""
    from httpcore._sync.http11 import HTTP11Connection

    from edgellm.live import transfer

    assert HTTP11Connection.READ_NUM_BYTES == transfer.SOCKET_READ == 1 << 20
