"""The fleet's round log: one row per (round, node), the cloud included, written to
rounds.csv in the test case's folder, and its three plots (docs/metrics.md, "Fleet
metrics", describes both).

Columns: round, node, tasks, queue_len (most tasks waiting or running at a dispatch),
e2e_mean_s, e2e_p95_s, ttft_mean_s, cache (the models loaded at round start, "a;b"),
caching_round (1 where the round began with a model-caching round). Plots are drawn on
matplotlib's Agg canvas without pyplot, and stay readable and fast for 100 nodes x
5000 rounds: at most ``MAX_NODE_BANDS`` node bands, the other nodes summed into one,
rounds averaged in bins beyond ``MAX_AREA_POINTS``.
"""

import io
import os
import re

import numpy as np
import pandas as pd

from edgellm.files import write_bytes, write_text

COLUMNS = ("round", "node", "tasks", "queue_len", "e2e_mean_s", "e2e_p95_s", "ttft_mean_s",
           "cache", "caching_round")
CLOUD = "cloud"
CSV = "rounds.csv"
PLOTS = ("latency_per_round.png", "tasks_per_node.png", "cache_contents.png")
MAX_NODE_BANDS = 10  # edge nodes drawn one by one in tasks_per_node.png; the rest summed
MAX_AREA_POINTS = 500  # more rounds than this: tasks_per_node.png averages bins of rounds
FEW_CACHING_ROUNDS = 40  # more than this: caching rounds marked by ticks, not full lines


def round_frame(rows_or_csv):
    """The round log as a DataFrame, columns in ``COLUMNS`` order (extra ones after),
    from row dicts, a DataFrame or the path of a rounds.csv."""
    if isinstance(rows_or_csv, (str, os.PathLike)):
        frame = pd.read_csv(rows_or_csv, dtype={"node": str, "cache": str})
    else:
        frame = pd.DataFrame(rows_or_csv)
        if frame.empty and not len(frame.columns):
            frame = pd.DataFrame(columns=list(COLUMNS))
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"round log rows lack the column(s) {', '.join(missing)}")
    frame = frame[list(COLUMNS) + [c for c in frame.columns if c not in COLUMNS]].copy()
    frame["cache"] = frame["cache"].fillna("").astype(str)  # "" (no model) reads as NaN
    return frame


def write_round_log(rows, folder):
    """Write the rows to ``folder``/rounds.csv (atomically); returns its path."""
    path = os.path.join(folder, CSV)
    frame = round_frame(rows)
    # 0.1 ms is finer than any timing here, and short numbers format faster
    seconds = [c for c in frame.columns if c.endswith("_s")]
    frame[seconds] = frame[seconds].round(4)
    write_text(path, frame.to_csv(index=False))
    return path


def plot_rounds(rows_or_csv, folder, caption=None):
    """Draw latency_per_round.png, tasks_per_node.png and cache_contents.png into
    ``folder`` from the round log (rows or a rounds.csv); returns their paths.
    ``caption``: a line above each plot naming the case (offloader, caching policy,
    topology), so that a plot found on its own says what it shows."""
    # heavy (matplotlib, about 0.7 s to import): only a finished fleet case plots
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = round_frame(rows_or_csv)
    paths = []
    for name, draw in zip(PLOTS, (_latency, _tasks_per_node, _cache_contents)):
        figure = Figure(figsize=(10, 5), dpi=100)
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        if frame.empty:
            ax.text(0.5, 0.5, "no rounds", ha="center", va="center", transform=ax.transAxes)
        else:
            draw(frame, ax, figure)
        ax.set_xlabel("round")
        if caption:
            figure.suptitle(caption, fontsize=9)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        path = os.path.join(folder, name)
        write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def latency_per_round(frame):
    """Per round: ``mean`` E2E over every task (node means weighted by their tasks)
    and ``worst_p95``, the largest node p95 (the p95 over all of a round's tasks lies
    between its nodes' p95s; the log keeps no per-task latencies)."""
    served = frame[frame["tasks"] > 0]
    per_round = served.assign(weighted=served["e2e_mean_s"] * served["tasks"]).groupby("round")
    return pd.DataFrame({"mean": per_round["weighted"].sum() / per_round["tasks"].sum(),
                         "worst_p95": per_round["e2e_p95_s"].max()})


def task_bands(frame, max_bands=MAX_NODE_BANDS):
    """Tasks per round (rows) and band (columns): the ``max_bands - 1`` busiest edge
    nodes one each when there are more than ``max_bands``, every node otherwise (in
    the log's order), then "<k> other nodes" summed, then the cloud."""
    counts = (frame.groupby(["round", "node"])["tasks"].sum().unstack(fill_value=0)
              .reindex(columns=pd.unique(frame["node"])))
    nodes = [n for n in counts.columns if n != CLOUD]
    shown = nodes
    if len(nodes) > max_bands:
        busiest = counts[nodes].sum().sort_values(ascending=False, kind="stable")
        kept = set(busiest.index[:max_bands - 1])
        shown = [n for n in nodes if n in kept]
    bands = counts[shown].copy()
    rest = [n for n in nodes if n not in set(shown)]
    if rest:
        bands[f"{len(rest)} other nodes"] = counts[rest].sum(axis=1)
    if CLOUD in counts.columns:
        bands[CLOUD] = counts[CLOUD]
    return bands


def cache_counts(frame):
    """Edge nodes holding each model (rows, sorted) at the start of each round
    (columns: every round number from the first to the last; one missing from the
    log counts 0)."""
    edge = frame[frame["node"] != CLOUD]
    first = int(frame["round"].min()) if len(frame) else 0
    rounds = np.arange(first, int(frame["round"].max()) + 1) if len(frame) else np.arange(0)
    # a fleet's caches repeat from round to round: split each distinct one once
    codes, caches = pd.factorize(edge["cache"])
    held = [set(filter(None, cache.split(";"))) for cache in caches]
    models = sorted(set().union(*held), key=_natural)
    row_round = edge["round"].to_numpy(dtype=np.int64) - first
    counts = np.empty((len(models), rounds.size), dtype=np.int64)
    for i, model in enumerate(models):
        has = np.array([model in h for h in held], dtype=bool)
        counts[i] = np.bincount(row_round[has[codes]], minlength=rounds.size)
    return pd.DataFrame(counts, index=pd.Index(models, name="model"),
                        columns=pd.Index(rounds, name="round"))


def _natural(name):
    """Sort key putting "m2" before "m10"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name)]


def _latency(frame, ax, figure):
    latency = latency_per_round(frame)
    ax.plot(latency.index, latency["mean"].to_numpy(), label="mean E2E (all tasks)",
            linewidth=1)
    ax.plot(latency.index, latency["worst_p95"].to_numpy(), label="p95 E2E (worst node)",
            linewidth=1)
    caching = np.unique(frame.loc[frame["caching_round"] == 1, "round"].to_numpy())
    if caching.size:  # one collection, however many caching rounds
        top = 1.0 if caching.size <= FEW_CACHING_ROUNDS else 0.03
        ax.vlines(caching, 0, top, transform=ax.get_xaxis_transform(), colors="grey",
                  linestyles=":" if top == 1.0 else "-", linewidth=0.8, label="caching round")
    ax.set_ylabel("E2E latency (s)")
    ax.set_title("Latency per round")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _tasks_per_node(frame, ax, figure):
    bands = task_bands(frame)
    ylabel = "tasks"
    if len(bands) > MAX_AREA_POINTS:  # thousands of noisy rounds: averages stay readable
        width = -(-len(bands) // MAX_AREA_POINTS)
        bins = bands.index.to_numpy() // width * width
        bands = bands.groupby(bins).mean()
        ylabel = f"tasks (mean over {width}-round bins)"
    ax.stackplot(bands.index.to_numpy(), bands.to_numpy().T, labels=list(bands.columns),
                 linewidth=0)
    ax.set_ylabel(ylabel)
    ax.set_title("Tasks per node per round")
    ax.margins(x=0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _cache_contents(frame, ax, figure):
    from matplotlib import colormaps  # heavy: as in plot_rounds
    from matplotlib.ticker import MaxNLocator

    counts = cache_counts(frame)
    if counts.empty:
        ax.text(0.5, 0.5, "no models loaded", ha="center", va="center",
                transform=ax.transAxes)
        return
    n_nodes = frame.loc[frame["node"] != CLOUD, "node"].nunique()
    rounds = counts.columns.to_numpy()
    # one colour per node count (0..n), centred on the integers
    cmap = colormaps["viridis"].resampled(min(n_nodes + 1, 256))
    image = ax.imshow(counts.to_numpy(), aspect="auto", interpolation="nearest", cmap=cmap,
                      vmin=-0.5, vmax=n_nodes + 0.5,
                      extent=(rounds[0] - 0.5, rounds[-1] + 0.5, len(counts) - 0.5, -0.5))
    ax.set_yticks(range(len(counts)))
    ax.set_yticklabels(counts.index, fontsize=7 if len(counts) > 12 else 9)
    ax.set_title(f"Cache contents: nodes holding each model (of {n_nodes})")
    bar = figure.colorbar(image, ax=ax, label="nodes holding the model")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
