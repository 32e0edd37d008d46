"""Latency and token figures that stay true on real servers: a one-token answer has no
TPOT; a server that streams no usage is counted with the model's tokenizer where one is
reachable, and the leaderboard says where counts are estimates; a metric over nothing
is empty, with one line saying why. The main job's metrics, against values by hand."""

import csv
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from conftest import EXAMPLE, edit
from edgellm.cli import main
from edgellm.models.token_counts import TokenCounter
from edgellm.testing.openai_server import LoopbackOpenAIServer, prompt_text
from tiny_model import tiny_model  # noqa: F401  (session fixture)

ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
DATA = f"{EXAMPLE}/dataset/mcq/test_data/data.jsonl"
N = 24


def job_on(edge, cloud, router="RandomRouter"):
    """The example's main job, one algorithm (``router``, simulated models replaced by
    the two loopback servers), on the first N items."""
    lines = Path(DATA).read_text(encoding="utf-8").splitlines(keepends=True)
    Path(DATA).write_text("".join(lines[:N]), encoding="utf-8")
    name = {"RandomRouter": "random-router", "EdgeOnly": "edge-only"}[router]
    algorithm = f"{ROUTING}/{name}.yaml"
    for side, server in (("Qwen/Qwen2.5-1.5B-Instruct\", \"Qwen/Qwen2.5-3B-Instruct\", "
                          "\"Qwen/Qwen2.5-7B-Instruct", edge), ("gpt-4o-mini", cloud)):
        edit(algorithm, f'values: ["simulated"]\n        - model:\n            values: ["{side}"]',
             'values: ["openai"]\n        - model:\n            values: ["loopback"]\n'
             f'        - base_url:\n            values: ["{server.base_url}"]\n'
             '        - api_key_env:\n            values: ["none"]\n'
             '        - max_concurrency:\n            values: [4]\n'
             '        - store:\n            values: ["none"]')
    job = Path(f"{EXAMPLE}/benchmarkingjob.yaml").read_text()
    keep = f'      - name: "{name}"\n        url: "./{algorithm}"\n'
    start = job.index("    algorithms:\n") + len("    algorithms:\n")
    end = job.index("  rank:")
    Path(f"{EXAMPLE}/benchmarkingjob.yaml").write_text(job[:start] + keep + job[end:])
    return f"{EXAMPLE}/benchmarkingjob.yaml"


def row_and_records():
    with open("workspace/query-routing/rank/all_rank.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    with open(os.path.join(row["url"], "results.jsonl")) as handle:
        return row, [json.loads(line) for line in handle]


def test_one_token_answers_have_no_tpot_and_counts_without_usage(example, capsys):
    one_token = LoopbackOpenAIServer(first_token_delay=0.005, token_delay=0.002,
                                     completion_tokens=1)
    no_usage = LoopbackOpenAIServer(first_token_delay=0.005, token_delay=0.002,
                                    completion_tokens=6, send_usage=False)
    with one_token, no_usage:
        job = job_on(one_token, no_usage)
        assert main(["run", "-f", job, "--no-progress"]) == 0
    out = capsys.readouterr().out
    row, records = row_and_records()
    answers = [r["cloud"] if r["is_hard"] else r["edge"] for r in records]
    edge = [a for a in answers if a["tier"] == "edge"]
    cloud = [a for a in answers if a["tier"] == "cloud"]
    assert edge and cloud
    # one-token answers: no gap between tokens, so no TPOT (was 0.0)
    assert all(a["usage"]["completion_tokens"] == 1 for a in edge)
    assert all(a["perf"]["internal_token_latency"] is None for a in edge)
    assert all(a["perf"]["throughput"] is None for a in edge)
    # Internal Token Latency and Throughput come from the cloud's 6-token answers only
    gaps = np.array([a["perf"]["internal_token_latency"] for a in cloud])
    assert float(row["Internal Token Latency"]) == round(float(gaps.mean()), 3)
    assert float(row["Throughput"]) == round(1.0 / float(gaps.mean()), 2)
    assert float(row["Throughput"]) < 2000  # not the 240,517.92 tokens/s a 0 gap gave
    ttft = np.array([a["perf"]["time_to_first_token"] for a in answers])
    assert float(row["Time to First Token"]) == round(float(ttft.mean()), 3)
    # the cloud server sends no usage and has no tokenize endpoint: estimated, and said
    assert all(a["usage_estimated"] and a["usage_source"] == "estimated" for a in cloud)
    assert int(row["Estimated Token Counts"]) == len(cloud)
    assert int(row["Cloud Completion Tokens"]) == 6 * len(cloud)  # its chunks
    assert "estimated token counts" in out and f"random-router" in out


def test_an_edge_only_case_of_one_token_answers_has_empty_gaps_with_a_reason(example, capsys):
    with LoopbackOpenAIServer(first_token_delay=0.005, completion_tokens=1) as server:
        job = job_on(server, server, router="EdgeOnly")
        assert main(["run", "-f", job, "--no-progress"]) == 0
    out = capsys.readouterr().out
    row, _ = row_and_records()
    assert row["Throughput"] == "" and row["Internal Token Latency"] == ""  # NaN, not 0
    # the note wraps at the table's width, its next lines indented
    note = re.search(r"^empty cells:.*(?:\n  .*)*", out, re.M)[0].replace("\n  ", " ")
    assert "Throughput, Internal Token Latency" in note
    assert "no answer has two or more output tokens" in note
    assert not math.isinf(float(row["Time to First Token"]))


def test_a_server_tokenize_endpoint_counts_what_usage_would(example, capsys):
    """A server without usage but with llama-cpp-python's tokenize endpoint: counts by
    its own tokenizer, not estimates."""
    with LoopbackOpenAIServer(first_token_delay=0.005, completion_tokens=5,
                              send_usage=False, tokenize_endpoint=True) as server:
        job = job_on(server, server)
        assert main(["run", "-f", job, "--no-progress"]) == 0
    row, records = row_and_records()
    answers = [r["cloud"] if r["is_hard"] else r["edge"] for r in records]
    assert all(a["usage_source"] == "tokenize-endpoint" and not a["usage_estimated"]
               for a in answers)
    assert int(row["Estimated Token Counts"]) == 0
    for answer in answers:  # the server's own counts: words of the prompt, of the answer
        assert answer["usage"]["completion_tokens"] == len(answer["completion"].split())


def test_token_counter_uses_a_local_tokenizer_folder_first(tiny_model):
    counter = TokenCounter("http://127.0.0.1:9/v1", tokenizer=tiny_model)
    messages = [{"role": "user", "content": "What is two plus two?"}]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert counter.source == "tokenizer"
    assert counter.count(messages, "four") == (
        len(ids), len(tokenizer.encode("four", add_special_tokens=False)))
    assert TokenCounter("http://127.0.0.1:9/v1").count(messages, "four") is None  # no server
    assert prompt_text(messages)  # the loopback server's own text of them
