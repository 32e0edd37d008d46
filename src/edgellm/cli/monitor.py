"""``edgellm monitor``: a workspace's leaderboard and case pages, without a live center."""

from edgellm.cli.live import check_port
from edgellm.web.leaderboard import Workspace
from edgellm.web.server import Server
from edgellm.web.workspace_app import workspace_app


def monitor(args):
    Workspace(args.workspace).check()  # a missing folder or no rank file: one line, now
    check_port(args.host, args.port)
    print(f"edgellm monitor: the leaderboard of {args.workspace} at "
          f"http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    Server(workspace_app(args.workspace), args.host, args.port).run()
    return 0
