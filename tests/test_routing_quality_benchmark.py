"""benchmarks/routing_quality.py's RouteLLM reader (--routellm), on a small fabricated
checkout in RouteLLM's layout (the tests download nothing), and its population figures
(--population)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "routing_quality.py"


def routing_quality_benchmark():
    import importlib.util

    spec = importlib.util.spec_from_file_location("routing_quality", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_routellm(root, weak, strong):
    """A RouteLLM checkout's evals folder, small: two MMLU subjects (domains.py orders
    anatomy first), a GSM8K file with response columns, and each benchmark's
    contaminated_prompts.jsonl."""
    evals = root / "routellm" / "evals"
    (evals / "mmlu" / "responses").mkdir(parents=True)
    (evals / "gsm8k").mkdir()
    (evals / "mmlu" / "domains.py").write_text(
        'ALL_MMLU_DOMAINS = [\n    "anatomy",\n    "abstract_algebra",\n]\n')
    pd.DataFrame({"prompt": ["What is 2+2?\nA. 3\nB. 4\nAnswer:", "Which group?",
                             "Leaked question?"],
                  weak: [True, False, True], strong: [True, True, False]}).to_csv(
        evals / "mmlu" / "responses" / "mmlu_abstract_algebra.csv", index=False)
    pd.DataFrame({"prompt": ["Which nerve?"], weak: [False], strong: [False]}).to_csv(
        evals / "mmlu" / "responses" / "mmlu_anatomy.csv", index=False)
    pd.DataFrame({"prompt": ["Janet's ducks?", "A robe?", "Leaked sum?"],
                  weak: [True, False, False], strong: [True, True, True],
                  f"{weak}_response": ["18", "3", "1"], f"{strong}_response": ["18", "3", "2"]}
                 ).to_csv(evals / "gsm8k" / "gsm8k_responses.csv", index=False)
    for benchmark, prompt in (("mmlu", "Leaked question?"), ("gsm8k", "Leaked sum?")):
        (evals / benchmark / "contaminated_prompts.jsonl").write_text(json.dumps(
            {"train_prompt": "x", "eval_prompt": prompt, "train_idx": 1, "eval_idx": 2}) + "\n")
    return evals


def test_routellm_files_read_in_routellm_s_order_and_decontaminated(tmp_path):
    """benchmarks/routing_quality.py --routellm: RouteLLM's per-subject CSVs (prompt,
    one true/false column per model) become one item per row, in ALL_MMLU_DOMAINS'
    order, subject from the file, the contaminated prompts dropped, as RouteLLM's
    evaluation reads them; GSM8K likewise, without a subject."""
    bench = routing_quality_benchmark()
    weak, strong = bench.ROUTELLM_MODELS
    evals = fake_routellm(tmp_path, weak, strong)
    for folder in (tmp_path, evals, evals / "mmlu" / "responses"):  # any of these finds it
        outcomes, what = bench.read_routellm(str(folder))
        assert outcomes.subjects == ["anatomy", "abstract_algebra", "abstract_algebra"]
    assert "3 of 4 items after its decontamination" in what
    assert outcomes.queries[2] == "Which group?" and "Leaked question?" not in outcomes.queries
    assert outcomes.edge_score.tolist() == [0.0, 1.0, 0.0]
    assert outcomes.cloud_score.tolist() == [0.0, 1.0, 1.0]
    assert outcomes.ids == ["0", "1", "2"]
    assert outcomes.edge_model == weak and outcomes.cloud_model == strong
    assert bench.read_routellm(str(tmp_path), "mmlu", {"anatomy"})[0].subjects == \
        ["abstract_algebra"] * 2
    gsm8k, what = bench.read_routellm(str(tmp_path), "gsm8k")
    assert gsm8k.queries == ["Janet's ducks?", "A robe?"] and gsm8k.subjects == [None, None]
    assert gsm8k.edge_score.tolist() == [1.0, 0.0] and "GSM8K" in what


def test_routellm_bad_files_exit_with_one_line_naming_them(tmp_path):
    bench = routing_quality_benchmark()
    with pytest.raises(bench.InputError, match="not a RouteLLM checkout"):
        bench.read_routellm(str(tmp_path))
    weak, strong = bench.ROUTELLM_MODELS
    evals = fake_routellm(tmp_path, weak, strong)
    path = evals / "mmlu" / "responses" / "mmlu_anatomy.csv"
    pd.DataFrame({"prompt": ["Which nerve?"], "gpt-4-1106-preview": [True]}).to_csv(path,
                                                                                    index=False)
    with pytest.raises(bench.InputError) as error:
        bench.read_routellm(str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "Mixtral" in message
    pd.DataFrame({"prompt": ["Which nerve?"], weak: ["maybe"], strong: [True]}).to_csv(
        path, index=False)
    with pytest.raises(bench.InputError, match="true/false"):
        bench.read_routellm(str(tmp_path))
    (evals / "mmlu" / "domains.py").write_text("DOMAINS = []\n")
    with pytest.raises(bench.InputError, match="no ALL_MMLU_DOMAINS list"):
        bench.read_routellm(str(tmp_path))
    (evals / "mmlu" / "domains.py").write_text("ALL_MMLU_DOMAINS = ['anatomy']\n")
    (evals / "mmlu" / "contaminated_prompts.jsonl").unlink()
    pd.DataFrame({"prompt": ["Which nerve?"], weak: [True], strong: [True]}).to_csv(
        path, index=False)
    with pytest.raises(bench.InputError, match="contaminated_prompts.jsonl: not found"):
        bench.read_routellm(str(tmp_path))
    (evals / "mmlu" / "contaminated_prompts.jsonl").write_text('{"eval_prompt": "x"}\n{oops\n')
    with pytest.raises(bench.InputError, match=r"contaminated_prompts.jsonl:2: not a JSON"):
        bench.read_routellm(str(tmp_path))
    # the command: that one line on stderr, exit status 2, no traceback
    done = subprocess.run([sys.executable, str(BENCHMARK), "--routellm", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {evals / 'mmlu' / 'contaminated_prompts.jsonl'}:2: not a JSON object with "
        "an eval_prompt (RouteLLM's decontamination list)"]


def test_population_figures_are_the_configurations_own_on_fresh_items():
    """--population: AutoRouter's and every configuration's APGR on fresh items of the
    generator; the truly best is the configuration with the highest of those, and its
    test-half APGR is the one reported beside it."""
    import argparse

    import numpy as np

    from edgellm.report import router_curves

    module = routing_quality_benchmark()
    matrix, outcomes = module.synthetic_outcomes(600, 3)
    _, population = module.synthetic_outcomes(1500, module.POPULATION_SEED + 3)
    assert not set(outcomes.queries) & set(population.queries)  # fresh items
    train, test = outcomes.split(0.5, seed=0)
    args = argparse.Namespace(folds=3, jobs=1, embeddings=False, ensemble=5)
    summary = module.auto_run(train, test, matrix, args, population)
    router = module.AutoRouter(folds=3, seed=0, n_jobs=1, ensemble=5).fit(
        train.samples(), np.c_[train.edge_score > 0.5, train.cloud_score > 0.5])
    assert summary["pop"] == pytest.approx(module.population_apgr(router, population))
    candidates = router.candidates(train.samples())
    figures = [module.evaluate_candidate(c, train, test, population) for c in candidates]
    truly = int(np.nanargmax([f["population APGR"] for f in figures]))
    assert summary["pop_best"] == pytest.approx(figures[truly]["population APGR"])
    assert summary["best_true_on_test"] == pytest.approx(figures[truly]["APGR"])
    assert summary["pop_random"] == pytest.approx(
        router_curves.baselines(population)[0].metrics["APGR"])
