"""AutoRouter's greedy ensemble (edgellm.routing.ensemble): it blends candidates whose
out-of-fold scores carry different parts of the signal, leaves out those that carry
none, keeps the top candidate alone with no rounds, routes on its first member's scale,
and AutoRouter's scores are the blend of its members fitted alone."""

import numpy as np
import pytest

from edgellm.routing import ROUTERS
from edgellm.routing.auto import AutoRouter
from edgellm.routing.ensemble import Blend, Standard, greedy_ensemble
from edgellm.routing.labels import training_labels
from edgellm.routing.selection import outcomes_of, scores_apgr
from test_auto_router import FAST, gain_outcomes, right


def two_views(n=3000, seed=0):
    """right (items, 2) and out-of-fold scores of three candidates: two each see the
    cloud's gain through noise of their own, one sees nothing."""
    rng = np.random.default_rng(seed)
    gain = rng.random(n) < 0.3
    edge = ~gain & (rng.random(n) < 0.7)
    cloud = gain | edge
    right = np.c_[edge, cloud]
    oof = np.vstack([gain + rng.normal(0, 1.2, n), 10 * (gain + rng.normal(0, 1.2, n)) + 3,
                     rng.normal(0, 1, n)])
    return right, oof


def test_no_rounds_is_the_top_candidate_alone():
    right, oof = two_views()
    weights, figure = greedy_ensemble(oof, right, [True] * 3, rounds=0)
    alone = [scores_apgr(s, outcomes_of(right)) for s in oof]
    assert weights.tolist() == [float(j == np.argmax(alone)) for j in range(3)]
    assert figure == pytest.approx(max(alone))


def test_two_views_of_the_signal_blend_better_than_either_and_noise_stays_out():
    right, oof = two_views()
    weights, figure = greedy_ensemble(oof, right, [True] * 3, rounds=10)
    alone = [scores_apgr(s, outcomes_of(right)) for s in oof]
    assert weights[0] > 0 and weights[1] > 0 and weights[2] == 0
    assert weights.sum() == pytest.approx(1.0)
    assert figure > max(alone) + 0.02  # scales differ by 10x: standardised before blending
    # a candidate not fitted on every fold never joins
    weights, _ = greedy_ensemble(oof, right, [True, False, True], rounds=10)
    assert weights[1] == 0


class Fixed:
    """A 'router' whose score of item i is a fixed array's."""

    def __init__(self, scores):
        self.scores = np.asarray(scores)

    def score(self, samples):
        return self.scores[np.asarray(samples)]


def test_the_blend_is_on_its_first_member_s_scale():
    right, oof = two_views()
    weights, _ = greedy_ensemble(oof, right, [True] * 3, rounds=10)
    blend = Blend.of([Fixed(s) for s in oof], weights, oof)
    first = int(np.argmax(weights))
    assert np.array_equal(blend.first.scores, oof[first])
    scores = blend.score(np.arange(oof.shape[1]))
    assert scores.mean() == pytest.approx(oof[first].mean())
    assert scores.std() == pytest.approx(oof[first].std())
    z = sum(w * Standard.of(s).z(s) for w, s in zip(weights, oof))
    assert np.corrcoef(scores, z)[0, 1] == pytest.approx(1.0)


def test_auto_router_scores_are_the_blend_of_its_members_fitted_alone():
    train, test = gain_outcomes(300, 0), gain_outcomes(100, 1)
    router = AutoRouter(ensemble=20, **FAST).fit(train.samples(), right(train))
    ensemble = router.fit_report()["selection"]["ensemble"]
    assert ensemble["rounds"] == 20
    assert sum(m["weight"] for m in ensemble["members"]) == pytest.approx(1.0)
    assert ensemble["cv_apgr"] >= router.fit_report()["selection"]["cv_apgr"]
    members = ensemble["members"]
    # each member fitted alone on every train item, blended by hand
    y = right(train)
    blended = 0
    for member, (fitted, weight, standard) in zip(members, router.blend_.members):
        alone = ROUTERS.get(member["router"])(**member["params"]).fit(
            train.samples(), training_labels(y[:, 0], y[:, 1], member["params"]["label"]))
        assert weight == member["weight"]
        assert np.allclose(fitted.score(test.samples()), alone.score(test.samples()))
        blended = blended + weight * standard.z(alone.score(test.samples()))
    first = router.blend_.members[0][2]
    expected = router.blend_.spread.z(blended) * first.spread + first.mean
    assert np.allclose(router.score(test.samples()), expected)
