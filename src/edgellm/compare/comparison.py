"""The figures of ``edgellm compare``: for every configuration the runs share and
every metric, each run's value with its bootstrap interval, and each later run's
difference from the first with its interval and p-value.

Runs whose cases answered the same queries share each resample's weights (a paired
bootstrap of the difference), and a 0/1 metric (Accuracy) also gets McNemar's exact
test on the discordant queries. Runs on different queries are resampled
independently (an unpaired difference). Where a case's per-query results are gone,
or the metric is not a mean over queries, the values stand without intervals and a
note says why, once.
"""

import math
from dataclasses import dataclass, field

from edgellm.bench.case_items import CaseCache
from edgellm.bench.rank import latest_rows
from edgellm.compare.matching import differing_settings, match_rows
from edgellm.errors import ConfigError
from edgellm.metrics.catalog import item_definition
from edgellm.stats.bootstrap import (DEFAULT_RESAMPLES, Bootstrap, RatioOfSums, difference,
                                     percentile_interval)
from edgellm.stats.mcnemar import mcnemar_exact


@dataclass
class Delta:
    """One run's metric minus the first run's."""

    value: float
    low: float = None
    high: float = None
    p_value: float = None
    paired: bool = False
    mcnemar: object = None  # McNemar, for 0/1 metrics on the same queries


@dataclass
class MetricRow:
    metric: str
    values: list  # per run: the rank file's value (float) or None
    intervals: list  # per run: Interval or None
    deltas: list  # per later run: Delta or None


@dataclass
class ConfigurationResult:
    label: str
    configuration: dict
    metrics: dict = field(default_factory=dict)  # name -> MetricRow


@dataclass
class Comparison:
    sources: list
    metrics: list
    resamples: int
    seed: int
    level: float
    configurations: list = field(default_factory=list)
    unmatched: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def compare_sources(sources, metrics=None, resamples=DEFAULT_RESAMPLES, seed=0, level=0.95,
                    ignore=()):
    """``ignore``: configuration columns left out of the matching (a seed, to compare
    runs that differ only in it)."""
    known = {c for s in sources for c in s.key_columns}
    for column in ignore:
        if column not in known:
            raise ConfigError("--ignore", f"{column!r} is not a configuration column of these "
                                          f"runs ({', '.join(sorted(known))})")
        for s in sources:
            s.key_columns = [c for c in s.key_columns if c != column]
            s.rows = latest_rows(s.rows, s.key_columns)  # rows that now share a key
    available = list(dict.fromkeys(m for s in sources for m in s.metrics))
    if metrics:
        for name in metrics:
            if name not in available:
                raise ConfigError("--metric", f"{name!r} is not a metric of these runs "
                                              f"({', '.join(available)})")
    else:
        metrics = [m for m in sources[0].shown if all(m in s.metrics for s in sources)] or \
            [m for m in available if all(m in s.metrics for s in sources)]
    matches, unmatched = match_rows(sources)
    result = Comparison(sources, list(metrics), resamples, seed, level, unmatched=unmatched)
    if not matches:
        raise ConfigError(" ".join(s.path for s in sources),
                          "no configuration (algorithm, modules, hyperparameters) is in "
                          "every run: nothing to compare")
    if len(matches) == 1 and all(len(s.rows) == 1 for s in sources):
        columns = list(dict.fromkeys(c for s in sources for c in s.key_columns))
        differ = differing_settings(matches[0].rows, columns)
        if differ:
            result.notes.append("different configurations, compared as given: "
                                + "; ".join(differ))
    cases, why = CaseCache(), {}
    for match in matches:
        configuration = dict(sorted(match.key))
        config = ConfigurationResult(match.label, configuration)
        _compare_rows(config, match.rows, result, cases, why)
        result.configurations.append(config)
    result.notes += [f"{what}: {reason}" for what, reason in why.items()]
    return result


def _compare_rows(config, rows, result, cases, why):
    loaded = []
    for source, row in zip(result.sources, rows):
        case, reason = cases.get(row.get("url"))
        if case is None:
            why[f"{source.label}: no intervals for some configurations"] = \
                f"{reason} (values shown without them)"
        loaded.append(case)
    # runs on the same queries as the first share its weights; each other set of
    # queries gets its own stream
    groups = {}
    for i, case in enumerate(loaded):
        if case is not None:
            group = next((g for g in groups if loaded[g].same_queries(case)), i)
            groups.setdefault(group, []).append(i)
    statistics = {}  # (run, metric) -> Statistic
    for metric in result.metrics:
        for i, case in enumerate(loaded):
            if case is None:
                continue
            statistic, reason = case.statistic(metric)
            if statistic is None:
                why.setdefault(f"{metric}: no intervals", reason)
            else:
                statistics[i, metric] = statistic
    replicates = {}
    for stream, (first, members) in enumerate(groups.items()):
        keys = [(i, m) for i in members for m in result.metrics if (i, m) in statistics]
        if not keys:
            continue
        bootstrap = Bootstrap(loaded[first].n, result.resamples, result.seed, result.level)
        values = bootstrap.replicates([statistics[k] for k in keys], stream=stream)
        replicates.update({k: (v, first) for k, v in zip(keys, values)})
    for metric in result.metrics:
        values = [_number(row.get(metric)) for row in rows]
        intervals = [percentile_interval(replicates[i, metric][0], result.level)
                     if (i, metric) in replicates else None for i in range(len(rows))]
        # each value on its case's per-query results where it has them: once per run
        exact = [_unrounded(statistics[i, metric], v)
                 if v is not None and (i, metric) in statistics else None
                 for i, v in enumerate(values)]
        deltas = [_delta(result.level, metric, values, exact, replicates, statistics, 0, k)
                  for k in range(1, len(rows))]
        config.metrics[metric] = MetricRow(metric, values, intervals, deltas)


def _delta(level, metric, values, exact, replicates, statistics, first, k):
    if values[first] is None or values[k] is None:
        return None
    if exact[first] is not None and exact[k] is not None:
        delta = Delta(exact[k] - exact[first])
    else:  # both as shown: one unrounded value against a rounded one is neither
        delta = Delta(values[k] - values[first])
    if (first, metric) not in replicates or (k, metric) not in replicates:
        return delta
    (a, group_a), (b, group_b) = replicates[first, metric], replicates[k, metric]
    found = difference(a, b, delta.value, level)
    if found.interval is not None:
        delta.low, delta.high = found.interval.low, found.interval.high
    delta.p_value, delta.paired = found.p_value, group_a == group_b
    definition = item_definition(metric)
    sa, sb = statistics[first, metric], statistics[k, metric]
    if delta.paired and definition is not None and definition.binary and \
            isinstance(sa, RatioOfSums) and isinstance(sb, RatioOfSums):
        items_a, items_b = sa.item_values(), sb.item_values()
        if _binary(items_a) and _binary(items_b):
            delta.mcnemar = mcnemar_exact(items_a, items_b)
    return delta


def _unrounded(statistic, shown):
    """The metric on the case's per-query results, where it is the value the leaderboard
    shows rounded: a difference of two rounded values can be off by a unit in its last
    digit (80.62 and 81.88 shown for 80.625 and 81.875: +1.26 for +1.25)."""
    value = statistic.estimate()
    return value if math.isfinite(value) and abs(value - shown) <= 0.005 + 1e-9 * abs(
        shown) else shown


def _binary(values):
    finite = values[values == values]
    return bool(((finite == 0) | (finite == 1)).all())
