"""Greedy ensemble selection (Caruana et al., "Ensemble selection from libraries of
models", ICML 2004; what auto-sklearn builds after its search) over AutoRouter's
candidates, on their out-of-fold scores: start from the best candidates, add, with
replacement, the candidate that most raises the APGR of the averaged scores, and keep
the best ensemble seen. On a small train part the top cross-validated candidate is
partly luck (the winner's curse); a blend of several good ones is steadier.

Scores of different candidates are not on one scale (P(hard), an expected gain), so
each is standardised by the mean and spread of its own out-of-fold scores, and the
blend is put on the top candidate's scale (its mean and spread). Where no threshold is
given, the blend's cut is the one that sends the share of train items the top
candidate's natural cut (0.5 for a probability, 0 for an expected gain) sent.
"""

from dataclasses import dataclass

import numpy as np

from edgellm.metrics.routing_curves import calibrate_threshold
from edgellm.routing.selection import outcomes_of, scores_apgr


@dataclass(frozen=True)
class Standard:
    """The mean and spread of one candidate's out-of-fold scores."""

    mean: float
    spread: float

    @classmethod
    def of(cls, scores):
        scores = np.asarray(scores, dtype=np.float64)
        spread = float(scores.std())
        return cls(float(scores.mean()), spread if spread > 0 else 1.0)

    def z(self, scores):
        return (np.asarray(scores, dtype=np.float64) - self.mean) / self.spread


def greedy_ensemble(oof, right, cv_apgr, rounds=20, start=1):
    """(weights over the candidates summing to 1, the blend's out-of-fold APGR).
    ``oof``: candidates x items out-of-fold scores; ``right``: (items, 2) edge right,
    cloud right; ``cv_apgr``: each candidate's APGR of those scores (cross_validate's;
    NaN for one not fitted on every fold, which never joins). The blend starts as the
    ``start`` best candidates, then ``rounds`` times the candidate whose addition gives
    the highest APGR joins (again, if it is already in); the best blend seen is kept,
    the earlier (smaller) one on ties. ``rounds`` 0: the best candidate alone."""
    outcomes = outcomes_of(np.asarray(right, dtype=bool))
    cv_apgr = np.asarray(cv_apgr, dtype=np.float64)
    usable = np.flatnonzero(np.isfinite(cv_apgr))
    if not len(usable):
        raise ValueError("no candidate was fitted on every fold")
    z = {j: Standard.of(oof[j]).z(oof[j]) for j in usable}
    # stable: grid order on ties, so the first is Selection.best (nanargmax's first)
    ranked = sorted(usable, key=lambda j: -cv_apgr[j])
    counts = np.zeros(len(oof))
    counts[ranked[:start]] = 1
    blend = np.mean([z[j] for j in ranked[:start]], axis=0)
    best, best_counts = scores_apgr(blend, outcomes), counts.copy()
    for _ in range(rounds):
        n = counts.sum()
        trials = {j: scores_apgr((blend * n + z[j]) / (n + 1), outcomes) for j in usable}
        j = max(usable, key=lambda k: trials[k])  # first of the ties: grid order
        counts[j] += 1
        blend = (blend * n + z[j]) / (n + 1)
        if trials[j] > best:
            best, best_counts = trials[j], counts.copy()
    return best_counts / best_counts.sum(), float(best)


class Blend:
    """Routes with a weighted blend of fitted routers' standardised scores. ``members``:
    (router, weight, Standard of its out-of-fold scores), the anchor (the top
    candidate) first; ``spread``: the Standard of the blend's own out-of-fold scores;
    ``oof_scores``: the blend's out-of-fold scores on its output scale (the anchor's
    out-of-fold mean and spread)."""

    def __init__(self, members, spread, indices=()):
        self.members = list(members)
        self.spread = spread
        self.indices = list(indices)  # each member's candidate, in the members' order
        self.oof_scores = None

    @classmethod
    def of(cls, routers, weights, oof, anchor):
        """The blend of fitted ``routers`` (one per candidate, None where unused) with
        ``weights`` (greedy_ensemble's), standardised by ``oof``, on the scale of
        candidate ``anchor`` (the top one: greedy_ensemble starts from it)."""
        if not weights[anchor] > 0:
            raise ValueError(f"the anchor, candidate {anchor}, is not in the blend")
        order = [anchor] + sorted((j for j in np.flatnonzero(weights) if j != anchor),
                                  key=lambda j: (-weights[j], j))
        members = [(routers[j], float(weights[j]), Standard.of(oof[j])) for j in order]
        blended = sum(w * s.z(oof[j]) for j, (_, w, s) in zip(order, members))
        blend = cls(members, Standard.of(blended), order)
        blend.oof_scores = blend._on_anchor_scale(blended)
        return blend

    @property
    def first(self):
        """The anchor: the top candidate."""
        return self.members[0][0]

    def score(self, samples):
        return self._on_anchor_scale(sum(weight * standard.z(router.score(samples))
                                         for router, weight, standard in self.members))

    def _on_anchor_scale(self, blended):
        """Blended standardised scores, standardised again and given the anchor's
        out-of-fold mean and spread."""
        anchor = self.members[0][2]
        return self.spread.z(blended) * anchor.spread + anchor.mean

    def cut_matching(self, anchor_oof, cut):
        """The threshold on the blend's scale that sends to the cloud the share of the
        train items the anchor's out-of-fold scores send at ``cut`` (its natural one):
        matching mean and spread alone does not keep that share for a skewed or
        discrete anchor (a subject prior, a mostly small probability)."""
        share = float(np.mean(np.asarray(anchor_oof, dtype=np.float64) >= cut))
        return calibrate_threshold(self.oof_scores, share).threshold
