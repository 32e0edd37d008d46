"""``edgellm monitor``'s app: a workspace's leaderboard (at ``/`` too) and case pages,
with no live center (web/workspace_routes.py)."""

from fastapi import FastAPI

from edgellm.live.service import JSONBody
from edgellm.web.assets import add_assets
from edgellm.web.workspace_routes import add_workspace_routes


def workspace_app(folder):
    app = FastAPI(title="edgellm monitor", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=JSONBody)
    add_assets(app)
    add_workspace_routes(app, folder, at_root=True)
    return app
