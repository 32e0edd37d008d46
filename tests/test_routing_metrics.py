"""APGR, CPT and AIQ as leaderboard metrics: from one test case's results (Ianvs'
y_pred) they equal the curve the offline evaluation draws over the same items, they
do not depend on the case's threshold, and they are NaN, with a warning saying why,
when the results cannot give the curve."""

import logging
import math
import random

import numpy as np
import pytest

from edgellm.bench.paradigm import JointInference
from edgellm.cli import main
from edgellm.metrics.routing import METRICS, case_outcomes
from edgellm.metrics.routing_curves import aiq, aiq_cost_range, apgr, cpt, sweep
from edgellm.models.replay import ReplayLLM
from edgellm.models.tiers import CloudModel, EdgeModel
from edgellm.outcomes import OutcomeSet, synthetic
from edgellm.report.router_curves import evaluate_scores
from edgellm.routing.baselines import EdgeOnly, RandomRouter
from edgellm.routing.labels import training_labels
from edgellm.routing.tfidf import TfidfRouter

NAMES = ("APGR", "CPT(50%)", "CPT(80%)", "AIQ")


def figures(y_true, y_pred):
    return {name: METRICS[name](y_true, y_pred) for name in NAMES}


def expected(scores, outcomes):
    """The four figures as the offline evaluation computes them, rounded as the
    leaderboard metrics round them."""
    curve = sweep(scores, outcomes)
    return {"APGR": round(apgr(curve), 4), "CPT(50%)": round(100 * cpt(curve, 0.5), 2),
            "CPT(80%)": round(100 * cpt(curve, 0.8), 2),
            "AIQ": round(aiq(curve, aiq_cost_range(outcomes)), 4)}


def outcome_set(n=500, seed=0):
    rng = np.random.default_rng(seed)
    difficulty = rng.standard_normal(n)
    edge = (difficulty + 0.8 * rng.standard_normal(n) < 0.3).astype(float)
    cloud = (difficulty + 0.8 * rng.standard_normal(n) < 1.0).astype(float)
    return OutcomeSet(ids=[str(i) for i in range(n)], queries=[f"q{i}" for i in range(n)],
                      subjects=[None] * n, task_types=["multiple_choice"] * n,
                      edge_score=edge, cloud_score=cloud, edge_cost=np.zeros(n),
                      cloud_cost=rng.uniform(0.001, 0.003, n),
                      edge_latency=rng.uniform(0.1, 0.3, n),
                      cloud_latency=rng.uniform(0.5, 1.0, n)), difficulty


def results(outcomes, scores, threshold, counterpart=True):
    """y_pred of a mining-then-inference case routing at ``threshold``: the answering
    response with its recorded outcome, the router's score and (replay with
    counterpart_model) the other model's outcome."""
    y_pred = []
    for i in range(len(outcomes)):
        tiers = {"edge": (outcomes.edge_score[i], outcomes.edge_cost[i],
                          outcomes.edge_latency[i]),
                 "cloud": (outcomes.cloud_score[i], outcomes.cloud_cost[i],
                           outcomes.cloud_latency[i])}
        hard = bool(scores[i] >= threshold)
        tier, other = ("cloud", "edge") if hard else ("edge", "cloud")
        score, cost, latency = tiers[tier]
        res = {"tier": tier, "score": score, "cost_usd": cost, "task_type": "multiple_choice",
               "perf": {"e2e_latency": latency}, "router_score": float(scores[i])}
        if counterpart:
            o_score, o_cost, o_latency = tiers[other]
            res["counterpart"] = {"tier": other, "score": o_score, "cost_usd": o_cost,
                                  "e2e_latency": o_latency}
        y_pred.append([hard, res, None if hard else res, res if hard else None])
    return y_pred


def test_figures_equal_the_offline_curve_whatever_the_threshold():
    outcomes, difficulty = outcome_set()
    scores = difficulty + np.random.default_rng(1).standard_normal(len(outcomes))
    golds = ["A"] * len(outcomes)
    want = expected(scores, outcomes)
    assert 0.5 < want["APGR"] < 1.0 and 0 < want["CPT(50%)"] < 50  # an informative router
    for threshold in (-1.0, 0.0, 2.0):  # three test cases of one router's grid
        assert figures(golds, results(outcomes, scores, threshold)) == want
    rebuilt_scores, rebuilt = case_outcomes(golds, results(outcomes, scores, 0.5))
    assert np.array_equal(rebuilt.edge_score, outcomes.edge_score)
    assert np.array_equal(rebuilt.cloud_cost, outcomes.cloud_cost)
    assert np.array_equal(rebuilt_scores, scores)


def test_nan_with_one_warning_when_scores_or_the_other_outcome_are_missing(caplog):
    outcomes, difficulty = outcome_set(200)
    golds = ["A"] * len(outcomes)
    no_other = results(outcomes, difficulty, 0.0, counterpart=False)
    with caplog.at_level(logging.WARNING, logger="edgellm.metrics.routing"):
        values = figures(golds, no_other)
    assert all(math.isnan(v) for v in values.values())
    assert caplog.text.count("routing curve metrics") == 1  # once for the four metrics
    assert "200 of 200 answers lack the other model's outcome" in caplog.text
    assert "counterpart_model" in caplog.text

    caplog.clear()
    unscored = results(outcomes, difficulty, 0.0)
    del unscored[7][1]["router_score"]
    with caplog.at_level(logging.WARNING, logger="edgellm.metrics.routing"):
        assert math.isnan(METRICS["APGR"](golds, unscored))
    assert "1 of 200 answers carry no router score" in caplog.text

    caplog.clear()  # a router that scores nothing (EdgeOnly): expected, not a warning
    none_scored = results(outcomes, difficulty, 0.0)
    for result in none_scored:
        del result[1]["router_score"]
    with caplog.at_level(logging.INFO, logger="edgellm.metrics.routing"):
        assert math.isnan(METRICS["APGR"](golds, none_scored))
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "200 of 200 answers carry no router score" in caplog.text


def test_escalated_queries_of_inference_then_mining_use_both_answers():
    outcomes, difficulty = outcome_set(300)
    golds = ["A"] * len(outcomes)
    y_pred = results(outcomes, difficulty, 0.5)
    for i, (hard, res, edge, cloud) in enumerate(y_pred):
        if hard:  # the edge answered first, then the cloud: no counterpart needed
            del res["counterpart"]
            y_pred[i][2] = {"tier": "edge", "score": outcomes.edge_score[i],
                            "cost_usd": outcomes.edge_cost[i],
                            "perf": {"e2e_latency": outcomes.edge_latency[i]}}
    assert figures(golds, y_pred) == expected(difficulty, outcomes)


@pytest.fixture
def replayed(tmp_path):
    """The synthetic MMLU-shaped matrix (600 items) in a response store, split 50/50."""
    matrix = synthetic.generate(600, seed=3)
    path, store = tmp_path / "matrix.csv", str(tmp_path / "responses.sqlite")
    path.write_text(matrix.to_csv())
    assert main(["import", str(path), "--store", store]) == 0
    outcomes = OutcomeSet.from_matrix(str(path), synthetic.EDGE_MODEL,
                                      synthetic.CLOUD_MODEL)
    train, test = outcomes.split(0.5, seed=0)
    return store, train, test


def models(store, counterpart=True):
    edge, cloud = synthetic.EDGE_MODEL, synthetic.CLOUD_MODEL
    return (EdgeModel(backend="replay", model=edge, store=store,
                      counterpart_model=cloud if counterpart else None),
            CloudModel(backend="replay", model=cloud, store=store,
                       counterpart_model=edge if counterpart else None))


def test_replay_with_counterpart_carries_the_other_models_recorded_outcome(replayed):
    store, _, test = replayed
    samples = test.samples()
    edge, cloud = models(store)
    answers = edge.predict_batch(samples)
    assert [a["score"] for a in answers] == list(test.edge_score)
    assert [a["counterpart"]["score"] for a in answers] == list(test.cloud_score)
    assert {a["counterpart"]["tier"] for a in answers} == {"cloud"}
    assert [a["counterpart"]["cost_usd"] for a in answers] == pytest.approx(list(test.cloud_cost))
    back = cloud.inference_batch(samples[:5])
    assert [a["counterpart"]["score"] for a in back] == list(test.edge_score[:5])
    # an item the store lacks for the other model gets no counterpart
    alone = ReplayLLM(synthetic.EDGE_MODEL, store=store, counterpart_model="no-such-model")
    assert all("counterpart" not in a for a in alone.generate_batch(samples[:3]))
    with pytest.raises(ValueError, match="counterpart_model is the replayed model itself"):
        ReplayLLM("m", store=store, counterpart_model="m")


def test_tier_models_copy_the_router_score_without_touching_the_backend_response():
    edge = EdgeModel(backend="simulated", model="Qwen/Qwen2.5-1.5B-Instruct", seed=0)
    sample = {"id": 0, "query": "Q?\nA. a\nB. b", "gold": "A", "task_type": "multiple_choice"}
    plain = edge.predict(dict(sample))
    scored = edge.predict(dict(sample, router_score=0.25))
    assert "router_score" not in plain and scored["router_score"] == 0.25
    assert {k: v for k, v in scored.items() if k != "router_score"}.keys() == plain.keys()
    assert edge.predict_batch([dict(sample, router_score=0.5)])[0]["router_score"] == 0.5


def test_a_job_case_over_replayed_outcomes_gives_the_offline_figures(replayed):
    """A fitted TF-IDF router routes the test items through the paradigm, the models
    replay the matrix with counterparts: the leaderboard figures are those the
    offline evaluation (edgellm report --outcomes) computes on the same test items."""
    store, train, test = replayed
    router = TfidfRouter(metadata=["subject"], cloud_share=0.3, label="cloud_right_edge_wrong")
    router.fit(train.samples(), training_labels(train.edge_score, train.cloud_score,
                                                "cloud_right_edge_wrong"))
    edge, cloud = models(store)
    samples = test.samples()
    y_pred = JointInference(edge, cloud, router).run(samples)
    golds = [""] * len(samples)  # outcome matrices have no gold answers: scores are recorded
    offline = evaluate_scores("TfidfRouter", None, router.score(test.samples()), test)
    got = figures(golds, y_pred)
    assert got["APGR"] == round(offline.metrics["APGR"], 4)
    assert got["CPT(50%)"] == round(100 * offline.metrics["CPT(50%)"], 2)
    assert got["CPT(80%)"] == round(100 * offline.metrics["CPT(80%)"], 2)
    assert got["AIQ"] == round(offline.metrics["AIQ"], 4)
    assert got["APGR"] > 0.55  # the subject prior and text cues are worth something

    # the random router: its draws are its scores; without counterparts, NaN
    y_random = JointInference(edge, cloud, RandomRouter(cloud_probability=0.4, seed=7)).run(
        test.samples())
    rng = random.Random(7)
    draws = np.array([1.0 - rng.random() for _ in range(len(test))])
    assert figures(golds, y_random) == expected(draws, test)
    y_edge = JointInference(edge, cloud, EdgeOnly()).run(test.samples())
    assert math.isnan(METRICS["APGR"](golds, y_edge))
    plain_edge, plain_cloud = models(store, counterpart=False)
    y_plain = JointInference(plain_edge, plain_cloud, router).run(test.samples())
    assert math.isnan(METRICS["AIQ"](golds, y_plain))
