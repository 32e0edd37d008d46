"""Cost-quality curves of routers over recorded outcomes, and the figures the field
compares routers by (docs/routing-evaluation.md has the definitions and sources).

A router gives each query a score (higher: more in need of the cloud). ``sweep``
evaluates it at RouteLLM's 11 quantile thresholds in one pass over an
``OutcomeSet``: per threshold, the share of queries sent to the cloud, the accuracy
(mean score of the answering tier), the total cost and the p95 end-to-end latency.

- ``apgr``, ``cpt``: RouteLLM's APGR and CPT(x %), as routellm/evals/evaluate.py
  (``generate_results``: ``apgr_metric``, ``pct_call_metric``) computes them from the
  thresholds routellm/evals/benchmarks.py (``MMLU.evaluate``) sweeps.
- ``aiq``: RouterBench's AIQ, as evaluation/AIQ.py (``calc_AIQ`` and
  ``get_non_descreasing_convex_hull_of``) computes it.
- ``random_curve``: the random router averaged over 10 seeds, as RouteLLM averages
  it; ``oracle_curve``: the best accuracy at each cloud budget
  (``MMLU.get_optimal_accuracy``), ``oracle_choice``: the OracleRouter's decisions.
- ``calibrate_threshold``: the threshold giving a target cloud share on train scores.
- ``pareto_front``: the non-dominated points over (quality, cost, p95 latency).

Shares and accuracies are fractions (0-1); costs USD; latencies seconds.
"""

from dataclasses import dataclass

import numpy as np

from edgellm.outcomes import OutcomeSet

NUM_RESULTS = 10  # RouteLLM's --num-results: 10 equal-count bins, 11 thresholds
RANDOM_SEEDS = 10  # RouteLLM's --random-iters
CPT_LEVELS = (0.5, 0.8)


@dataclass
class Curve:
    """A router's points, in sweep order (thresholds ascending, so cloud share
    descending). ``edge_accuracy``/``cloud_accuracy`` are the two models' accuracies on
    the same items (RouteLLM's weak and strong accuracy)."""

    name: str
    threshold: np.ndarray
    cloud_share: np.ndarray
    accuracy: np.ndarray
    cost: np.ndarray  # total USD over the items
    p95_latency: np.ndarray  # NaN where latencies were not recorded
    edge_accuracy: float
    cloud_accuracy: float
    items: int
    kind: str = "router"  # "router" | "random" | "oracle"

    @property
    def pgr(self):
        """Performance gap recovered per point: (acc - edge) / (cloud - edge)."""
        gap = self.cloud_accuracy - self.edge_accuracy
        return (self.accuracy - self.edge_accuracy) / gap if gap else np.full_like(
            self.accuracy, np.nan)

    def by_share(self):
        """The points ordered by cloud share (stable), as RouteLLM sorts them."""
        return np.argsort(self.cloud_share, kind="stable")

    def rows(self):
        """One dict per point (for curves.csv)."""
        pgr = self.pgr
        return [{"curve": self.name, "kind": self.kind, "threshold": float(t),
                 "cloud_share": float(s), "accuracy": float(a), "pgr": float(p),
                 "cost_usd": float(c), "p95_latency_s": float(lat)}
                for t, s, a, p, c, lat in zip(self.threshold, self.cloud_share, self.accuracy,
                                              pgr, self.cost, self.p95_latency)]


def routellm_thresholds(scores, num_results=NUM_RESULTS):
    """The bin edges ``pandas.qcut(scores, num_results, retbins=True)`` returns, as
    RouteLLM's MMLU.evaluate takes them: quantiles at 0, 1/num_results, ..., 1 (linear
    interpolation), each quantile not exactly representable rounded up by one ulp as
    pandas.qcut does. Unlike qcut, tied scores (duplicate edges) are kept, not an error."""
    quantiles = np.linspace(0, 1, num_results + 1)
    np.putmask(quantiles, num_results * quantiles != np.arange(num_results + 1),
               np.nextafter(quantiles, 1))
    return np.quantile(np.asarray(scores, dtype=np.float64), quantiles)


def _p95(values):
    return float(np.percentile(values, 95)) if np.isfinite(values).all() else np.nan


def _point(selection, outcomes: OutcomeSet):
    """(share, accuracy, total cost, p95 latency) of sending ``selection`` to the cloud."""
    score = np.where(selection, outcomes.cloud_score, outcomes.edge_score)
    cost = np.where(selection, outcomes.cloud_cost, outcomes.edge_cost)
    latency = np.where(selection, outcomes.cloud_latency, outcomes.edge_latency)
    return float(selection.mean()), float(score.mean()), float(cost.sum()), _p95(latency)


def sweep(scores, outcomes: OutcomeSet, name="router", thresholds=None, kind="router"):
    """The router's curve over ``outcomes``. At threshold i of n+1 (ascending) a query
    goes to the cloud when its score is >= the threshold, and at the last one (the
    maximum score) when > it, so the points run from every query to none on the cloud,
    exactly as RouteLLM's MMLU.evaluate selects them."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(outcomes),):
        raise ValueError(f"{name}: {scores.size} scores for {len(outcomes)} items")
    if not np.isfinite(scores).all():
        raise ValueError(f"{name}: scores must be finite numbers")
    thresholds = routellm_thresholds(scores) if thresholds is None else np.asarray(thresholds)
    last = len(thresholds) - 1
    points = [_point(scores >= t if i != last else scores > t, outcomes)
              for i, t in enumerate(thresholds)]
    share, accuracy, cost, latency = (np.array(c, dtype=np.float64) for c in zip(*points))
    return Curve(name, np.asarray(thresholds, dtype=np.float64), share, accuracy, cost, latency,
                 outcomes.edge_accuracy, outcomes.cloud_accuracy, len(outcomes), kind)


def apgr(curve):
    """Average performance gap recovered, as RouteLLM's apgr_metric: the trapezoid
    area under accuracy over the cloud share (points sorted by share), minus the same
    area of the edge model's constant accuracy, over that of the cloud's minus the
    edge's. NaN when both models score the same."""
    order = curve.by_share()
    share, accuracy = curve.cloud_share[order], curve.accuracy[order]
    auc = np.trapezoid(accuracy, share)
    weak = np.trapezoid(np.full(len(share), curve.edge_accuracy), share)
    strong = np.trapezoid(np.full(len(share), curve.cloud_accuracy), share)
    return float((auc - weak) / (strong - weak)) if strong != weak else float("nan")


def cpt(curve, level):
    """Call-performance threshold CPT(level): the cloud share at which the accuracy
    recovers ``level`` (e.g. 0.5) of the gap between the edge and the cloud model, as
    RouteLLM's pct_call_metric: ``np.interp`` of the target accuracy over the points'
    accuracies, sorted by share. Like RouteLLM, this presumes accuracy rises with the
    share; see docs/routing-evaluation.md for a curve that dips."""
    order = curve.by_share()
    target = level * (curve.cloud_accuracy - curve.edge_accuracy) + curve.edge_accuracy
    return float(np.interp(target, curve.accuracy[order], curve.cloud_share[order]))


def nondecreasing_convex_hull(cost, quality):
    """RouterBench's non-decreasing convex hull of (cost, quality) points
    (get_non_descreasing_convex_hull_of): the upper convex hull from the cheapest
    point up to its highest quality (its vertices, by cost).
    Several points at the cheapest cost: the best of them (RouterBench takes whichever
    its sort puts first). Points below the hull are left out; they add no area."""
    x, y = np.asarray(cost, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    order = np.lexsort((-y, x))  # by cost, the best quality first among equal costs
    hull = []
    last_x = None
    for i in order:
        if x[i] == last_x:  # a worse point at a cost already seen
            continue
        last_x = x[i]
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle point when it lies on or below the chord to the new one
            if (y2 - y1) * (x[i] - x1) <= (y[i] - y1) * (x2 - x1):
                hull.pop()
            else:
                break
        hull.append((x[i], y[i]))
    points = np.array(hull)
    # up to the highest quality; RouterBench keeps a flat stretch at the top
    peak = int(np.flatnonzero(points[:, 1] == points[:, 1].max())[-1])
    return points[:peak + 1]


def aiq(curve, max_cost=None):
    """RouterBench's AIQ of the curve's (cost, accuracy) points, as calc_AIQ computes
    it: the area under the non-decreasing convex hull, extended flat to ``max_cost``,
    divided by ``max_cost``. ``max_cost`` defaults to the hull's own last cost (calc_AIQ
    of a list of one router); calc_AIQ of several routers uses the largest cost among
    their hulls. NaN when the costs are all zero (nothing recorded)."""
    hull = nondecreasing_convex_hull(curve.cost, curve.accuracy)
    x_max = float(hull[-1, 0]) if max_cost is None else float(max_cost)
    if not x_max > 0:
        return float("nan")
    hull = np.vstack([hull, [x_max, hull[-1, 1]]])
    return float(np.trapezoid(hull[:, 1], hull[:, 0]) / x_max)


def aiq_cost_range(outcomes: OutcomeSet):
    """The cost AIQ is normalised by on an outcome set: the total cost of answering
    every query on the costlier tier, the largest cost any router's sweep reaches (its
    first and last points are all-cloud and all-edge), and what calc_AIQ would take
    over a list of routers that includes the random router or CloudOnly."""
    return float(max(outcomes.cloud_cost.sum(), outcomes.edge_cost.sum()))


def random_curve(outcomes: OutcomeSet, seeds=RANDOM_SEEDS, name="random"):
    """The random router as RouteLLM evaluates it: uniform random scores per query,
    swept at the quantile thresholds, once per seed (0 .. seeds-1), and the points of
    equal cloud share averaged over the seeds (RouteLLM groups by strong_percentage)."""
    curves = [sweep(np.random.default_rng(seed).random(len(outcomes)), outcomes)
              for seed in range(seeds)]
    share = np.concatenate([c.cloud_share for c in curves])
    columns = [np.concatenate([getattr(c, f) for c in curves])
               for f in ("threshold", "accuracy", "cost", "p95_latency")]
    shares, group = np.unique(share, return_inverse=True)
    counts = np.bincount(group)
    threshold, accuracy, cost, latency = (np.bincount(group, weights=col) / counts
                                          for col in columns)
    order = np.argsort(-shares, kind="stable")  # sweep order: share descending
    return Curve(name, threshold[order], shares[order], accuracy[order], cost[order],
                 latency[order], outcomes.edge_accuracy, outcomes.cloud_accuracy,
                 len(outcomes), "random")


def oracle_choice(outcomes: OutcomeSet):
    """The OracleRouter's decisions: the cloud only where its score is strictly higher
    than the edge's; ties (both right, both wrong, equal scores) stay on the edge."""
    return outcomes.cloud_score > outcomes.edge_score


def oracle_curve(outcomes: OutcomeSet, shares=None, name="oracle"):
    """The best accuracy reachable with at most each share of the queries on the cloud
    (RouteLLM's get_optimal_accuracy, which plots it at 0, 10, ..., 100 %): the queries
    the cloud improves most go first (for correctness: those the edge gets wrong and
    the cloud right), a fractional number of queries counting pro rata; past the
    queries the cloud improves, nothing more is sent. Drawn at RouteLLM's budgets 0, 10,
    ..., 100 % plus the knee (the share of queries the cloud improves), where the curve
    turns flat. Cost and latency are those of that selection (the p95 with the query
    count rounded)."""
    gain = outcomes.cloud_score - outcomes.edge_score
    extra = outcomes.cloud_cost - outcomes.edge_cost
    order = np.lexsort((extra, -gain))  # most gain first; the cheaper among equal gains
    better = int((gain > 0).sum())
    n = len(outcomes)
    if shares is None:  # RouteLLM's budgets, and the knee, so that the drawn curve is exact
        shares = np.union1d(np.arange(NUM_RESULTS + 1) / NUM_RESULTS, [better / n])[::-1]
    cum_gain = np.concatenate([[0.0], np.cumsum(gain[order][:better])])
    cum_extra = np.concatenate([[0.0], np.cumsum(extra[order][:better])])
    ranks = np.arange(better + 1)
    accuracy, cost, latency = [], [], []
    for share in shares:
        calls = min(share * n, better)
        accuracy.append(outcomes.edge_accuracy + np.interp(calls, ranks, cum_gain) / n)
        cost.append(outcomes.edge_cost.sum() + np.interp(calls, ranks, cum_extra))
        selection = np.zeros(n, dtype=bool)
        selection[order[:int(round(calls))]] = True
        latency.append(_point(selection, outcomes)[3])
    nan = np.full(len(shares), np.nan)
    return Curve(name, nan, np.asarray(shares, dtype=np.float64), np.array(accuracy),
                 np.array(cost), np.array(latency), outcomes.edge_accuracy,
                 outcomes.cloud_accuracy, n, "oracle")


def curve_metrics(curve, max_cost=None):
    """{"APGR", "CPT(50%)", "CPT(80%)", "AIQ"} of a curve; CPTs as fractions."""
    metrics = {"APGR": apgr(curve)}
    for level in CPT_LEVELS:
        metrics[f"CPT({level:.0%})"] = cpt(curve, level)
    metrics["AIQ"] = aiq(curve, max_cost)
    return metrics


@dataclass
class Calibration:
    target_share: float
    threshold: float
    train_share: float  # the share the threshold reaches on the train scores
    test_share: float = float("nan")  # ... and on the test scores, when given


def calibrate_threshold(train_scores, target_share, test_scores=None):
    """The threshold (cloud when score >= threshold) that sends ``target_share`` of the
    train queries to the cloud: the score of the k-th highest train query, k = the
    target share of the queries, rounded (tied scores can only send more); above every
    score for a share of 0. Reports the share reached on train and, given test scores,
    on test."""
    if not 0.0 <= float(target_share) <= 1.0:
        raise ValueError(f"target cloud share must be between 0 and 1, got {target_share}")
    train = np.sort(np.asarray(train_scores, dtype=np.float64))[::-1]
    if train.size == 0:
        raise ValueError("no train scores to calibrate on")
    k = int(round(float(target_share) * train.size))
    threshold = float(np.nextafter(train[0], np.inf)) if k == 0 else float(train[k - 1])
    calibration = Calibration(float(target_share), threshold, float((train >= threshold).mean()))
    if test_scores is not None:
        calibration.test_share = float((np.asarray(test_scores) >= threshold).mean())
    return calibration


def pareto_front(quality, cost, latency=None):
    """Mask of the points no other point dominates (quality at least as high, cost and
    latency at least as low, one of them strictly). Latency counts only when every
    point has one."""
    objectives = [-np.asarray(quality, dtype=np.float64), np.asarray(cost, dtype=np.float64)]
    if latency is not None and np.isfinite(np.asarray(latency, dtype=np.float64)).all():
        objectives.append(np.asarray(latency, dtype=np.float64))
    points = np.column_stack(objectives)  # all to be minimised
    front = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        dominated = (points <= p).all(axis=1) & (points < p).any(axis=1)
        front[i] = not dominated.any()
    return front
