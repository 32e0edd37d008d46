"""The pages' own scripts and style sheet (package data, web/static/) and plotly's
bundled ``plotly.min.js`` (from the installed plotly package), served under
``static/``: nothing comes from a CDN, so the pages work offline."""

import os

from fastapi.responses import FileResponse, Response

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def plotly_js():
    """The path of plotly's bundled plotly.min.js, or None without plotly."""
    try:
        # imported only to find its folder: plotly's Python side is never used here
        import plotly
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    return path if os.path.isfile(path) else None


def add_assets(app):
    own = {name: os.path.join(STATIC, name) for name in os.listdir(STATIC)
           if os.path.splitext(name)[1] in TYPES}  # a fixed list: no path from the URL

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        if name == "plotly.min.js":
            path = plotly_js()
            if path is None:
                return Response("/* plotly is not installed: pip install plotly */",
                                404, media_type=TYPES[".js"])
            return FileResponse(path, media_type=TYPES[".js"],
                                headers={"Cache-Control": "max-age=86400"})
        path = own.get(name)
        if path is None:
            return Response("not found", 404, media_type="text/plain")
        # revalidated each time (ETag): a new version of the page is never stale
        return FileResponse(path, media_type=TYPES[os.path.splitext(name)[1]],
                            headers={"Cache-Control": "no-cache"})
