"""The huggingface backend on the CPU, with a tiny random model the tests build."""

import csv
import dataclasses
import json
import os
import shutil
import sys

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import EXAMPLE, JOB  # noqa: E402
from edgellm.cli import main  # noqa: E402
from edgellm.models import check_backend  # noqa: E402
from edgellm.models.chat import messages_for, timing_of  # noqa: E402
from edgellm.models.huggingface import HuggingFaceLLM  # noqa: E402
from edgellm.tasks.registry import prompt_for  # noqa: E402
from tiny_model import tiny_model  # noqa: E402,F401  (session fixture)

QUESTION = "Question: Solve for x: 3x - 7 = 11.\nA. 18\nB. 4\nC. 6\nD. 4/3"
MESSAGES = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def reference(tiny_model):
    """The tiny model and tokenizer loaded straight with transformers, to check the
    backend against."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    return model, tokenizer


def backend(path, **params):
    return HuggingFaceLLM(model=path, store="none", device="cpu", **params)


@pytest.fixture(scope="module")
def greedy(tiny_model):
    """One greedy backend, loaded once for the tests that need no other settings."""
    return backend(tiny_model, max_tokens=12)


def chat_ids(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                         return_dict=False)


def reference_greedy(reference, messages, max_new_tokens):
    model, tokenizer = reference
    ids = torch.tensor([chat_ids(tokenizer, messages)])
    return model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                          max_new_tokens=max_new_tokens)[0, ids.shape[1]:]


def test_greedy_output_is_plain_greedy_decoding_and_repeats(tiny_model, reference, greedy):
    _, tokenizer = reference
    first = greedy.complete(MESSAGES)
    assert first.text.strip()
    again = greedy.complete(MESSAGES)
    fresh = backend(tiny_model, max_tokens=12).complete(MESSAGES)  # loaded anew
    for other in (again, fresh):
        assert (other.text, other.completion_tokens) == (first.text, first.completion_tokens)

    expected = reference_greedy(reference, MESSAGES, 12)
    assert first.text == tokenizer.decode(expected, skip_special_tokens=True)
    assert first.completion_tokens == len(expected)

    other = greedy.complete([{"role": "user", "content": "Translate: the cloud answers."}])
    assert other.text != first.text


def test_token_counts_come_from_the_chat_template(tiny_model, reference, greedy):
    _, tokenizer = reference
    generation = greedy.complete(MESSAGES)
    assert generation.prompt_tokens == len(chat_ids(tokenizer, MESSAGES))
    # the template wraps the question in role markers: more tokens than the bare text
    assert generation.prompt_tokens > len(tokenizer(QUESTION)["input_ids"])

    sample = {"query": QUESTION, "task_type": "multiple_choice", "gold": "C", "id": 0}
    greedy.system_prompt = "Be brief."
    try:
        response = greedy.generate(sample)
    finally:
        greedy.system_prompt = None
    messages = messages_for(sample, "Be brief.")
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert response["usage"]["prompt_tokens"] == len(chat_ids(tokenizer, messages))


def test_max_tokens_is_respected(tiny_model, reference, greedy):
    short = backend(tiny_model, max_tokens=3).complete(MESSAGES)
    expected = reference_greedy(reference, MESSAGES, 3)
    assert short.completion_tokens == len(expected) <= 3
    assert greedy.complete(MESSAGES).text.startswith(short.text)


def test_every_token_is_timed(greedy):
    generation = greedy.complete(MESSAGES)
    times = generation.token_times
    assert len(times) == generation.completion_tokens > 1
    assert all(b >= a for a, b in zip(times, times[1:]))
    assert 0 < times[0] <= times[-1] <= generation.e2e
    ttft, gaps, tpot, e2e = timing_of(generation)
    assert ttft == times[0] and e2e == generation.e2e
    assert len(gaps) == generation.completion_tokens - 1
    assert tpot == pytest.approx((e2e - ttft) / (generation.completion_tokens - 1))

    response = greedy.generate(
        {"query": QUESTION, "task_type": "multiple_choice", "gold": "C", "id": 0})
    perf = response["perf"]
    assert len(perf["itl"]) == response["usage"]["completion_tokens"] - 1
    assert 0 < perf["time_to_first_token"] <= perf["e2e_latency"]
    assert perf["internal_token_latency"] == pytest.approx(perf["tpot"])


def test_mean_logprob_matches_a_forward_pass(tiny_model, reference, greedy):
    model, tokenizer = reference
    generation = greedy.complete(MESSAGES)
    prompt = chat_ids(tokenizer, MESSAGES)
    completion = reference_greedy(reference, MESSAGES, 12).tolist()
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1]
    expected = torch.log_softmax(logits, -1).gather(1, ids[0, len(prompt):, None]).mean()
    assert generation.mean_logprob == pytest.approx(float(expected), abs=1e-4)
    assert backend(tiny_model, max_tokens=2, logprobs=False).complete(MESSAGES) \
        .mean_logprob is None


def test_sampling_follows_the_seed(tiny_model, greedy):
    seeded = backend(tiny_model, max_tokens=12, temperature=1.0, seed=1)
    first = seeded.complete(MESSAGES).text
    assert seeded.complete(MESSAGES).text == first  # reseeded for every request
    seeded.settings = dataclasses.replace(seeded.settings, seed=2)
    assert seeded.complete(MESSAGES).text != first
    assert first != greedy.complete(MESSAGES).text


def test_the_model_folders_sampling_defaults_are_not_applied(tiny_model, tmp_path, greedy):
    folder = tmp_path / "opinionated"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.3, top_k=2, repetition_penalty=5.0,
                  no_repeat_ngram_size=1, max_length=4)  # as some hub models ship
    (folder / "generation_config.json").write_text(json.dumps(config))
    generation = backend(str(folder), max_tokens=12).complete(MESSAGES)
    expected = greedy.complete(MESSAGES)
    assert (generation.text, generation.completion_tokens) == \
        (expected.text, expected.completion_tokens)


def test_stop_string_ends_the_text(tiny_model, greedy):
    full = greedy.complete(MESSAGES).text
    stop = full[len(full) // 2:len(full) // 2 + 2]
    cut = backend(tiny_model, max_tokens=12, stop=[stop]).complete(MESSAGES)
    assert stop not in cut.text and full.startswith(cut.text)
    assert len(cut.text) < len(full)


def test_dtype_is_part_of_the_store_key_and_device_is_not(tiny_model, greedy):
    assert greedy.store_settings()["dtype"] == "auto"
    assert greedy.loaded()[0].dtype == torch.float32  # auto on the CPU
    half = backend(tiny_model, dtype="bfloat16", max_tokens=3)
    assert half.store_settings()["dtype"] == "bfloat16"
    assert 1 <= half.complete(MESSAGES).completion_tokens <= 3
    assert half.loaded()[0].dtype == torch.bfloat16
    assert "device" not in greedy.store_settings()
    assert greedy.store_settings()["logprobs"] is True
    assert "logprobs" not in backend(tiny_model, logprobs=False).store_settings()


def test_check_names_what_is_wrong(tiny_model, tmp_path, monkeypatch):
    check_backend("huggingface", {"model": tiny_model})  # fine
    with pytest.raises(ValueError, match="model folder not found: ./no/such/folder"):
        check_backend("huggingface", {"model": "./no/such/folder"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no config.json"):
        check_backend("huggingface", {"model": str(tmp_path / "empty")})
    with pytest.raises(ValueError, match="device must be one of"):
        check_backend("huggingface", {"model": tiny_model, "device": "gpu"})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            check_backend("huggingface", {"model": tiny_model, "device": "cuda"})
    with pytest.raises(ValueError, match="dtype must be one of"):
        check_backend("huggingface", {"model": tiny_model, "dtype": "float8"})
    # a hub id is left to transformers, unless offline and not in the cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    check_backend("huggingface", {"model": "Qwen/Qwen2.5-1.5B-Instruct"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not in the Hugging Face cache"):
        check_backend("huggingface", {"model": "Qwen/Qwen2.5-1.5B-Instruct"})


def test_check_without_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if absent
    with pytest.raises(ValueError, match=r"needs torch and transformers: pip install "
                                         r"'edgellm\[huggingface\]'"):
        check_backend("huggingface", {"model": "./anything"})


def test_missing_chat_template_is_a_clear_error(tiny_model, tmp_path):
    folder = tmp_path / "no-template"
    shutil.copytree(tiny_model, folder)
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="has no chat template"):
        backend(str(folder)).complete(MESSAGES)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_cuda_gpu(tiny_model, reference):
    _, tokenizer = reference
    on_gpu = HuggingFaceLLM(model=tiny_model, store="none", max_tokens=8)  # device auto
    assert on_gpu.device == "cuda"
    first, second = on_gpu.complete(MESSAGES), on_gpu.complete(MESSAGES)
    assert next(on_gpu.loaded()[0].parameters()).is_cuda
    assert first.text == second.text
    assert first.prompt_tokens == len(chat_ids(tokenizer, MESSAGES))
    assert 1 <= first.completion_tokens == len(first.token_times) <= 8
    assert 0 < first.token_times[0] <= first.token_times[-1] <= first.e2e
    on_gpu.close()
    assert on_gpu._model is None


# -- a whole job through the runner ----------------------------------------------

ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
N_ITEMS = 5
MAX_TOKENS = 6


def _hf_job(model_path, store):
    """The example job cut to one EdgeOnly case on the huggingface backend and
    N_ITEMS questions; returns the job file."""
    algorithm = yaml.safe_load(open(f"{ROUTING}/edge-only.yaml"))
    for module in algorithm["algorithm"]["modules"]:
        if module["type"] == "edgemodel":
            module["hyperparameters"] = [
                {"backend": {"values": ["huggingface"]}}, {"model": {"values": [model_path]}},
                {"max_tokens": {"values": [MAX_TOKENS]}}, {"store": {"values": [store]}}]
    yaml.safe_dump(algorithm, open(f"{ROUTING}/hf-edge.yaml", "w"))
    job = yaml.safe_load(open(JOB))
    job["benchmarkingjob"]["test_object"]["algorithms"] = [
        {"name": "hf-edge", "url": f"./{ROUTING}/hf-edge.yaml"}]
    yaml.safe_dump(job, open(f"{EXAMPLE}/hf-job.yaml", "w"))
    data = f"{EXAMPLE}/dataset/mcq/test_data/data.jsonl"
    lines = open(data).readlines()[:N_ITEMS]
    open(data, "w").writelines(lines)
    return f"{EXAMPLE}/hf-job.yaml", [json.loads(line) for line in lines]


def _run(job_file):
    assert main(["run", "-f", job_file, "--no-progress"]) == 0
    with open("workspace/query-routing/rank/all_rank.csv", newline="") as handle:
        row = list(csv.DictReader(handle))[-1]
    with open(os.path.join(row["url"], "results.jsonl")) as handle:
        return row, [json.loads(line) for line in handle]


def test_job_on_the_huggingface_backend(example, tiny_model, reference, capsys):
    _, tokenizer = reference
    job_file, items = _hf_job(tiny_model, "none")
    row, records = _run(job_file)
    assert len(records) == N_ITEMS
    edge = [r["edge"] for r in records]
    assert all(r["cloud"] is None and not r["is_hard"] for r in records)
    for item, response in zip(items, edge):
        messages = [{"role": "user",
                     "content": prompt_for({"query": item["query"],
                                            "task_type": "multiple_choice"})}]
        assert response["usage"]["prompt_tokens"] == len(chat_ids(tokenizer, messages))
        n = response["usage"]["completion_tokens"]
        assert 1 <= n <= MAX_TOKENS
        perf = response["perf"]
        assert perf["time_to_first_token"] > 0 and len(perf["itl"]) == n - 1
        assert perf["e2e_latency"] >= perf["time_to_first_token"]
        assert response["model"] == tiny_model and response["replayed"] is False
    assert float(row["Edge Ratio"]) == 100.0
    assert int(row["Edge Prompt Tokens"]) == sum(r["usage"]["prompt_tokens"] for r in edge)
    assert int(row["Edge Completion Tokens"]) == sum(r["usage"]["completion_tokens"]
                                                     for r in edge)
    assert int(row["Cloud Prompt Tokens"]) == 0
    ttft = sum(r["perf"]["time_to_first_token"] for r in edge) / N_ITEMS
    assert float(row["Time to First Token"]) == round(ttft, 3)
    right = sum(r["prediction"] == item["response"] for r, item in zip(edge, items))
    assert float(row["Accuracy"]) == round(100.0 * right / N_ITEMS, 2)


def test_second_run_replays_from_the_store(example, tiny_model, capsys):
    pytest.importorskip("edgellm.models.store")
    job_file, _ = _hf_job(tiny_model, "workspace/responses.sqlite")
    _, first = _run(job_file)
    _, second = _run(job_file)
    assert all(not r["edge"]["replayed"] for r in first)
    assert all(r["edge"]["replayed"] for r in second)
    for a, b in zip(first, second):
        assert a["edge"]["completion"] == b["edge"]["completion"]
        assert a["edge"]["usage"] == b["edge"]["usage"]
        assert a["edge"]["perf"]["time_to_first_token"] == \
            b["edge"]["perf"]["time_to_first_token"]  # the recorded timing, not a new one
