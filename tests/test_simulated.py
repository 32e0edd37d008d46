
import numpy as np
import pytest

from conftest import sample
from edgellm.models.tokens import estimate_tokens
from edgellm.models.simulated import SimulatedLLM, load_profile
from edgellm.tasks.multiple_choice import extract_choice, parse_options
from edgellm.tasks.registry import prompt_for

SUBJECTS = [f"subject{k}" for k in range(40)]


def items(n):
    return [sample(i, gold="ABCD"[i % 4], subject=SUBJECTS[i % 40]) for i in range(n)]


def correct(model, samples, seed=0):
    return np.array([r["prediction"] == s["gold"]
                     for r, s in zip(SimulatedLLM(model, seed=seed).generate_batch(samples),
                                     samples)])


def test_deterministic_in_seed_model_item():
    data = items(300)
    a = SimulatedLLM("Qwen/Qwen2.5-3B-Instruct", seed=1).generate_batch(data)
    b = SimulatedLLM("Qwen/Qwen2.5-3B-Instruct", seed=1).generate_batch(list(reversed(data)))
    assert a == list(reversed(b))  # per item, not per position
    c = SimulatedLLM("Qwen/Qwen2.5-3B-Instruct", seed=2).generate_batch(data)
    assert [r["prediction"] for r in a] != [r["prediction"] for r in c]


def test_single_and_batch_agree():
    data = items(50)
    llm = SimulatedLLM("gpt-4o-mini")
    assert [llm.generate(s) for s in data] == llm.generate_batch(data)


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                                   "gpt-4o-mini"])
def test_accuracy_follows_profile(model):
    target = load_profile(model).accuracy["multiple_choice"]
    acc = correct(model, items(20000)).mean()
    assert abs(acc - target) < 0.03, (acc, target)


def test_outcomes_correlated_so_oracle_beats_both_but_not_independence():
    data = items(20000)
    edge, cloud = correct("Qwen/Qwen2.5-1.5B-Instruct", data), correct("gpt-4o-mini", data)
    oracle = (edge | cloud).mean()
    assert oracle > max(edge.mean(), cloud.mean()) + 0.03
    independent = 1 - (1 - edge.mean()) * (1 - cloud.mean())
    assert oracle < independent - 0.03  # shared difficulty: errors overlap
    # Ianvs reports 82.22 % for this pair; the difficulty scale is fitted to land near it
    assert abs(oracle - 0.8222) < 0.03


def test_answers_are_real_option_strings():
    data = items(400)
    for s, r in zip(data, SimulatedLLM("Qwen/Qwen2.5-3B-Instruct").generate_batch(data)):
        options = parse_options(s["query"])
        letter = extract_choice(r["completion"])
        assert letter == r["prediction"] and letter in options
        assert options[letter] in r["completion"]  # this profile's template names the option


def test_timing_formulas_without_jitter():
    llm = SimulatedLLM("gpt-4o-mini", jitter=0.0)
    p = llm.profile
    # the model is sent the task's prompt template around the query
    template = len(prompt_for({"query": "", "task_type": "multiple_choice"}))
    s = sample(1, query="x" * (4 * p.ref_prompt_tokens - template))
    r = llm.generate(s)
    assert r["usage"]["prompt_tokens"] == p.ref_prompt_tokens
    assert r["perf"]["time_to_first_token"] == pytest.approx(p.ttft_s)
    n = r["usage"]["completion_tokens"]
    if n > 1:
        assert r["perf"]["internal_token_latency"] == pytest.approx(1 / p.decode_tokens_per_s)
    else:  # one token: no gap between tokens to measure (vLLM's TPOT leaves it out)
        assert r["perf"]["internal_token_latency"] is None
        assert r["perf"]["throughput"] is None
    assert r["perf"]["e2e_latency"] == pytest.approx(p.ttft_s + (n - 1) / p.decode_tokens_per_s)
    assert r["cost_usd"] == pytest.approx((p.ref_prompt_tokens * 0.15 + n * 0.60) / 1e6)
    assert r["perf"]["network_time"] == p.network_rtt_s
    assert r["tier"] == "cloud" and r["model"] == "gpt-4o-mini" and r["replayed"] is False


def test_jitter_spreads_latencies_around_the_formula():
    data = items(2000)
    ttft = np.array([r["perf"]["time_to_first_token"]
                     for r in SimulatedLLM("Qwen/Qwen2.5-7B-Instruct").generate_batch(data)])
    base = np.array([r["perf"]["time_to_first_token"] for r in
                     SimulatedLLM("Qwen/Qwen2.5-7B-Instruct", jitter=0.0).generate_batch(data)])
    assert np.median(ttft / base) == pytest.approx(1.0, abs=0.02)
    assert np.percentile(ttft / base, 99) > 1.2


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="no profile for model 'Qwen/Nope'.*known: Qwen"):
        SimulatedLLM("Qwen/Nope")


def test_token_estimate():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("你好 abcd") == 2 + 2


def test_non_multiple_choice_item_answers_gold_or_abstains():
    s = {"id": 7, "query": "Translate: 你好", "gold": "Hello", "task_type": "multiple_choice"}
    r = SimulatedLLM("gpt-4o-mini").generate(s)
    assert r["completion"] in ("Hello", "I am not sure.")


def test_memoised_responses_never_cross_items_with_another_gold():
    llm = SimulatedLLM("gpt-4o-mini", seed=3)
    # an item the model gets right, then the same id and text with another answer key
    item = next(s for s in items(50) if llm.generate(s)["prediction"] == s["gold"])
    other = dict(item, gold="ABCD"[("ABCD".index(item["gold"]) + 1) % 4])
    assert llm.generate(other)["prediction"] == other["gold"]


def five_type_items(n_per_type=150):
    """Small items of every distribution-center task type, made here."""
    rng = __import__("random").Random(1)
    words = "river market signal orbit cell theorem policy energy contract climate".split()
    out = []
    for i in range(n_per_type):
        sentence = " ".join(rng.choice(words) for _ in range(12))
        out += [
            {"id": f"tc{i}", "task_type": "text_classification", "query": f"{sentence} !",
             "gold": str(i % 6)},
            {"id": f"ner{i}", "task_type": "named_entity_recognition",
             "query": f"Ada Lovelace met Alan Turing in London near {words[i % 10]} .",
             "gold": "B-PER I-PER O B-PER I-PER O B-LOC O O O"},
            {"id": f"qa{i}", "task_type": "question_answering",
             "query": f"Which {words[i % 10]} is item {i}?", "gold": f"['answer {i}' 'ans {i}']"},
            {"id": f"ts{i}", "task_type": "translation", "query": "今天天气很好，我们去公园散步。",
             "gold": f"The weather is nice today so we go for a walk in park number {i} ."},
            {"id": f"sg{i}", "task_type": "summarization",
             "query": f"{sentence}. The council met on Monday. It approved budget {i}. "
                      "Residents welcomed the plan.",
             "gold": f"The council approved budget {i} and residents welcomed the plan."},
        ]
    return out


def test_every_task_type_is_answered_and_extraction_reads_the_same():
    from edgellm.tasks.extraction import extract_prediction

    data = five_type_items(20)
    for s, r in zip(data, SimulatedLLM("Qwen/Qwen2.5-3B-Instruct").generate_batch(data)):
        assert r["task_type"] == s["task_type"] and r["completion"]
        assert extract_prediction(s, r["completion"]) == r["prediction"]


def test_quality_per_task_type_follows_the_profile():
    from edgellm.metrics.joint_inference import METRICS

    data = five_type_items()
    y_true = [s["gold"] for s in data]

    def scores(model):
        out = SimulatedLLM(model, seed=4).generate_batch(data)
        y_pred = [[False, r, r, None] for r in out]
        return {name: METRICS[name](y_true, y_pred)
                for name in ("TC Accuracy", "NER F1", "QA F1", "TS BLEU", "SG ROUGE-L")}

    weak, strong = scores("Qwen/Qwen2.5-1.5B-Instruct"), scores("gpt-4o-mini")
    for name in weak:
        assert strong[name] > weak[name] + 5, (name, weak[name], strong[name])
    assert 15 < weak["TS BLEU"] < strong["TS BLEU"] < 90  # realistic, not word-for-word
