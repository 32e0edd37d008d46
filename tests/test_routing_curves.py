"""Routing curves: the sweep, APGR and CPT against RouteLLM's own code, AIQ against
RouterBench's, the random and oracle baselines, threshold calibration, the Pareto
front, outcome sets and the synthetic MMLU-shaped matrix."""

import csv

import numpy as np
import pandas as pd
import pytest

from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.metrics.routing_curves import (
    Curve, aiq, aiq_cost_range, apgr, calibrate_threshold, cpt, curve_metrics,
    nondecreasing_convex_hull, oracle_choice, oracle_curve, pareto_front, random_curve,
    routellm_thresholds, sweep)
from edgellm.outcomes import OutcomeSet, synthetic


def outcome_set(n, weak, strong, correlation, seed):
    """Binary outcomes of two models sharing a per-item difficulty."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(n)
    mix = lambda: np.sqrt(correlation) * shared + np.sqrt(1 - correlation) * rng.standard_normal(n)
    edge = (mix() < np.quantile(mix(), weak)).astype(float)
    cloud = (mix() < np.quantile(mix(), strong)).astype(float)
    return OutcomeSet(ids=[str(i) for i in range(n)], queries=[f"q{i}" for i in range(n)],
                      subjects=[None] * n, task_types=["multiple_choice"] * n,
                      edge_score=edge, cloud_score=cloud,
                      edge_cost=np.zeros(n), cloud_cost=rng.uniform(0.001, 0.003, n),
                      edge_latency=rng.uniform(0.1, 0.3, n), cloud_latency=rng.uniform(0.5, 1, n))


def noisy_router(outcomes, signal, seed):
    """Scores that rank 'cloud better' items higher, with noise."""
    rng = np.random.default_rng(seed)
    gain = outcomes.cloud_score - outcomes.edge_score
    return signal * gain + rng.standard_normal(len(outcomes))


# RouteLLM's computation, transcribed from routellm/evals/benchmarks.py (MMLU.evaluate)
# and routellm/evals/evaluate.py (generate_results: pct_call_metric, apgr_metric),
# lm-sys/RouteLLM, Apache-2.0; pandas as there, np.trapz renamed np.trapezoid.
def routellm_reference(scores, weak, strong):
    data = pd.DataFrame({"weak": weak.astype(bool), "strong": strong.astype(bool),
                         "strong_win_rates": scores})
    _, thresholds = pd.qcut(scores, 10, retbins=True)
    results = []
    for i, threshold in enumerate(thresholds):
        selection = (data["strong_win_rates"] >= threshold if i != len(thresholds) - 1
                     else data["strong_win_rates"] > threshold)
        chosen = np.where(selection, data["strong"], data["weak"])
        results.append({"strong_percentage": selection.sum() / len(chosen) * 100,
                        "accuracy": sum(chosen) / len(chosen) * 100})
    df = pd.DataFrame(results).sort_values(by=["strong_percentage"])
    weak_accuracy = len(data[data["weak"]]) / len(data) * 100
    strong_accuracy = len(data[data["strong"]]) / len(data) * 100
    cpts = [np.interp(pct * (strong_accuracy - weak_accuracy) + weak_accuracy,
                      df["accuracy"], df["strong_percentage"]) for pct in (0.5, 0.8)]
    auc = np.trapezoid(df["accuracy"], df["strong_percentage"] / 100)
    weak_auc = np.trapezoid(np.full(len(df), weak_accuracy), df["strong_percentage"] / 100)
    strong_auc = np.trapezoid(np.full(len(df), strong_accuracy), df["strong_percentage"] / 100)
    return (auc - weak_auc) / (strong_auc - weak_auc), cpts[0], cpts[1]


# RouterBench's hull and AIQ, transcribed from evaluation/AIQ.py
# (get_non_descreasing_convex_hull_of, calc_AIQ), withmartian/routerbench, MIT.
def routerbench_hull(points):
    hull_points = points[points[:, 0].argsort()]
    new = []
    for i in range(len(hull_points)):
        for j in range(i, len(hull_points)):
            x1, y1 = hull_points[i]
            x2, y2 = hull_points[j]
            for k in range(len(hull_points)):
                x, y = hull_points[k]
                if x1 < x < x2:
                    value = np.interp(x, [x1, x2], [y1, y2])
                    if y < value:
                        if x not in [mx for mx, _ in new]:
                            new.append([x, value])
                        else:
                            for m in range(len(new)):
                                x_new, y_new = new[m]
                                if x_new == x and y_new < value:
                                    new[m] = [x, value]
                                    break
                                elif x_new == x and y_new > value:
                                    new[m] = [x, y_new]
                    if y >= value:
                        if x not in [mx for mx, _ in new]:
                            new.append([x, y])
                        else:
                            for m in range(len(new)):
                                x_new, y_new = new[m]
                                if x_new == x and y_new < y:
                                    new[m] = [x, y]
                                    break
                                elif x_new == x and y_new > y:
                                    new[m] = [x, y_new]
    if hull_points[-1][0] not in [mx for mx, _ in new]:
        if hull_points[-1][1] >= new[-1][1]:
            new.append(hull_points[-1])
    if hull_points[0][0] not in [mx for mx, _ in new]:
        new = [hull_points[0]] + new
    hull = np.array(new)
    hull = hull[hull[:, 0].argsort()]
    remove = [i for i in range(1, len(hull)) if hull[i][1] < hull[i - 1][1]]
    return np.delete(hull, remove, axis=0)


def routerbench_aiq(point_sets):
    hulls = [routerbench_hull(p) for p in point_sets]
    max_x = max(np.max(h[:, 0]) for h in hulls)
    hulls = [np.vstack((h, np.array([max_x, h[-1, 1]]))) for h in hulls]
    return [np.trapezoid(h[:, 1], h[:, 0]) / max_x for h in hulls]


def curve_of(cost, quality):
    n = len(cost)
    return Curve("c", np.zeros(n), np.zeros(n), np.asarray(quality, float),
                 np.asarray(cost, float), np.full(n, np.nan), 0.0, 1.0, n)


# -- the sweep, APGR and CPT -------------------------------------------------------


def test_thresholds_are_pandas_qcut_bin_edges_bit_for_bit():
    rng = np.random.default_rng(3)
    for n in (11, 37, 100, 503, 2000):
        scores = rng.random(n)
        _, edges = pd.qcut(scores, 10, retbins=True)
        assert np.array_equal(routellm_thresholds(scores), edges)


def test_apgr_and_cpt_equal_routellm_on_random_outcome_sets():
    for seed in range(8):
        rng = np.random.default_rng(seed)
        outcomes = outcome_set(int(rng.integers(200, 3000)), rng.uniform(0.4, 0.7),
                               rng.uniform(0.72, 0.9), rng.uniform(0.1, 0.8), seed)
        scores = noisy_router(outcomes, rng.uniform(0, 3), seed)
        curve = sweep(scores, outcomes)
        ref_apgr, ref_cpt50, ref_cpt80 = routellm_reference(scores, outcomes.edge_score,
                                                            outcomes.cloud_score)
        assert apgr(curve) == pytest.approx(ref_apgr, abs=1e-12)
        assert 100 * cpt(curve, 0.5) == pytest.approx(ref_cpt50, abs=1e-9)
        assert 100 * cpt(curve, 0.8) == pytest.approx(ref_cpt80, abs=1e-9)


def test_sweep_runs_from_all_cloud_to_all_edge_with_totals():
    outcomes = outcome_set(500, 0.6, 0.8, 0.5, 1)
    curve = sweep(noisy_router(outcomes, 1.0, 1), outcomes)
    assert len(curve.threshold) == 11
    assert curve.cloud_share[0] == 1.0 and curve.cloud_share[-1] == 0.0
    assert np.all(np.diff(curve.cloud_share) < 0)  # distinct scores: 10 % steps
    np.testing.assert_allclose(curve.cloud_share, np.linspace(1, 0, 11), atol=1 / 500)
    assert curve.accuracy[0] == outcomes.cloud_accuracy
    assert curve.accuracy[-1] == outcomes.edge_accuracy
    assert curve.cost[0] == pytest.approx(outcomes.cloud_cost.sum())
    assert curve.cost[-1] == 0.0
    assert curve.p95_latency[0] == pytest.approx(np.percentile(outcomes.cloud_latency, 95))


def test_tied_scores_keep_duplicate_thresholds_and_a_constant_router_is_the_diagonal():
    outcomes = outcome_set(400, 0.6, 0.8, 0.5, 2)
    curve = sweep(np.full(400, 0.3), outcomes)  # pandas.qcut would raise here
    assert set(curve.cloud_share) == {0.0, 1.0}
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 0.5) == pytest.approx(0.5)
    assert cpt(curve, 0.8) == pytest.approx(0.8)


def test_a_router_that_knows_the_answers_beats_one_that_does_not():
    outcomes = outcome_set(2000, 0.6, 0.8, 0.4, 4)
    good = curve_metrics(sweep(noisy_router(outcomes, 4.0, 4), outcomes))
    noise = curve_metrics(sweep(noisy_router(outcomes, 0.0, 4), outcomes))
    assert good["APGR"] > noise["APGR"] + 0.2
    assert good["CPT(50%)"] < noise["CPT(50%)"]


def test_sweep_rejects_scores_of_the_wrong_length():
    outcomes = outcome_set(50, 0.6, 0.8, 0.5, 0)
    with pytest.raises(ValueError, match="49 scores for 50 items"):
        sweep(np.zeros(49), outcomes)


# -- baselines -----------------------------------------------------------------------


def test_random_router_apgr_is_one_half_on_any_outcome_set():
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        outcomes = outcome_set(int(rng.integers(2500, 6000)), rng.uniform(0.35, 0.7),
                               rng.uniform(0.75, 0.92), rng.uniform(0.0, 0.8), seed)
        curve = random_curve(outcomes)
        assert curve.kind == "random"
        assert abs(apgr(curve) - 0.5) <= 0.02
        assert curve.cloud_share[0] == 1.0 and curve.cloud_share[-1] == 0.0


def test_oracle_accuracy_is_the_share_either_model_gets_right_on_any_outcome_set():
    for seed in range(10):
        rng = np.random.default_rng(200 + seed)
        outcomes = outcome_set(int(rng.integers(20, 3000)), rng.uniform(0.2, 0.9),
                               rng.uniform(0.2, 0.95), rng.uniform(0.0, 0.9), seed)
        either = np.mean((outcomes.edge_score == 1) | (outcomes.cloud_score == 1))
        choice = oracle_choice(outcomes)
        accuracy = np.where(choice, outcomes.cloud_score, outcomes.edge_score).mean()
        assert accuracy == pytest.approx(either, abs=1e-12)
        # ties stay on the edge: the cloud only where the edge is wrong and the cloud right
        assert np.array_equal(choice, (outcomes.edge_score == 0) & (outcomes.cloud_score == 1))
        curve = oracle_curve(outcomes)
        assert curve.accuracy.max() == pytest.approx(either, abs=1e-12)
        assert curve.accuracy[-1] == outcomes.edge_accuracy  # no budget: the edge


def test_oracle_curve_is_routellm_optimal_accuracy_and_bounds_every_router():
    outcomes = outcome_set(1500, 0.55, 0.8, 0.3, 5)
    weak, strong = outcomes.edge_score == 1, outcomes.cloud_score == 1
    curve = oracle_curve(outcomes, shares=np.arange(11) / 10)
    for share, accuracy in zip(curve.cloud_share, curve.accuracy):
        # routellm/evals/benchmarks.py MMLU.get_optimal_accuracy
        optimal = (weak.sum() + min(len(weak) * share, (~weak & strong).sum())) / len(weak)
        assert accuracy == pytest.approx(optimal, abs=1e-12)
    full = oracle_curve(outcomes)
    for signal in (0.0, 2.0, 50.0):
        router = sweep(noisy_router(outcomes, signal, 5), outcomes)
        bound = np.interp(router.cloud_share, full.cloud_share[::-1], full.accuracy[::-1])
        assert np.all(router.accuracy <= bound + 1e-12)


# -- AIQ -----------------------------------------------------------------------------


def test_aiq_by_hand():
    points = curve_of([0.0, 1.0, 2.0, 0.5], [0.5, 0.9, 0.8, 0.6])  # (0.5, 0.6) under the hull
    hull = nondecreasing_convex_hull(points.cost, points.accuracy)
    assert hull.tolist() == [[0.0, 0.5], [1.0, 0.9]]
    assert aiq(points) == pytest.approx(0.7)  # area 0.7 over the cost range 1
    assert aiq(points, max_cost=2.0) == pytest.approx((0.7 + 0.9) / 2)
    assert np.isnan(aiq(curve_of([0.0, 0.0], [0.5, 0.6])))  # no costs recorded


def test_aiq_equals_routerbench_calc_aiq_on_random_point_sets():
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(3, 12))
        sets = [np.column_stack([rng.permutation(np.arange(1, 40))[:n] * rng.uniform(0.1, 2),
                                 rng.random(n)]) for _ in range(int(rng.integers(1, 4)))]
        expected = routerbench_aiq(sets)
        max_cost = max(routerbench_hull(p)[:, 0].max() for p in sets)
        for points, value in zip(sets, expected):
            curve = curve_of(points[:, 0], points[:, 1])
            assert aiq(curve, max_cost) == pytest.approx(value, abs=1e-12)
        if len(sets) == 1:
            assert aiq(curve_of(sets[0][:, 0], sets[0][:, 1])) == pytest.approx(expected[0])


def test_aiq_cost_range_is_the_all_cloud_cost():
    outcomes = outcome_set(300, 0.6, 0.8, 0.5, 8)
    assert aiq_cost_range(outcomes) == pytest.approx(outcomes.cloud_cost.sum())
    curve = sweep(noisy_router(outcomes, 2.0, 8), outcomes)
    assert curve.cost.max() <= aiq_cost_range(outcomes) + 1e-12


# -- calibration, Pareto --------------------------------------------------------------


def test_calibrated_threshold_reaches_the_target_share_on_train_and_reports_test():
    train = np.arange(100) / 100.0
    calibration = calibrate_threshold(train, 0.3, test_scores=np.array([0.1, 0.75, 0.9, 0.5]))
    assert calibration.threshold == 0.7
    assert calibration.train_share == 0.3
    assert calibration.test_share == 0.5
    assert calibrate_threshold(train, 0.0).train_share == 0.0
    assert calibrate_threshold(train, 1.0).train_share == 1.0
    assert calibrate_threshold(np.full(10, 0.2), 0.3).train_share == 1.0  # ties only add
    with pytest.raises(ValueError, match="between 0 and 1"):
        calibrate_threshold(train, 1.5)


def test_calibration_share_on_test_is_near_the_target_for_a_same_distribution_split():
    outcomes = outcome_set(4000, 0.6, 0.8, 0.5, 9)
    train, test = outcomes.split(0.5, seed=0)
    scores = noisy_router(outcomes, 1.0, 9)
    by_id = dict(zip(outcomes.ids, scores))
    calibration = calibrate_threshold([by_id[i] for i in train.ids], 0.25,
                                      [by_id[i] for i in test.ids])
    assert calibration.train_share == pytest.approx(0.25, abs=1 / 2000)
    assert calibration.test_share == pytest.approx(0.25, abs=0.03)


def test_pareto_front_over_quality_cost_and_latency():
    quality = [0.80, 0.80, 0.70, 0.90, 0.60]
    cost = [1.0, 2.0, 0.5, 3.0, 0.5]
    latency = [0.5, 0.4, 0.6, 0.9, 0.7]
    assert pareto_front(quality, cost, latency).tolist() == [True, True, True, True, False]
    # without latency the second point is dominated by the first (same quality, dearer)
    assert pareto_front(quality, cost).tolist() == [True, False, True, True, False]
    assert pareto_front(quality, cost, [0.5, np.nan, 0.6, 0.9, 0.7]).tolist() == \
        [True, False, True, True, False]


# -- outcome sets ----------------------------------------------------------------------


def test_split_is_of_items_seeded_and_disjoint():
    outcomes = outcome_set(101, 0.6, 0.8, 0.5, 0)
    train, test = outcomes.split(0.5, seed=0)
    assert len(train) == 50 and len(test) == 51  # round(50.5) = 50
    assert set(train.ids).isdisjoint(test.ids) and set(train.ids) | set(test.ids) == \
        set(outcomes.ids)
    assert train.split_info == {"part": "train", "fraction": 0.5, "seed": 0,
                                "train_items": 50, "test_items": 51}
    assert outcomes.split(0.5, seed=0)[0].ids == train.ids
    assert outcomes.split(0.5, seed=1)[0].ids != train.ids
    i = outcomes.ids.index(test.ids[3])
    assert test.edge_score[3] == outcomes.edge_score[i]
    assert test.samples()[3] == {"id": test.ids[3], "query": f"q{i}", "subject": None,
                                 "task_type": "multiple_choice"}


def test_outcome_set_reads_the_generated_matrix_csv(tmp_path):
    matrix = synthetic.generate(300, seed=1)
    path = tmp_path / "m.csv"
    assert main(["dataset", "synthesize", str(path), "--items", "300", "--seed", "1"]) == 0
    read = OutcomeSet.from_matrix(str(path), synthetic.EDGE_MODEL, synthetic.CLOUD_MODEL)
    direct = matrix.to_outcome_set()
    assert read.ids == direct.ids and read.queries == direct.queries
    assert read.subjects == direct.subjects
    assert np.array_equal(read.edge_score, direct.edge_score)
    assert np.array_equal(read.cloud_score, direct.cloud_score)
    np.testing.assert_allclose(read.cloud_cost, direct.cloud_cost, atol=1e-8)
    np.testing.assert_allclose(read.edge_latency, direct.edge_latency, atol=1e-4)
    from edgellm.models.importers import read_entries  # edgellm import takes it as is
    assert len(read_entries(str(path))) == 600


def _write(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["item_id", "query", "model", "correct", "subject"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_outcome_matrix_errors_name_file_line_and_column(tmp_path):
    ok = [{"item_id": 1, "query": "q1", "model": "e", "correct": 1, "subject": "law"},
          {"item_id": 1, "query": "q1", "model": "c", "correct": 0, "subject": "law"}]
    read = OutcomeSet.from_matrix(_write(tmp_path / "ok.csv", ok), "e", "c")
    assert read.subjects == ["law"] and read.edge_score.tolist() == [1.0]
    path = _write(tmp_path / "a.csv", ok)
    with pytest.raises(ConfigError, match=r"a\.csv: field 'model': no rows for 'x' "
                                          r"\(models in the file: c, e\)"):
        OutcomeSet.from_matrix(path, "e", "x")
    path = _write(tmp_path / "b.csv", ok[:1])
    with pytest.raises(ConfigError, match=r"b\.csv: field 'model': no rows for 'c'"):
        OutcomeSet.from_matrix(path, "e", "c")
    path = _write(tmp_path / "c.csv", ok + [{**ok[0], "item_id": 2}])
    with pytest.raises(ConfigError, match=r"c\.csv:4: item '2' has a row for 'e' but none for 'c'"):
        OutcomeSet.from_matrix(path, "e", "c")
    path = _write(tmp_path / "d.csv", ok + [ok[0]])
    with pytest.raises(ConfigError, match=r"d\.csv:4: field 'item_id': model 'e' has this item "
                                          r"already at line 2"):
        OutcomeSet.from_matrix(path, "e", "c")
    path = _write(tmp_path / "e.csv", [ok[0], {**ok[1], "correct": "maybe"}])
    with pytest.raises(ConfigError, match=r"e\.csv:3: field 'correct': 'maybe'"):
        OutcomeSet.from_matrix(path, "e", "c")
    with pytest.raises(ConfigError, match="not found"):
        OutcomeSet.from_matrix(str(tmp_path / "none.csv"), "e", "c")


# -- the synthetic MMLU-shaped matrix ---------------------------------------------------


def test_synthetic_matrix_has_mmlu_shape_and_calibrated_accuracies():
    matrix = synthetic.generate(14000, seed=0)
    assert len(matrix) == 14000 and len(set(matrix.subjects)) == 57
    counts = pd.Series(matrix.subjects).value_counts()
    assert counts["professional_law"] == round(1534 * 14000 / 14042)
    assert matrix.weak_correct.mean() == pytest.approx(0.681, abs=0.01)
    assert matrix.strong_correct.mean() == pytest.approx(0.815, abs=0.01)
    only_weak = np.mean(matrix.weak_correct & ~matrix.strong_correct)
    assert only_weak == pytest.approx(0.050, abs=0.01)  # recorded: 4.8 % (5.3 % with HS math)
    politics = np.array(matrix.subjects) == "high_school_government_and_politics"
    assert matrix.weak_correct[politics].mean() > 0.9  # subject accuracies carried over (0.959)
    assert all(q.endswith("\nAnswer:") and "\nD. " in q for q in matrix.queries[:50])
    assert synthetic.generate(200, seed=0).queries == synthetic.generate(200, 0).queries


def test_synthetic_matrix_text_carries_partial_signal():
    summary = synthetic.signal_summary(synthetic.generate(6000, seed=2))
    latent, subject, cues = (summary[k] for k in ("latent", "subject", "text cues within subjects"))
    for label in (0, 1):  # oracle label, weak wrong
        assert latent[label] > subject[label] > 0.55  # the subject tells part ...
        assert latent[label] > cues[label] > 0.5  # ... the cue words a little within it
    assert cues[1] < 0.7


def test_ceiling_from_the_generators_parameters_beats_the_subject_gain():
    from edgellm.metrics.routing_curves import curve_metrics, sweep

    matrix = synthetic.generate(6000, seed=2)
    outcomes = matrix.to_outcome_set()
    profile = synthetic.subject_profile()
    subject_gain = np.array([profile[s]["strong"] - profile[s]["weak"] for s in matrix.subjects])
    ceiling = synthetic.bayes_gain(matrix)
    assert ceiling.shape == (6000,) and np.all(np.abs(ceiling) <= 1)
    apgr = {name: curve_metrics(sweep(scores, outcomes))["APGR"]
            for name, scores in (("subject", subject_gain), ("ceiling", ceiling))}
    assert apgr["ceiling"] > apgr["subject"] + 0.01
