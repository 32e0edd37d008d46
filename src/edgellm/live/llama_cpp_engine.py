"""The ``llama_cpp`` engine: llama-cpp-python's OpenAI-compatible server on the node.

For every model the center has the node keep, the agent runs ``python -m
llama_cpp.server`` on the GGUF file it received (a child process on a free loopback
port, its model alias the catalog id) and forwards tasks to it through the ``openai``
backend, which measures TTFT and every token. A new file for a model restarts its
server; the load time is measured from the spawn until the server answers
``GET /v1/models``. A server dies with its agent: stopped when the agent stops, and
killed by the kernel when the agent dies without stopping (Linux's
``PR_SET_PDEATHSIG``, set in the child before the server starts).

The server runs with ``interrupt_requests`` off: llama-cpp-python's default lets a new
request cut the answer being streamed, which would end every answer early under load.
It serves one request at a time (a lock around its model); the others wait in turn.
"""

import asyncio
import os
import subprocess
import sys
import threading
import time

import httpx

from edgellm.live.engines import BackendEngine
from edgellm.models import create_backend

# The child asks the kernel for SIGKILL when the thread that spawned it (the agent's
# event loop, i.e. the agent) goes, checks the agent was still there by then, and
# becomes llama-cpp-python's server in the same process.
_GUARD = ("import ctypes, os, runpy, signal, sys\n"
          "parent = int(sys.argv.pop(1))\n"
          "try:\n"
          "    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)\n"
          "except (OSError, AttributeError):\n"
          "    pass\n"
          "if os.getppid() != parent:\n"
          "    os._exit(1)\n"
          "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n")


def llama_cpp_available():
    """None when llama-cpp-python and its server's packages import, else why not."""
    try:
        import llama_cpp  # noqa: F401
        import llama_cpp.server.app  # noqa: F401
    except ImportError as err:
        return f"{err.name or err}: pip install 'edgellm[llamacpp]'"
    return None


def free_port(host="127.0.0.1"):
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ServerFailed(RuntimeError):
    """The server exited or did not answer in time (the message has its last log line)."""


class LlamaServer:
    """One ``llama_cpp.server`` child process serving ``model_path`` as ``alias``.
    ``start()`` spawns it, ``wait_ready()`` (or ``await ready()``) waits until it
    answers, ``stop()`` ends it; ``base_url`` is its OpenAI API root."""

    def __init__(self, model_path, alias, host="127.0.0.1", port=None, n_ctx=2048,
                 n_threads=None, log_path=None):
        self.model_path, self.alias = os.path.abspath(model_path), alias
        self.host, self.port = host, port or free_port(host)
        self.n_ctx, self.n_threads = int(n_ctx), n_threads
        self.log_path = log_path
        self.process = None
        self.spawned = None

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}/v1"

    def command(self):
        command = [sys.executable, "-c", _GUARD, str(os.getpid()),
                   "--model", self.model_path, "--model_alias", self.alias,
                   "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                   "--interrupt_requests", "false", "--verbose", "false"]
        if self.n_threads:
            command += ["--n_threads", str(self.n_threads),
                        "--n_threads_batch", str(self.n_threads)]
        return command

    def start(self):
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                            stdout=output, stderr=subprocess.STDOUT)
        finally:
            if output is not subprocess.DEVNULL:
                output.close()
        self.spawned = time.monotonic()
        return self

    def _check(self, deadline):
        """True once the server answers; raises when it exited or time is up."""
        if self.process.poll() is not None:
            raise ServerFailed(f"llama_cpp.server on {os.path.basename(self.model_path)} "
                               f"exited with {self.process.returncode}: {self._last_line()}")
        try:
            if httpx.get(self.base_url + "/models", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            self.stop()
            raise ServerFailed(f"llama_cpp.server on {os.path.basename(self.model_path)} "
                               f"did not answer within the time allowed: {self._last_line()}")
        return False

    def wait_ready(self, timeout_s=180.0):
        """Seconds from the spawn until the server answered (the load time)."""
        deadline = time.monotonic() + timeout_s
        while not self._check(deadline):
            time.sleep(0.05)
        return time.monotonic() - self.spawned

    async def ready(self, timeout_s=180.0):
        """``wait_ready`` without blocking the event loop."""
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self._check, deadline):
            await asyncio.sleep(0.05)
        return time.monotonic() - self.spawned

    def stop(self, wait=True, timeout_s=5.0):
        """SIGTERM, then SIGKILL after ``timeout_s``; ``wait=False`` leaves the waiting
        to a thread (the agent's event loop must not block)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()

        def reap():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        if wait:
            reap()
        else:
            threading.Thread(target=reap, daemon=True, name="llama-server-reaper").start()

    def _last_line(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return "(no log)"
        with open(self.log_path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(self.log_path) - 4096))
            lines = [ln for ln in handle.read().decode("utf-8", "replace").splitlines()
                     if ln.strip()]
        return lines[-1].strip() if lines else "(empty log)"

    def __enter__(self):
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc):
        self.stop()


class LlamaCppEngine(BackendEngine):
    """The module docstring. ``n_ctx`` and ``n_threads`` go to every server;
    ``ready_timeout_s`` bounds a load; other settings go to the ``openai`` backend."""

    def __init__(self, node, topology, models_dir, n_ctx=2048, n_threads=None,
                 ready_timeout_s=180.0, **settings):
        problem = llama_cpp_available()
        if problem:
            raise RuntimeError(f"the llama_cpp engine needs llama-cpp-python's server: "
                               f"{problem}")
        settings.setdefault("api_key_env", "none")
        super().__init__(node, topology, "openai", models_dir, **settings)
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.ready_timeout_s = float(ready_timeout_s)
        self.servers = {}
        self.load_s = {}             # model id -> seconds its last server took to start

    async def load(self, model_id, path):
        self.unload(model_id)  # a new file for a model already served: restart
        server = LlamaServer(path, model_id, n_ctx=self.n_ctx, n_threads=self.n_threads,
                             log_path=os.path.join(self.models_dir, f"{model_id}.server.log"))
        # spawned from the event loop's thread, which lives as long as the agent: the
        # kernel's parent-death signal follows the spawning thread, not the process
        server.start()
        try:
            seconds = await server.ready(self.ready_timeout_s)
        except BaseException:
            server.stop(wait=False)
            raise
        self.servers[model_id] = server
        self._llms[model_id] = create_backend(
            "openai", model=model_id, base_url=server.base_url, tier="edge",
            node=self.node.id, store="none", **self.settings)
        self.load_s[model_id] = seconds
        return seconds

    def unload(self, model_id):
        super().unload(model_id)
        server = self.servers.pop(model_id, None)
        if server is not None:
            server.stop(wait=False)

    def close(self):
        for model_id in list(self.servers):
            super().unload(model_id)
            self.servers.pop(model_id).stop()
