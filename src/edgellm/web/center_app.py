"""The center's app with its monitor: the center's HTTP API (live/service.py) plus

- ``/``: the center's page (nodes, round charts, cache timeline, event log), updated by
  server-sent events from ``api/monitor/stream`` (``api/monitor/state``: the same
  snapshot as JSON);
- ``/metrics``: Prometheus metrics (web/metrics.py);
- with a workspace, its leaderboard and case pages (web/workspace_routes.py);
- ``static/``: the pages' scripts, style sheet and plotly.min.js.
"""

from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from edgellm.live.service import JSONBody, create_app
from edgellm.web.assets import add_assets
from edgellm.web.center_monitor import CenterMonitor
from edgellm.web.metrics import CenterMetrics
from edgellm.web.pages import center_page
from edgellm.web.workspace_routes import add_workspace_routes


def monitored_app(center, workspace=None):
    app = create_app(center)
    monitor = app.state.monitor = CenterMonitor(center)
    metrics = app.state.metrics = CenterMetrics(center)
    # stopping: end the pages' streams and answer the agents' long polls now
    app.state.on_stop = [monitor.broadcast.close,
                         lambda: [center.wake(node) for node in center.queues]]
    add_assets(app)
    if workspace:
        # the center usually starts before the run that makes its workspace
        add_workspace_routes(app, workspace, home="./", may_be_new=True)

    @app.get("/", include_in_schema=False)
    async def page():
        return center_page(center.topology.name, leaderboard=bool(workspace))

    @app.get("/api/monitor/stream", include_in_schema=False)
    async def stream():
        return monitor.broadcast.response(monitor.snapshot)

    @app.get("/api/monitor/state")
    async def state():
        return JSONBody((await monitor.snapshot())[1])

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
