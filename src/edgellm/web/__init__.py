"""The monitor: the center's and each edge node's pages, the leaderboard in the
browser and the center's Prometheus metrics (docs/monitor.md). Served by the live
center's app (center_app.py), each agent's process (edge_page.py) and ``edgellm
monitor`` (workspace_app.py); pushed to the pages by server-sent events."""
