"""Bootstrap intervals and paired tests over per-item values, vectorised with numpy.

The Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy et al. 2012, used for
online experiments at scale): in each resample every item gets a weight drawn from
Poisson(1), its number of copies, instead of the joint multinomial counts of
drawing n items with replacement. For the statistics here (weighted means, ratios
of sums, totals, weighted percentiles) its intervals agree with the classical
bootstrap's from a few dozen items on (tests/test_compare_stats.py checks both),
and it is several times faster: one random byte per item and resample, turned
into a count by comparing it with the Poisson CDF, and every mean-type
statistic of every run comes out of one matrix product ``weights @ columns`` per
chunk of resamples (memory stays bounded: chunks of 8 million weights).

Two runs on the same items share the weights of each resample (a paired
bootstrap): the difference of their statistics is resampled as a whole, which is
what tells a real difference from the noise of the items.

Seeds are fixed (numpy ``Generator``, PCG64): the same inputs give the same
intervals on every machine.
"""

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95
_BLOCK = 1_000_000  # weights drawn at a time: the uint8 passes stay in the CPU cache
_CHUNK = 8_000_000  # weights per matrix product (32 MB of float32)
_RUN = 64  # items per block of a weighted percentile's running sum
# Poisson(1) at 8-bit resolution: P(count = 0..5) = (94, 95, 46, 16, 4, 1) / 256, the
# Poisson probabilities (.368 .368 .184 .061 .015 .003) rounded so that the mean and
# the variance stay exactly 1 (what a bootstrap's weights need; Praestgaard & Wellner
# 1993). count >= k  <=>  u >= _THRESHOLDS[k - 1], u uniform on 0..255.
_THRESHOLDS = np.array([94, 189, 235, 251, 255], dtype=np.uint8)


def poisson_weights(rng, rows, n, out=None):
    """A (rows, n) float32 array of Poisson(1) counts from ``rng`` (a Generator)."""
    if out is None:
        out = np.empty((rows, n), dtype=np.float32)
    block = max(1, _BLOCK // n)
    above = np.empty((min(block, rows), n), dtype=bool)
    for start in range(0, rows, block):
        m = min(block, rows - start)
        u = rng.bit_generator.random_raw(-(-m * n // 8)).view(np.uint8)[:m * n].reshape(m, n)
        counts = np.greater_equal(u, _THRESHOLDS[0]).view(np.uint8)
        for threshold in _THRESHOLDS[1:]:
            np.greater_equal(u, threshold, out=above[:m])
            counts += above[:m].view(np.uint8)
        np.copyto(out[start:start + m], counts, casting="unsafe")
    return out


# -- statistics: what one run's per-item values come to ----------------------------

class Statistic:
    """A statistic of weighted items. ``columns``: the n-vectors its value is a
    function of through weighted sums (``weights @ column``); ``finish(sums)`` turns
    their sums (one row per resample) into values. Percentiles, which need the
    weights themselves, override ``from_weights``."""

    columns = ()

    def finish(self, sums):
        raise NotImplementedError

    def from_weights(self, weights, sums):
        """Values for a chunk of resamples (``weights`` (m, n), ``sums`` of this
        statistic's columns (m, k))."""
        return self.finish(sums)

    def estimate(self):
        """The value on the items as they are (every weight 1)."""
        ones = np.ones((1, self.n), dtype=np.float64)
        sums = np.array([[float(np.sum(c, dtype=np.float64)) for c in self.columns]])
        return float(self.from_weights(ones, sums)[0])


def _column(values):
    return np.asarray(values, dtype=np.float64).reshape(-1)


class RatioOfSums(Statistic):
    """``scale * sum(w * numerator) / sum(w * denominator)``. A mean is the ratio of
    the values (0 where an item does not count) to 1/0 flags; a throughput the ratio
    of what was done to the time it took; mean of ratios it is not."""

    def __init__(self, numerator, denominator, scale=1.0):
        self.numerator, self.denominator = _column(numerator), _column(denominator)
        self.columns = (self.numerator, self.denominator)
        self.n, self.scale = self.numerator.size, scale

    def finish(self, sums):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sums[:, 1] != 0, self.scale * sums[:, 0] / sums[:, 1], np.nan)

    def item_values(self):
        """Each item's own value (NaN where it does not count): a mean's values."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.denominator != 0, self.numerator / self.denominator, np.nan)


def mean_of(values, scale=1.0):
    """The mean of the finite values (NaN: the item does not count) as a ratio."""
    values = _column(values)
    counted = np.isfinite(values)
    return RatioOfSums(np.where(counted, values, 0.0), counted.astype(np.float64), scale)


class MeanOfRatios(Statistic):
    """The unweighted mean of several ratios of sums (Accuracy over task types: the
    mean of each type's mean score, so every type weighs the same)."""

    def __init__(self, parts, scale=1.0):
        self.parts, self.scale = list(parts), scale
        self.n = self.parts[0].n
        self.columns = tuple(c for p in self.parts for c in p.columns)

    def finish(self, sums):
        values = [p.finish(sums[:, 2 * i:2 * i + 2]) for i, p in enumerate(self.parts)]
        return self.scale * np.mean(values, axis=0)


class Total(Statistic):
    """``scale * sum(w * values)``: a count or a cost over the items."""

    def __init__(self, values, scale=1.0):
        self.values = _column(values)
        self.columns = (self.values,)
        self.n, self.scale = self.values.size, scale

    def finish(self, sums):
        return self.scale * sums[:, 0]


class Percentile(Statistic):
    """The q-th percentile of the finite values, as numpy computes it (linear
    interpolation between order statistics), over each resample: an item of weight
    k stands for k copies."""

    def __init__(self, values, q):
        values = _column(values)
        self.n, self.q = values.size, q
        kept = np.flatnonzero(np.isfinite(values))
        order = np.argsort(values[kept], kind="stable")
        self.positions = kept[order]  # items in the order of their values
        self.sorted = values[self.positions]

    def from_weights(self, weights, sums):
        m, rows = self.sorted.size, weights.shape[0]
        out = np.full(rows, np.nan)
        if m == 0:
            return out
        ordered = np.take(weights, self.positions, axis=1)  # (rows, m), by value
        # a running sum over every weight would be the slow part (numpy's cumsum
        # does not vectorise): sum blocks of _RUN items, find the block where the
        # k-th copy falls, and run the sum inside that block only
        starts = np.arange(0, m, _RUN)
        before = np.cumsum(np.add.reduceat(ordered, starts, axis=1, dtype=np.float64), axis=1)
        total = before[:, -1]
        h = (total - 1) * (self.q / 100.0)
        low = np.floor(h)
        first = self._position(ordered, starts, before, low)
        second = self._position(ordered, starts, before, np.minimum(low + 1, total - 1))
        value = self.sorted[first] + (h - low) * (self.sorted[second] - self.sorted[first])
        return np.where(total > 0, value, np.nan)

    @staticmethod
    def _position(ordered, starts, before, k):
        """Per row, the index of the (k+1)-th smallest copy: the first item where the
        running weight exceeds k."""
        rows, m = ordered.shape
        block = np.minimum((before <= k[:, None]).sum(axis=1), len(starts) - 1)
        done = np.where(block > 0, before[np.arange(rows), block - 1], 0.0)
        index = starts[block][:, None] + np.arange(_RUN)
        inside = np.take_along_axis(ordered, np.minimum(index, m - 1), axis=1)
        inside[index >= m] = 0.0
        running = done[:, None] + np.cumsum(inside, axis=1, dtype=np.float64)
        offset = np.minimum((running <= k[:, None]).sum(axis=1), _RUN - 1)
        return np.minimum(starts[block] + offset, m - 1)


# -- the bootstrap ------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    @property
    def half_width(self):
        return (self.high - self.low) / 2.0


@dataclass(frozen=True)
class Difference:
    """``second - first`` with its interval and two-sided bootstrap p-value."""

    value: float
    interval: Interval
    p_value: float


class Bootstrap:
    """Resamples of ``n`` items (``resamples`` of them, seeded) shared by every
    statistic given to ``replicates``: statistics of two runs on the same items are
    paired."""

    def __init__(self, n, resamples=DEFAULT_RESAMPLES, seed=0, level=DEFAULT_LEVEL):
        if n < 1 or resamples < 1:
            raise ValueError("a bootstrap needs at least one item and one resample")
        self.n, self.resamples, self.seed, self.level = n, int(resamples), seed, level

    def weight_chunks(self, stream=0):
        """(start, weights) chunks of the resamples; ``stream`` > 0: an independent
        set (for runs on different items)."""
        rng = np.random.Generator(np.random.PCG64([self.seed, stream]))
        rows = max(1, min(self.resamples, _CHUNK // self.n))
        buffer = np.empty((rows, self.n), dtype=np.float32)
        for start in range(0, self.resamples, rows):
            m = min(rows, self.resamples - start)
            yield start, poisson_weights(rng, m, self.n, buffer[:m])

    def replicates(self, statistics, stream=0):
        """One array of ``resamples`` values per statistic."""
        for s in statistics:
            if s.n != self.n:
                raise ValueError(f"a statistic over {s.n} items in a bootstrap of {self.n}")
        columns = [c for s in statistics for c in s.columns]
        matrix = np.stack(columns, axis=1).astype(np.float32) if columns else None
        out = [np.empty(self.resamples) for _ in statistics]
        for start, weights in self.weight_chunks(stream):
            sums = (weights @ matrix).astype(np.float64) if matrix is not None else None
            offset = 0
            for s, values in zip(statistics, out):
                k = len(s.columns)
                part = sums[:, offset:offset + k] if k else None
                values[start:start + weights.shape[0]] = s.from_weights(weights, part)
                offset += k
        return out

    def interval(self, replicates):
        return percentile_interval(replicates, self.level)

    def difference(self, first, second, observed):
        return difference(first, second, observed, self.level)


def percentile_interval(replicates, level=DEFAULT_LEVEL):
    """The percentile interval of a statistic's replicates at ``level``; None when
    most resamples have no value."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0 or finite.size < 0.5 * replicates.size:
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(low), float(high))


def difference(first, second, observed, level=DEFAULT_LEVEL):
    """``second - first`` from their replicates (paired when drawn with the same
    weights); ``observed``: the difference on the items as they are. The p-value is
    two-sided: twice the share of resampled differences on the far side of 0."""
    delta = second - first
    interval = percentile_interval(delta, level)
    finite = delta[np.isfinite(delta)]
    if interval is None:
        return Difference(observed, None, math.nan)
    below = (1 + int(np.count_nonzero(finite <= 0))) / (finite.size + 1)
    above = (1 + int(np.count_nonzero(finite >= 0))) / (finite.size + 1)
    return Difference(observed, interval, min(1.0, 2.0 * min(below, above)))
