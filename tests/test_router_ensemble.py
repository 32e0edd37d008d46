"""AutoRouter's greedy ensemble (edgellm.routing.ensemble): it blends candidates whose
out-of-fold scores carry different parts of the signal, leaves out those that carry
none, keeps the top candidate alone with no rounds, routes on the top candidate's scale
with its natural share of the train items, and AutoRouter's scores are the blend of its
members fitted alone."""

import numpy as np
import pytest

from edgellm.routing import ROUTERS
from edgellm.routing.auto import AutoRouter
from edgellm.routing.ensemble import Blend, Standard, greedy_ensemble
from edgellm.routing.labels import training_labels
from edgellm.routing.selection import cross_validate, outcomes_of, scores_apgr
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
    alone = [scores_apgr(s, outcomes_of(right)) for s in oof]
    weights, figure = greedy_ensemble(oof, right, alone, rounds=0)
    assert weights.tolist() == [float(j == np.argmax(alone)) for j in range(3)]
    assert figure == pytest.approx(max(alone))


def test_two_views_of_the_signal_blend_better_than_either_and_noise_stays_out():
    right, oof = two_views()
    alone = [scores_apgr(s, outcomes_of(right)) for s in oof]
    weights, figure = greedy_ensemble(oof, right, alone, rounds=10)
    assert weights[0] > 0 and weights[1] > 0 and weights[2] == 0
    assert weights.sum() == pytest.approx(1.0)
    assert figure > max(alone) + 0.02  # scales differ by 10x: standardised before blending
    # a candidate not fitted on every fold never joins
    weights, _ = greedy_ensemble(oof, right, [alone[0], np.nan, alone[2]], rounds=10)
    assert weights[1] == 0


class Fixed:
    """A 'router' whose score of item i is a fixed array's."""

    def __init__(self, scores):
        self.scores = np.asarray(scores)

    def score(self, samples):
        return self.scores[np.asarray(samples)]


def test_the_blend_is_on_its_anchor_s_scale_and_the_anchor_comes_first():
    right, oof = two_views()
    weights = np.array([0.25, 0.75, 0.0])  # the anchor need not be the heaviest
    blend = Blend.of([Fixed(s) for s in oof], weights, oof, anchor=0)
    assert np.array_equal(blend.first.scores, oof[0])
    assert [w for _, w, _ in blend.members] == [0.25, 0.75]
    scores = blend.score(np.arange(oof.shape[1]))
    assert np.allclose(scores, blend.oof_scores)
    assert scores.mean() == pytest.approx(oof[0].mean())
    assert scores.std() == pytest.approx(oof[0].std())
    z = sum(w * Standard.of(s).z(s) for w, s in zip(weights, oof))
    assert np.corrcoef(scores, z)[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="anchor"):
        Blend.of([Fixed(s) for s in oof], weights, oof, anchor=2)


def test_the_natural_cut_keeps_the_anchor_s_share_of_the_train_items():
    """A skewed, discrete anchor (80 % at -0.05, 20 % at +0.2: 20 % at or above 0):
    a blend with the anchor's mean and spread puts many more above 0; the matching cut
    sends the anchor's 20 % of the train items."""
    rng = np.random.default_rng(1)
    n = 4000
    anchor = np.where(rng.random(n) < 0.2, 0.2, -0.05)
    other = anchor + rng.normal(0, 0.2, n)
    oof = np.vstack([anchor, other])
    blend = Blend.of([Fixed(anchor), Fixed(other)], np.array([0.5, 0.5]), oof, anchor=0)
    assert np.mean(blend.oof_scores >= 0) > 0.3  # the scale alone moves the share
    cut = blend.cut_matching(anchor, 0.0)
    assert np.mean(blend.oof_scores >= cut) == pytest.approx(np.mean(anchor >= 0), abs=1 / n)


def test_auto_router_scores_are_the_blend_of_its_members_fitted_alone():
    train, test = gain_outcomes(300, 0), gain_outcomes(100, 1)
    router = AutoRouter(ensemble=20, **FAST).fit(train.samples(), right(train))
    ensemble = router.fit_report()["selection"]["ensemble"]
    assert ensemble["rounds"] == 20 and len(ensemble["members"]) > 1
    assert sum(m["weight"] for m in ensemble["members"]) == pytest.approx(1.0)
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


def test_auto_router_anchors_on_its_top_candidate_and_keeps_its_natural_share(tmp_path):
    """The anchor (first member, the reported label, the scale) is the top candidate;
    with no threshold or share, the cut sends the share of train items the top
    candidate's natural cut sends by its out-of-fold scores; save and load keep it all;
    a router saved before blends still scores with its chosen candidate."""
    train, test = gain_outcomes(300, 0), gain_outcomes(100, 1)
    router = AutoRouter(**FAST).fit(train.samples(), right(train))
    report = router.fit_report()
    chosen = report["selection"]["chosen"]
    assert report["selection"]["ensemble"]["members"][0]["params"] == chosen["params"]
    assert router.chosen_.get_params()["label"] == chosen["params"]["label"]
    assert report["label"] == chosen["params"]["label"]
    candidates = router.candidates(train.samples())
    found = cross_validate(candidates, train.samples(), right(train), folds=3, seed=0)
    top = found.oof[found.best]
    natural = 0.0 if chosen["params"]["label"] == "expected_gain" else 0.5
    assert np.mean(router.blend_.oof_scores >= router.threshold_) == pytest.approx(
        np.mean(top >= natural), abs=1 / len(top))
    loaded = AutoRouter.load(router.save(tmp_path / "auto.joblib"))
    assert np.array_equal(loaded.score(test.samples()), router.score(test.samples()))
    assert loaded.threshold_ == router.threshold_
    del loaded.blend_, loaded.natural_threshold_  # as saved before blends
    assert np.array_equal(loaded.score(test.samples()), router.chosen_.score(test.samples()))
    loaded._set_threshold()
    assert loaded.threshold_ == natural
