"""``edgellm import`` (Ianvs' cache.json, outcome matrices, exports) and ``edgellm export``:
what lands in the store, what replaying it gives, and one-line errors for bad files."""

import csv
import json
import os
import sqlite3
from contextlib import closing
from types import SimpleNamespace

import pytest

from conftest import EXAMPLE, JOB, edit
from edgellm.bench.paradigm import JointInference
from edgellm.cli import main
from edgellm.metrics.catalog import METRICS
from edgellm.models.chat import ChatBackend, Generation, messages_for
from edgellm.models.replay import ReplayLLM
from edgellm.models.tiers import CloudModel, EdgeModel
from edgellm.routing.baselines import OracleRouter
from edgellm.tasks.processor import SampleProcessor

QUESTIONS = [
    ("Which planet is known as the red planet?\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn", "B"),
    ("What is 7 x 8?\nA. 54\nB. 56\nC. 64\nD. 48", "B"),
    ("Which gas do plants absorb?\nA. Oxygen\nB. Nitrogen\nC. Carbon dioxide\nD. Helium", "C"),
]
EDGE_CONFIG = {"model": "Qwen/Qwen2.5-7B-Instruct", "backend": "huggingface",
               "temperature": 1e-07, "top_p": 0.9, "max_tokens": 1024,
               "repetition_penalty": 1, "use_cache": True}
CLOUD_CONFIG = {"api_provider": "openai", "model": "gpt-4o-mini",
                "api_key_env": "OPENAI_API_KEY", "api_base_url": "OPENAI_BASE_URL",
                "temperature": 0.9, "top_p": 0.9, "max_tokens": 1024,
                "repetition_penalty": 1.05, "use_cache": True}


@pytest.fixture(autouse=True)
def _no_store_env():
    """Under Ianvs these name the store (edgellm.context); keep a developer's own out
    of the tests."""
    names = ("EDGELLM_STORE", "EDGELLM_STORE_MODE")
    saved = {name: os.environ.pop(name, None) for name in names}
    yield
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


def ianvs_result(query, gold, completion, ttft, itl, prompt_tokens, completion_tokens):
    """One item as Ianvs' BaseLLM._update_cache writes it."""
    response = {"completion": completion,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
                "perf": {"time_to_first_token": ttft, "internal_token_latency": itl,
                         "throughput": 1 / itl},
                "prediction": completion.strip()[-1]}
    return {"query": query, "response": response, "prediction": response["prediction"],
            "gold": gold}


def write_cache(path):
    """A cache.json in the format of Ianvs' cloud-edge LLM example (json.dump, indent 4)."""
    edge = [ianvs_result(q, g, f"The answer is {a}", 0.12, 0.02, 60 + i, 4)
            for i, ((q, g), a) in enumerate(zip(QUESTIONS, "BAC"))]
    cloud = [ianvs_result(q, g, f"Answer: {g}", 0.5, 0.01, 58 + i, 3)
             for i, (q, g) in enumerate(QUESTIONS)]
    with open(path, "w", encoding="utf-8") as handle:
        json.dump([{"config": EDGE_CONFIG, "result": edge},
                   {"config": CLOUD_CONFIG, "result": cloud}], handle, indent=4)


def processed(pairs):
    """Samples as edgellm's dataset processor makes them from Ianvs-format x and y."""
    x, y = zip(*pairs)
    return SampleProcessor()(SimpleNamespace(x=list(x), y=list(y))).x


def replay_backend(config, store, **params):
    settings = {k: config[k] for k in ("temperature", "top_p", "max_tokens",
                                       "repetition_penalty")}
    return ReplayLLM(config["model"], store=store, **settings, **params)


def count(store):
    if not os.path.exists(store):
        return None
    with closing(sqlite3.connect(store)) as conn:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_ianvs_cache_replays_under_the_messages_edgellm_sends(tmp_path, capsys):
    cache, store = str(tmp_path / "cache.json"), str(tmp_path / "responses.sqlite")
    write_cache(cache)
    assert main(["import", cache, "--store", store]) == 0
    assert "imported 6 responses" in capsys.readouterr().out

    samples = processed(QUESTIONS)
    edge = replay_backend(EDGE_CONFIG, store).generate_batch(samples)
    assert [r["completion"] for r in edge] == ["The answer is B", "The answer is A",
                                               "The answer is C"]
    assert [r["prediction"] for r in edge] == ["B", "A", "C"]
    assert all(r["replayed"] and r["tier"] == "edge" for r in edge)
    assert edge[1]["usage"] == {"prompt_tokens": 61, "completion_tokens": 4, "total_tokens": 65}
    assert edge[0]["perf"]["time_to_first_token"] == 0.12
    assert edge[0]["perf"]["internal_token_latency"] == 0.02
    assert edge[0]["perf"]["e2e_latency"] == pytest.approx(0.12 + 0.02 * 3)

    cloud = replay_backend(CLOUD_CONFIG, store, tier="cloud").generate_batch(samples)
    assert [r["prediction"] for r in cloud] == [g for _, g in QUESTIONS]
    assert cloud[0]["cost_usd"] == pytest.approx((58 * 0.15 + 3 * 0.60) / 1e6)  # today's price

    # other settings, or another system prompt, are other keys
    with pytest.raises(Exception, match="no stored response for 3 prompts"):
        replay_backend({**EDGE_CONFIG, "temperature": 0.0}, store).generate_batch(samples)
    with pytest.raises(Exception, match="no stored response for 3 prompts"):
        replay_backend(EDGE_CONFIG, store, system_prompt="Be brief.").generate_batch(samples)


def test_ianvs_cache_with_system_prompt_and_task_type(tmp_path):
    cache, store = str(tmp_path / "cache.json"), str(tmp_path / "responses.sqlite")
    write_cache(cache)
    assert main(["import", cache, "--store", store, "--task-type", "QA",
                 "--system-prompt", "You are a helpful assistant."]) == 0
    samples = [{"id": i, "query": q, "gold": g, "task_type": "question_answering"}
               for i, (q, g) in enumerate(QUESTIONS)]
    llm = replay_backend(CLOUD_CONFIG, store, system_prompt="You are a helpful assistant.")
    out = llm.generate_batch(samples)
    assert [r["completion"] for r in out] == [f"Answer: {g}" for _, g in QUESTIONS]
    with closing(sqlite3.connect(store)) as conn:
        stored = [json.loads(m) for (m,) in conn.execute("SELECT messages FROM responses")]
    assert messages_for(samples[0], "You are a helpful assistant.") in stored


def write_matrix(path, n_items, edge_right, cloud_right, by="id"):
    """An outcome matrix: one row per item and model, correctness and measurements."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([by, "model", "correct", "prompt_tokens", "completion_tokens", "ttft",
                         "e2e_latency", "tpot", "cost_usd"])
        for i in range(n_items):
            key = i if by == "id" else f"Question {i}?"
            writer.writerow([key, "edge-1b", int(edge_right(i)), 50, 5, 0.1, 0.3, 0.05, ""])
            writer.writerow([key, "gpt-4o-mini", "true" if cloud_right(i) else "false", 50, 5,
                             0.6, 1.2, 0.15, 0.0002])


def test_outcome_matrix_replays_accuracy_edge_ratio_and_oracle_routing(tmp_path):
    matrix, store = str(tmp_path / "outcomes.csv"), str(tmp_path / "responses.sqlite")
    n = 12
    edge_right, cloud_right = (lambda i: i % 3 != 0), (lambda i: i % 2 == 0)
    write_matrix(matrix, n, edge_right, cloud_right)
    assert main(["import", matrix, "--store", store]) == 0

    samples = processed([(f"Item {i}\nA. a\nB. b", "A") for i in range(n)])
    edge = EdgeModel(backend="replay", model="edge-1b", store=store, temperature=0.3)
    cloud = CloudModel(backend="replay", model="gpt-4o-mini", store=store)
    router = OracleRouter(edgemodel=edge, cloudmodel=cloud)
    results = JointInference(edge, cloud, router).run(samples)
    golds = [s["gold"] for s in samples]

    to_cloud = [i for i in range(n) if cloud_right(i) and not edge_right(i)]
    assert [i for i, r in enumerate(results) if r[0]] == to_cloud
    right = sum(cloud_right(i) if i in to_cloud else edge_right(i) for i in range(n))
    assert METRICS["Accuracy"](golds, results) == round(100 * right / n, 2)
    assert METRICS["Edge Ratio"](golds, results) == round(100 * (n - len(to_cloud)) / n, 2)
    assert METRICS["Cloud Cost"](golds, results) == pytest.approx(0.0002 * len(to_cloud))
    assert METRICS["Cloud Prompt Tokens"](golds, results) == 50 * len(to_cloud)
    ttft = [0.6 if i in to_cloud else 0.1 for i in range(n)]
    assert METRICS["Time to First Token"](golds, results) == round(sum(ttft) / n, 3)
    record = results[3][1]  # edge and cloud wrong: stays on the edge
    assert record["completion"] is None and record["prediction"] is None
    assert record["score"] == 0.0 and record["replayed"] and record["perf"]["tpot"] == 0.05

    all_cloud = [[True, r, None, r] for r in cloud.generate_batch(samples)]
    cloud_accuracy = round(100 * sum(map(cloud_right, range(n))) / n, 2)
    assert METRICS["Accuracy"](golds, all_cloud) == cloud_accuracy


def test_outcome_rows_match_on_query_text_when_they_give_one(tmp_path):
    matrix, store = str(tmp_path / "outcomes.csv"), str(tmp_path / "responses.sqlite")
    write_matrix(matrix, 4, lambda i: i == 2, lambda i: True, by="query")
    assert main(["import", matrix, "--store", store]) == 0
    # the dataset holds the items in another order: ids differ, queries match
    samples = [{"id": k, "query": f"Question {i}?", "gold": "A", "task_type": "multiple_choice"}
               for k, i in enumerate([3, 2, 1, 0])]
    out = ReplayLLM("edge-1b", store=store).generate_batch(samples)
    assert [r["score"] for r in out] == [0.0, 1.0, 0.0, 0.0]


def test_replayed_matrix_through_the_runner_with_store_options(example, capsys):
    n = 160  # the example's multiple-choice items
    edge_right, cloud_right = (lambda i: i % 3 != 0), (lambda i: i % 2 == 0)
    write_matrix("outcomes.csv", n, edge_right, cloud_right)
    with open("outcomes.csv") as handle:
        text = handle.read().replace("edge-1b", "Qwen/Qwen2.5-1.5B-Instruct")
    with open("outcomes.csv", "w") as handle:
        handle.write(text)
    assert main(["import", "outcomes.csv", "--store", "study.sqlite"]) == 0
    routing = f"{EXAMPLE}/testalgorithms/query-routing"
    edit(f"{routing}/oracle-router.yaml", 'values: ["simulated"]', 'values: ["replay"]')
    edit(f"{routing}/oracle-router.yaml",
         '"Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct"',
         '"Qwen/Qwen2.5-1.5B-Instruct"')
    for name in ("edge-only", "cloud-only", "random-router"):
        edit(JOB, f'      - name: "{name}"\n        url: "./{routing}/{name}.yaml"\n', "")
    assert main(["run", "-f", JOB, "--no-progress", "--store", "study.sqlite",
                 "--store-mode", "replay"]) == 0
    # the store options reach the backends through the run context, not the environment
    assert "EDGELLM_STORE" not in os.environ and "EDGELLM_STORE_MODE" not in os.environ
    assert not os.path.exists("workspace/responses.sqlite")
    with open("workspace/query-routing/rank/all_rank.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    to_cloud = [i for i in range(n) if cloud_right(i) and not edge_right(i)]
    right = sum(cloud_right(i) if i in to_cloud else edge_right(i) for i in range(n))
    assert float(row["Accuracy"]) == round(100 * right / n, 2)
    assert float(row["Edge Ratio"]) == round(100 * (n - len(to_cloud)) / n, 2)


class Echo(ChatBackend):
    def complete(self, messages):
        return Generation(text=f"Answer: {messages[-1]['content'][-1]}", prompt_tokens=7,
                          completion_tokens=2, token_times=[0.1, 0.2])


def test_export_import_round_trip(tmp_path, capsys):
    first, second = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    cache, matrix = str(tmp_path / "cache.json"), str(tmp_path / "outcomes.csv")
    write_cache(cache)
    write_matrix(matrix, 3, lambda i: True, lambda i: False)
    assert main(["import", cache, matrix, "--store", first]) == 0
    recorded = processed([(f"Q{i}?\nA. x\nB. y", "A") for i in range(4)])
    Echo("echo-1", store=first, seed=3, stop=["\n"]).generate_batch(recorded)
    assert main(["export", str(tmp_path / "a.jsonl"), "--store", first]) == 0
    assert "exported 16 responses" in capsys.readouterr().out

    assert main(["import", str(tmp_path / "a.jsonl"), "--store", second]) == 0
    assert main(["export", str(tmp_path / "b.jsonl"), "--store", second]) == 0
    exported = (tmp_path / "a.jsonl").read_bytes()
    assert exported == (tmp_path / "b.jsonl").read_bytes()
    assert len(exported.splitlines()) == 16 == count(second)

    # the copy replays what the original does
    again = Echo("echo-1", store=second, seed=3, stop=["\n"], store_mode="replay")
    assert [r["completion"] for r in again.generate_batch(recorded)] == \
        [r["completion"] for r in Echo("echo-1", store=first, seed=3, stop=["\n"],
                                       store_mode="replay").generate_batch(recorded)]
    assert main(["export", str(tmp_path / "one.jsonl"), "--store", second,
                 "--model", "gpt-4o-mini"]) == 0
    lines = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {line["model"] for line in lines} == {"gpt-4o-mini"}

    # importing it again adds nothing
    assert main(["import", str(tmp_path / "a.jsonl"), "--store", second]) == 0
    assert "(0 new, 16 replaced" in capsys.readouterr().out and count(second) == 16


CACHE_OK = [{"config": {"model": "m"}, "result": [
    {"query": "q", "response": {"completion": "A"}, "prediction": "A", "gold": "A"}]}]


@pytest.mark.parametrize("name, content, expected", [
    ("cache.json", "{not json", "cache.json: invalid JSON"),
    ("cache.json", json.dumps({"config": {}}), "cache.json: expected a JSON list"),
    ("cache.json", json.dumps([{"config": {"temperature": 0.1}, "result": []}]),
     "cache.json: [0].config.model: missing"),
    ("cache.json", json.dumps([{"config": {"model": "m", "top_p": "high"}, "result": []}]),
     "cache.json: [0].config.top_p: 'high' is not a number"),
    ("cache.json", json.dumps(CACHE_OK + [{"config": {"model": "m"}, "result": [
        {"query": "q"}, {"query": "r", "response": {"usage": {}}}]}]),
     "cache.json: [1].result[0].response.completion: missing"),
    ("cache.json", json.dumps([{"config": {"model": "m"}, "result": [
        {"query": "q", "response": {"completion": "A", "usage": {"prompt_tokens": -3}}}]}]),
     "cache.json: [0].result[0].response.usage.prompt_tokens: -3 is not a number >= 0"),
    ("m.csv", "id,model,correct\n0,a,1\n1,a,maybe\n",
     "m.csv:3: field 'correct': 'maybe' is not true/false or 1/0"),
    ("m.csv", "id,model,score\n0,a,1.5\n", "m.csv:2: field 'score': '1.5' is not between 0 and 1"),
    ("m.csv", "id,model\n0,a\n", "m.csv:2: field 'correct': missing"),
    ("m.csv", "id,correct\n0,1\n", "m.csv:2: field 'model': missing"),
    ("m.csv", "model,correct\na,1\n", "m.csv:2: field 'item_id': missing"),
    ("m.csv", "id,model,correct,ttft\n0,a,1,soon\n",
     "m.csv:2: field 'ttft': 'soon' is not a number"),
    ("m.csv", "id,model,correct,completion_tokens\n0,a,1,2.5\n",
     "m.csv:2: field 'completion_tokens': '2.5' is not a whole number"),
    ("m.csv", "id,model,correct,task_type\n0,a,1,poetry\n",
     "m.csv:2: field 'task_type': unknown task type 'poetry'"),
    ("m.csv", "id,model,correct\n0,a,1\n1,a,1\n0,a,0\n",
     "m.csv:4: field 'item_id': model 'a' has this item already at line 2"),
    ("m.jsonl", '{"id": 0, "model": "a", "correct": true}\n[1, 2]\n',
     "m.jsonl:2: expected a JSON object"),
    ("e.jsonl", '{"edgellm_store": 1, "model": "a", "settings": {}, "response": {}}\n',
     "e.jsonl:1: field 'messages': missing"),
    ("e.jsonl", '{"edgellm_store": 7, "model": "a"}\n',
     "e.jsonl:1: field 'edgellm_store': 7 is not a store format"),
    ("notes.txt", "hello", "notes.txt: unknown format"),
])
def test_bad_files_are_one_line_errors_and_leave_the_store_alone(tmp_path, monkeypatch, capsys,
                                                                  name, content, expected):
    monkeypatch.chdir(tmp_path)
    good = "good.csv"
    write_matrix(good, 2, lambda i: True, lambda i: True)
    (tmp_path / name).write_text(content, encoding="utf-8")
    assert main(["import", good, name, "--store", "s.sqlite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edgellm: error: {expected}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert count("s.sqlite") is None  # the good file was not imported either


def test_other_bad_arguments_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_cache("cache.json")
    for argv, expected in [
            (["import", "missing.csv"], "missing.csv: file not found"),
            (["import", "cache.json", "--task-type", "haiku"],
             "--task-type: unknown task type 'haiku'"),
            (["export", "out.jsonl", "--store", "none.sqlite"],
             f"{tmp_path / 'none.sqlite'}: no response store here")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"edgellm: error: {expected}") and err.count("\n") == 1, err
    assert not os.path.exists("out.jsonl") and not os.path.exists("workspace")


def test_an_export_whose_write_fails_is_one_line(tmp_path, monkeypatch, capsys):
    """A disk that fills up (or any OSError) while writing: one line naming the file."""
    monkeypatch.chdir(tmp_path)
    write_matrix("m.csv", 2, lambda i: True, lambda i: False)
    assert main(["import", "m.csv", "--store", "s.sqlite"]) == 0
    capsys.readouterr()

    def full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("edgellm.models.importers.write_text", full)
    assert main(["export", "out.jsonl", "--store", "s.sqlite"]) == 2
    assert capsys.readouterr().err == \
        "edgellm: error: out.jsonl: cannot be written: No space left on device\n"
    assert not os.path.exists("out.jsonl")
