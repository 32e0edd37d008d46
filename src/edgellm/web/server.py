"""uvicorn for the monitor's apps: quiet, and ending long requests as it stops (a
page keeps its event stream open and an agent its long poll: without that, stopping
would wait for the browser to leave and the poll to time out). What to call is the
app's ``state.on_stop``."""

import asyncio
import contextlib
import socket

import uvicorn

# beyond this, requests still running when the server stops are cancelled: longer than
# an agent's long poll (10 s), which the center has always let finish
GRACE_S = 15


class Server(uvicorn.Server):
    def __init__(self, app, host, port):
        super().__init__(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                        access_log=False, timeout_graceful_shutdown=GRACE_S))
        self.on_stop = list(getattr(getattr(app, "state", None), "on_stop", ()))

    async def shutdown(self, sockets=None):
        for stop in self.on_stop:
            stop()
        await super().shutdown(sockets)


class LoopServer(Server):
    """A server run as one task of a loop with other work (an edge agent's): signals
    stay the process's own, so that SIGTERM stops the agent as before."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    def install_signal_handlers(self):  # the name older uvicorn versions call
        pass


async def start_in_loop(app, host, port):
    """Serve ``app`` from the running loop; returns (server, task, its URL), once it
    listens (port 0: a free port, the one it got in the URL)."""
    server = LoopServer(app, host, port)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # its error, if it failed to start
            raise RuntimeError(f"the page server on {host}:{port} stopped at start")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://{_url_host(host)}:{bound}/"


def _url_host(host):
    """How a browser elsewhere reaches a server bound to ``host``."""
    if host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host else host
