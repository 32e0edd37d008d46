"""The report's two PNG plots: accuracy against the cloud-call share and against
cost. matplotlib is imported here only, when a report is drawn (Agg canvas, no
pyplot state), so nothing else pays for it."""

import io

import numpy as np

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
    for curve in report.router_curves:
        order = curve.by_share()
        ax.plot(getattr(curve, field)[order] * scale, curve.accuracy[order] * 100, marker=".",
                linestyle="-", label=curve.name)
    for curve, style in ((report.random, dict(color="grey", linestyle="--", marker="")),
                         (report.oracle, dict(color="black", linestyle=":", marker="x"))):
        order = curve.by_share()
        label = "random (mean of 10 seeds)" if curve.kind == "random" else "oracle"
        ax.plot(getattr(curve, field)[order] * scale, curve.accuracy[order] * 100,
                label=label, **style)
    ax.axhline(report.edge_accuracy * 100, color="tab:green", linewidth=0.8, linestyle="-.",
               label=f"edge: {report.edge_model}")
    ax.axhline(report.cloud_accuracy * 100, color="tab:red", linewidth=0.8, linestyle="-.",
               label=f"cloud: {report.cloud_model}")
    if report.points:
        x = np.array([getattr(p, field) for p in report.points]) * scale
        y = np.array([p.accuracy for p in report.points]) * 100
        ax.scatter(x, y, s=28, color="tab:blue", zorder=3, label="test cases")
        for xi, yi, point in zip(x, y, report.points):
            ax.annotate(point.label, (xi, yi), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    front = report.front_points()
    if front:
        ax.scatter([getattr(p, field) * scale for p in front], [p.accuracy * 100 for p in front],
                   s=110, facecolors="none", edgecolors="red", linewidths=1.4, zorder=4,
                   label="Pareto front (accuracy, cost, p95 latency)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(f"{report.title}: accuracy vs {'cloud calls' if axis == 'share' else 'cost'}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
