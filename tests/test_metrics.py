import math

import numpy as np
import pytest

from edgellm.metrics import joint_inference as m
from edgellm.records import make_response


def resp(pred, ttft, itl, n_out, tier="edge", p=10, error=None):
    return make_response(f"The answer is {pred}.", pred, p, n_out, ttft=ttft, itl=itl,
                         e2e=ttft + (n_out - 1) * itl, tier=tier, node=tier, model="m",
                         error=error)


@pytest.fixture
def results():
    e1 = resp("A", 0.1, 0.01, 3)           # edge, right
    e2 = resp("B", 0.2, 0.03, 5)           # edge, wrong (gold C)
    c1 = resp("C", 1.0, 0.002, 2, "cloud", p=20)  # cloud, right
    c2 = resp(None, 9.0, 0.5, 1, "cloud", p=30, error="HTTP 500")  # failed request
    y_true = ["A", "C", "C", "D"]
    y_pred = [[False, e1, e1, None], [False, e2, e2, None],
              [True, c1, None, c1], [True, c2, None, c2]]
    return y_true, y_pred


def test_accuracy_excludes_failed_requests(results):
    assert m.accuracy(*results) == pytest.approx(66.67)


def test_edge_ratio(results):
    assert m.edge_ratio(*results) == 50.0


def test_latency_means_exclude_errors(results):
    assert m.time_to_first_token(*results) == pytest.approx(round((0.1 + 0.2 + 1.0) / 3, 3))
    itl = (0.01 + 0.03 + 0.002) / 3
    assert m.internal_token_latency(*results) == round(itl, 3)
    assert m.throughput(*results) == round(1 / itl, 2)  # Ianvs: 1 / mean ITL


def test_token_sums_count_each_side(results):
    assert (m.edge_prompt_tokens(*results), m.edge_completion_tokens(*results)) == (20, 8)
    assert (m.cloud_prompt_tokens(*results), m.cloud_completion_tokens(*results)) == (50, 3)


def test_percentiles_match_numpy(results):
    ttft = [0.1, 0.2, 1.0]
    e2e = [0.1 + 2 * 0.01, 0.2 + 4 * 0.03, 1.0 + 0.002]
    assert m.METRICS["TTFT P50"](*results) == round(float(np.percentile(ttft, 50)), 4)
    assert m.METRICS["TTFT P99"](*results) == round(float(np.percentile(ttft, 99)), 4)
    assert m.METRICS["E2E Latency P90"](*results) == round(float(np.percentile(e2e, 90)), 4)


def test_system_throughput_over_sequential_duration(results):
    duration = 0.12 + 0.32 + 1.002
    assert m.request_throughput(*results) == round(3 / duration, 4)
    assert m.output_token_throughput(*results) == round(10 / duration, 4)
    assert m.errors(*results) == 1


def test_metrics_of_a_case_share_one_pass_but_never_mix_results(results):
    y_true, y_pred = results
    first = (m.time_to_first_token(*results), m.edge_prompt_tokens(*results), m.cost(*results))
    # another results list with other figures: its own values, not the cached ones
    fast = resp("A", 0.05, 0.01, 3, p=7)
    other = [[False, fast, fast, None]]
    assert m.time_to_first_token(["A"], other) == 0.05
    assert m.edge_prompt_tokens(["A"], other) == 7
    # the same list grown by a result is read afresh
    late = resp("A", 2.0, 0.01, 3, p=100)
    y_pred.append([False, late, late, None])
    y_true.append("A")
    assert m.time_to_first_token(y_true, y_pred) == round((0.1 + 0.2 + 1.0 + 2.0) / 4, 3)
    assert m.edge_prompt_tokens(y_true, y_pred) == first[1] + 100
    # task metrics keyed by the gold answers too: other golds, other accuracy
    assert m.METRICS["MC Accuracy"](y_true, y_pred) == 75.0
    assert m.METRICS["MC Accuracy"](["B", "B", "B", "B", "B"], y_pred) == 25.0


def test_empty_latency_is_nan():
    r = resp("A", 0.1, 0.01, 3, error="boom")
    assert math.isnan(m.time_to_first_token(["A"], [[False, r, r, None]]))
    assert math.isnan(m.accuracy(["A"], [[False, r, r, None]]))


def test_accuracy_extracts_from_completion_when_no_prediction():
    r = resp(None, 0.1, 0.01, 3)
    r["completion"] = "Answer: (C)"
    assert m.accuracy(["C"], [[False, r, r, None]]) == 100.0


def test_headline_accuracy_is_the_mean_of_primary_scores_over_task_types():
    from edgellm.tasks.scoring import score_task

    tc = make_response("happy", "happy", 5, 1, ttft=0.1, itl=0.01, e2e=0.1, tier="edge",
                       node="edge", model="m", task_type="text_classification")
    tc_wrong = dict(tc, prediction="sad", completion="sad")
    qa = make_response("Paris France", "Paris France", 5, 2, ttft=0.1, itl=0.01, e2e=0.11,
                       tier="edge", node="edge", model="m", task_type="question_answering")
    y_true = ["1", "1", "Paris"]
    y_pred = [[False, tc, tc, None], [False, tc_wrong, tc_wrong, None], [False, qa, qa, None]]
    qa_f1 = score_task("QA", ["Paris France"], [["Paris"]])["f1"]
    assert m.METRICS["TC Accuracy"](y_true, y_pred) == 50.0
    assert m.METRICS["QA F1"](y_true, y_pred) == round(qa_f1, 2)
    assert m.accuracy(y_true, y_pred) == round((50.0 + qa_f1) / 2, 2)
    assert math.isnan(m.METRICS["TS BLEU"](y_true, y_pred))


def recorded(score, tier="edge", task="multiple_choice"):
    """A response replayed from an outcome matrix: a score, no text."""
    r = make_response(None, None, 5, 1, ttft=0.1, itl=0.01, e2e=0.1, tier=tier, node=tier,
                      model="m", task_type=task)
    r["score"] = score
    return r


def test_recorded_scores_stand_for_correctness():
    # gold letters would make every one of these wrong: only the recorded score counts
    y_true = ["A", "B", "C", "D"]
    answers = [recorded(1.0), recorded(0.0), recorded(1.0, "cloud"), recorded(1.0, "cloud")]
    y_pred = [[r["tier"] == "cloud", r, None, None] for r in answers]
    assert m.accuracy(y_true, y_pred) == 75.0
    assert m.METRICS["MC Accuracy"](y_true, y_pred) == 75.0
    assert m.edge_ratio(y_true, y_pred) == 50.0


def test_recorded_scores_give_the_primary_score_only():
    y_true = ["ref one", "ref two"]
    y_pred = [[False, recorded(0.5, task="translation"), None, None],
              [False, recorded(0.25, task="translation"), None, None]]
    assert m.METRICS["TS BLEU"](y_true, y_pred) == 37.5
    assert math.isnan(m.METRICS["TS chrF"](y_true, y_pred))
    assert m.accuracy(y_true, y_pred) == 37.5


def test_cost_sums_each_side_including_escalated_edge_answers():
    e = resp("A", 0.1, 0.01, 3)
    e["cost_usd"] = 0.001
    c = resp("B", 1.0, 0.01, 3, "cloud")
    c["cost_usd"] = 0.02
    failed = resp(None, 1.0, 0.01, 3, "cloud", error="HTTP 500")
    failed["cost_usd"] = 0.0
    y_pred = [[True, c, e, c], [False, e, e, None], [True, failed, None, failed]]
    assert m.edge_cost(None, y_pred) == pytest.approx(0.002)
    assert m.cloud_cost(None, y_pred) == pytest.approx(0.02)
    assert m.cost(None, y_pred) == pytest.approx(0.022)


def test_price_table_and_overrides():
    from edgellm.models.pricing import price_for

    mini = price_for("gpt-4o-mini")
    assert mini.cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert price_for("openai/gpt-4o-mini") == mini  # provider prefixes are ignored
    assert price_for("Qwen/Qwen2.5-1.5B-Instruct").cost(10**6, 10**6, 3600) == 0.0
    edge = price_for("Qwen/Qwen2.5-1.5B-Instruct", cost_per_hour=0.36)
    assert edge.cost(0, 0, 10.0) == pytest.approx(0.001)
