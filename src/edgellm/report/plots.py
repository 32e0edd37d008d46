"""The report's two PNG plots: accuracy against the cloud-call share and against
cost, with the random and oracle baselines of each edge model and the test cases as
numbered points (numbers that never overlap; the report's table names each). matplotlib is imported here only, when a report is drawn (Agg canvas, no
pyplot state), so nothing else pays for it."""

import io

import numpy as np

from edgellm.report.labels import place_labels

AXES = {
    "share": ("cloud_share", "Cloud calls (%)", 100.0),
    "cost": ("cost", "Cost (USD)", 1.0),
}


def render(report, axis):
    """PNG bytes of accuracy against ``axis`` ("share" or "cost")."""
    # heavy (matplotlib, about 0.7 s to import): the module docstring
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    field, xlabel, scale = AXES[axis]
    figure = Figure(figsize=(8, 6), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    labels = []
    for curve in report.router_curves:
        order = curve.by_share()
        ax.plot(getattr(curve, field)[order] * scale, curve.accuracy[order] * 100, marker=".",
                linestyle="-", label=curve.name)
    colours = ["tab:green", "tab:olive", "tab:cyan", "tab:purple", "tab:brown", "tab:pink"]
    pairs = [(report.edge_model, report.edge_accuracy, report.random, report.oracle)] + \
        [(b.edge_model, b.edge_accuracy, b.random, b.oracle) for b in report.other_baselines]
    several = len(pairs) > 1
    for k, (edge_model, edge_accuracy, random, oracle) in enumerate(pairs):
        colour = colours[k % len(colours)]
        suffix = f" ({edge_model.rsplit('/', 1)[-1]})" if several else ""
        for curve, style in ((random, dict(color="grey" if not several else colour,
                                           linestyle="--", marker="")),
                             (oracle, dict(color="black" if not several else colour,
                                           linestyle=":", marker="x"))):
            order = curve.by_share()
            label = "random (mean of 10 seeds)" if curve.kind == "random" else "oracle"
            ax.plot(getattr(curve, field)[order] * scale, curve.accuracy[order] * 100,
                    label=label + suffix, **style)
        ax.axhline(edge_accuracy * 100, color=colour, linewidth=0.8, linestyle="-.",
                   label=f"edge: {edge_model}")
    ax.axhline(report.cloud_accuracy * 100, color="tab:red", linewidth=0.8, linestyle="-.",
               label=f"cloud: {report.cloud_model}")
    if report.points:
        x = np.array([getattr(p, field) for p in report.points]) * scale
        y = np.array([p.accuracy for p in report.points]) * 100
        ax.scatter(x, y, s=28, color="tab:blue", zorder=3,
                   label="test cases (numbers: the report's table)")
        labels.append((x, y))
    front = report.front_points()
    if front:
        ax.scatter([getattr(p, field) * scale for p in front], [p.accuracy * 100 for p in front],
                   s=110, facecolors="none", edgecolors="red", linewidths=1.4, zorder=4,
                   label="Pareto front (accuracy, cost, p95 latency)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(f"{report.heading}: accuracy vs "
                 f"{'cloud calls' if axis == 'share' else 'cost'}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for x, y in labels:  # last: the axes' limits are final
        place_labels(ax, x, y, [str(i) for i in range(1, len(x) + 1)])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
