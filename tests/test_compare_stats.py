"""The bootstrap and McNemar's test: against slow reference computations, the
classical bootstrap and a textbook table."""

import math

import numpy as np
import pytest

from edgellm.stats.bootstrap import (
    Bootstrap, MeanOfRatios, Percentile, RatioOfSums, Total, mean_of, poisson_weights)
from edgellm.stats.mcnemar import exact_p_value, mcnemar_exact


def test_weights_are_poisson_like_counts_with_mean_and_variance_one():
    rng = np.random.Generator(np.random.PCG64(3))
    w = poisson_weights(rng, 400, 5000)
    assert w.dtype == np.float32 and set(np.unique(w)) <= {0, 1, 2, 3, 4, 5}
    assert abs(w.mean() - 1) < 0.005 and abs(w.var() - 1) < 0.01
    shares = np.bincount(w.astype(int).ravel(), minlength=6) / w.size
    poisson = [math.exp(-1) / math.factorial(k) for k in range(4)]
    assert np.allclose(shares[:4], poisson, atol=0.006)


def _slow(statistic_of, values, weights):
    """Reference: each resample written out copy by copy, the statistic by hand."""
    out = []
    for row in weights:
        copies = np.repeat(np.arange(len(row)), row.astype(int))
        out.append(statistic_of(values, copies))
    return np.array(out)


def _mean(values, copies):
    kept = [values[i] for i in copies if not math.isnan(values[i])]
    return sum(kept) / len(kept) if kept else math.nan


def _percentile95(values, copies):
    kept = sorted(values[i] for i in copies if not math.isnan(values[i]))
    if not kept:
        return math.nan
    h = (len(kept) - 1) * 0.95
    low = math.floor(h)
    high = min(low + 1, len(kept) - 1)
    return kept[low] + (h - low) * (kept[high] - kept[low])


@pytest.mark.parametrize("n", [1, 7, 300])
def test_vectorised_statistics_equal_a_python_loop_over_the_same_resamples(n):
    rng = np.random.default_rng(n)
    latency = rng.gamma(2.0, 0.3, n)
    latency[rng.random(n) < 0.2] = np.nan  # queries that do not count
    correct = (rng.random(n) < 0.7).astype(float)
    tokens = rng.integers(1, 50, n).astype(float)
    cost = rng.random(n) * 1e-4
    bootstrap = Bootstrap(n, resamples=150, seed=5)
    statistics = [mean_of(latency), Percentile(latency, 95), mean_of(correct, 100.0),
                  RatioOfSums(tokens, np.nan_to_num(latency)), Total(cost),
                  MeanOfRatios([mean_of(correct), mean_of(latency)], scale=2.0)]
    fast = bootstrap.replicates(statistics)
    weights = np.concatenate([w.copy() for _, w in bootstrap.weight_chunks()])
    assert np.allclose(fast[0], _slow(_mean, latency, weights), rtol=1e-5, equal_nan=True)
    assert np.allclose(fast[1], _slow(_percentile95, latency, weights), rtol=1e-9,
                       equal_nan=True)
    assert np.allclose(fast[2], 100 * _slow(_mean, correct, weights), rtol=1e-5,
                       equal_nan=True)

    def ratio(values, copies):
        spent = sum(np.nan_to_num(latency)[i] for i in copies)
        return sum(tokens[i] for i in copies) / spent if spent else math.nan
    assert np.allclose(fast[3], _slow(ratio, tokens, weights), rtol=1e-5, equal_nan=True)
    assert np.allclose(fast[4], _slow(lambda v, c: sum(v[i] for i in c), cost, weights),
                       rtol=1e-5)
    both = 2 * (_slow(_mean, correct, weights) + _slow(_mean, latency, weights)) / 2
    assert np.allclose(fast[5], both, rtol=1e-5, equal_nan=True)
    # with every weight 1, each statistic is the plain figure
    assert statistics[1].estimate() == pytest.approx(
        np.nanpercentile(latency, 95) if np.isfinite(latency).any() else math.nan, nan_ok=True)


def _classical(values, statistic, resamples, seed):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(values), (resamples, len(values)))
    return statistic(values[index])


def test_intervals_agree_with_the_classical_bootstrap():
    rng = np.random.default_rng(0)
    n = 2000
    correct = (rng.random(n) < 0.8).astype(float)
    latency = rng.lognormal(-1.0, 0.6, n)
    bootstrap = Bootstrap(n, resamples=4000, seed=1)
    mean_reps, p95_reps = bootstrap.replicates([mean_of(correct, 100.0), Percentile(latency, 95)])
    for ours, theirs in ((bootstrap.interval(mean_reps),
                          np.percentile(_classical(correct, lambda x: 100 * x.mean(1), 4000, 2),
                                        [2.5, 97.5])),
                         (bootstrap.interval(p95_reps),
                          np.percentile(_classical(latency,
                                                   lambda x: np.percentile(x, 95, axis=1),
                                                   4000, 2), [2.5, 97.5]))):
        width = theirs[1] - theirs[0]
        assert abs(ours.low - theirs[0]) < 0.12 * width
        assert abs(ours.high - theirs[1]) < 0.12 * width
    # and the textbook standard error of a proportion
    se = 100 * math.sqrt(correct.mean() * (1 - correct.mean()) / n)
    assert np.std(mean_reps) == pytest.approx(se, rel=0.06)


def test_seeds_are_fixed():
    values = np.random.default_rng(0).random(500)
    first = Bootstrap(500, 300, seed=4).replicates([mean_of(values)])[0]
    again = Bootstrap(500, 300, seed=4).replicates([mean_of(values)])[0]
    other = Bootstrap(500, 300, seed=5).replicates([mean_of(values)])[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_paired_difference_p_values():
    rng = np.random.default_rng(7)
    n = 400
    a = (rng.random(n) < 0.7).astype(float)
    bootstrap = Bootstrap(n, 4000, seed=0)
    # the same answers: no difference at all
    same = bootstrap.difference(*bootstrap.replicates([mean_of(a), mean_of(a.copy())]), 0.0)
    assert same.p_value == 1.0 and same.interval.low == same.interval.high == 0.0
    # 60 more right answers out of 400: far beyond the noise
    better = a.copy()
    better[np.flatnonzero(a == 0)[:60]] = 1.0
    far = bootstrap.difference(*bootstrap.replicates([mean_of(a), mean_of(better)]), 0.15)
    assert far.p_value < 0.001 and far.interval.low > 0.1
    # 3 swapped each way and 2 more: within the noise, and the paired interval is
    # much narrower than the two runs' own intervals
    close = a.copy()
    wrong, right = np.flatnonzero(a == 0), np.flatnonzero(a == 1)
    close[wrong[:5]], close[right[:3]] = 1.0, 0.0
    first, second = bootstrap.replicates([mean_of(a), mean_of(close)])
    near = bootstrap.difference(first, second, 2 / n)
    assert near.p_value > 0.05 and near.interval.low <= 0 <= near.interval.high
    own = bootstrap.interval(first)
    assert near.interval.high - near.interval.low < 0.3 * (own.high - own.low)
    # unpaired (independent resamples): wider, as it must be
    unpaired = bootstrap.difference(first, bootstrap.replicates([mean_of(close)], stream=1)[0],
                                    2 / n)
    assert unpaired.interval.high - unpaired.interval.low > \
        2 * (near.interval.high - near.interval.low)


def _two_sided(b, c):
    """Textbook exact McNemar: twice the binomial tail, with math.comb."""
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b, c, expected", [
    (1, 7, 0.0703125),  # 2 * (1 + 8) / 256
    (10, 2, 158 / 4096),  # 2 * (1 + 12 + 66) / 4096
    (5, 5, 1.0),
    (0, 0, 1.0),
    (40, 65, None),
])
def test_mcnemar_exact_against_known_tables(b, c, expected):
    reference = _two_sided(b, c) if expected is None else expected
    assert exact_p_value(b, c) == pytest.approx(reference, rel=1e-9)
    assert exact_p_value(c, b) == pytest.approx(reference, rel=1e-9)
    assert reference == pytest.approx(_two_sided(b, c), rel=1e-12)


def test_mcnemar_counts_discordant_pairs_and_leaves_out_unanswered_ones():
    first = np.array([1, 1, 1, 0, 0, 1, np.nan, 0])
    second = np.array([1, 0, 0, 0, 1, 1, 1, np.nan])
    test = mcnemar_exact(first, second)
    assert (test.first_only, test.second_only, test.both, test.neither) == (2, 1, 2, 1)
    assert test.p_value == pytest.approx(_two_sided(2, 1))
