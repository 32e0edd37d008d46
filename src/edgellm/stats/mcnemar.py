"""McNemar's exact test: do two configurations answer the same items right at
different rates? Only the discordant items count (b: right in the first run only,
c: right in the second only); under the null hypothesis each is as likely as the
other, so b ~ Binomial(b + c, 1/2). Two-sided p-value: twice the smaller tail,
at most 1 (the exact conditional test; scipy's binomtest gives the same for p=1/2).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class McNemar:
    first_only: int  # b: right in the first run, wrong in the second
    second_only: int  # c
    both: int  # items both got right
    neither: int
    p_value: float


def mcnemar_exact(first, second):
    """The test on two runs' per-item correctness (0/1 arrays over the same items;
    NaN: the item does not count in that run, and the pair is left out)."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    kept = np.isfinite(first) & np.isfinite(second)
    a, b = first[kept] > 0.5, second[kept] > 0.5
    first_only, second_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return McNemar(first_only, second_only, int(np.sum(a & b)), int(np.sum(~a & ~b)),
                   exact_p_value(first_only, second_only))


def exact_p_value(b, c):
    """Two-sided exact p-value of b discordant pairs one way and c the other."""
    n = b + c
    if n == 0:
        return 1.0
    # scipy comes with scikit-learn; imported here, where a test runs (0.2 s)
    from scipy.stats import binom

    return float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))
