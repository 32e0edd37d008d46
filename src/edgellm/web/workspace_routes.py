"""The leaderboard and case pages of a workspace, on any app: ``edgellm monitor``'s
own and, given ``--workspace``, the center's.

``leaderboard`` (the page) and ``api/leaderboard`` (its rows); ``case?id=<case>`` (a
case's page), ``api/case-rounds?id=<case>`` (its round charts' data) and
``case-file?id=<case>&name=<plot>.png``. A case is named by its folder under the
workspace and served only when a rank file lists it; a file only when it is one of
that folder's plots."""

import asyncio
import os

from fastapi.responses import FileResponse

from edgellm.live.service import JSONBody
from edgellm.web.case_view import case_files, case_rounds, case_view
from edgellm.web.leaderboard import Workspace
from edgellm.web.pages import case_page, leaderboard_page


def add_workspace_routes(app, folder, home=None, at_root=False, may_be_new=False):
    """``home``: a link back (the center's page), or None; ``at_root``: the leaderboard
    is the app's home page too; ``may_be_new``: see Workspace."""
    workspace = Workspace(folder, may_be_new)

    def missing(case_id):
        return JSONBody({"error": f"no case {case_id!r} in the rank files of "
                                  f"{workspace.folder}"}, 404)

    async def leaderboard():
        return leaderboard_page(workspace.folder, home)

    for path in ("/leaderboard", "/") if at_root else ("/leaderboard",):
        app.add_api_route(path, leaderboard, include_in_schema=False)

    @app.get("/api/leaderboard")
    async def boards():
        found = await asyncio.to_thread(workspace.boards)
        return JSONBody({"workspace": workspace.folder, "boards": [vars(b) for b in found]})

    @app.get("/case", include_in_schema=False)
    async def case(id: str = ""):
        folder = await asyncio.to_thread(workspace.case_folder, id)
        if folder is None:
            return missing(id)
        row = await asyncio.to_thread(_row_of, workspace, id)
        return case_page(id, row, await asyncio.to_thread(case_view, folder))

    @app.get("/api/case-rounds")
    async def rounds(id: str = ""):
        folder = await asyncio.to_thread(workspace.case_folder, id)
        if folder is None:
            return missing(id)
        found = await asyncio.to_thread(case_rounds, folder)
        return JSONBody(found if found is not None else {"rows": [], "cache": None})

    @app.get("/case-file", include_in_schema=False)
    async def case_file(id: str = "", name: str = ""):
        folder = await asyncio.to_thread(workspace.case_folder, id)
        if folder is None or name not in case_files(folder)[0]:
            return missing(f"{id}/{name}")
        return FileResponse(os.path.join(folder, name), media_type="image/png")

    return workspace


def _row_of(workspace, case_id):
    for board in workspace.boards():
        for row in board.rows:
            if row["case"] == case_id:
                return {**row["cells"], "_simulated": row["simulated"]}
    return {}
