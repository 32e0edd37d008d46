"""Bad input, case by case: every row is one malformed file or argument, and every row
must end the same way: exit status 2, exactly one line on stderr starting
``edgellm: error: `` that names the offending file (or argument), no traceback, and
nothing written (no rank file, no store, no output file, no workspace folder).

Adding a case is adding one row to CASES: an id, the command line, what the error
line must name, and the changes that make the input bad (applied to a private copy
of the example, with the current directory at its root, as the other tests do).
"""

import os
from pathlib import Path

import pytest

from conftest import EXAMPLE, JOB, edit
from edgellm.cli import main
from edgellm.fleet import topology
from edgellm.models import simulated

RUN = ["run", "-f", JOB, "--no-progress"]
ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
TESTENV = f"{EXAMPLE}/testenv/testenv.yaml"
DATA = f"{EXAMPLE}/dataset/mcq/test_data/data.jsonl"
META = f"{EXAMPLE}/dataset/mcq/test_data/metadata.json"
EDGE = f"{ROUTING}/edge-only.yaml"
RANDOM = f"{ROUTING}/random-router.yaml"
FLEET_ALGORITHM = f"{EXAMPLE}/testalgorithms/multi-edge-offloading/multi-edge.yaml"
TOPOLOGY = f"{EXAMPLE}/testalgorithms/multi-edge-offloading/topologies/small.yaml"
TOPOLOGY_VALUES = ('values: ["./examples/edge-llm-distribution/testalgorithms/multi-edge-'
                   'offloading/topologies/small.yaml",\n                     "./examples/edge-'
                   'llm-distribution/testalgorithms/multi-edge-offloading/topologies/large.yaml"]')
OFFLOADERS = 'values: ["RoundRobin", "LeastLoaded", "QualityGreedy", "LinUCB", "MLPPredictor"]'
CACHING = 'values: ["Static", "LRU", "LFU", "DemandKnapsack"]'
RUN_FLEET = ["run", "-f", f"{EXAMPLE}/benchmarkingjob-multi-edge.yaml", "--no-progress"]

HEADER = "task_id,task_type,task_token,reference_value\n"
MATRIX = "id,model,correct\n" + "".join(f"{i},a,{i % 2}\n{i},b,1\n" for i in range(20))
CACHE_LINE = ('[{"config": {"model": "m"}, "result": [{"query": "q", "response": '
              '{"completion": "A"}}]}]')
STORE = "s.sqlite"


# -- what a row's setup does ------------------------------------------------------------


def replace(path, old, new):
    """``old`` (which must occur) becomes ``new`` in ``path``."""
    return lambda: edit(path, old, new)


def write(path, content):
    """``path`` holds ``content`` (text as UTF-8, or bytes as they are)."""
    def apply():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return apply


def set_line(path, number, text):
    """Line ``number`` (1-based) of ``path`` becomes ``text``."""
    def apply():
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        lines[number - 1] = text
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return apply


def query_line(query):
    """A data.jsonl line of the mcq set whose query is the JSON text ``query``."""
    return ('{"query": %s, "response": "A", "level_1_dim": "single-modal", "level_2_dim": '
            '"text", "level_3_dim": "knowledge Q&A", "level_4_dim": "general"}' % query)


def edge_setting(name, value):
    """The edge model of edge-only.yaml gets hyperparameter ``name: {values: [value]}``,
    and one model instead of three."""
    return replace(EDGE, '            values: ["Qwen/Qwen2.5-1.5B-Instruct", '
                         '"Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct"]\n',
                   '            values: ["Qwen/Qwen2.5-1.5B-Instruct"]\n'
                   f'        - {name}:\n            values: [{value}]\n')


def one_fleet_case():
    """The fleet job narrowed to one test case (the small topology): a bad topology
    that slipped through would otherwise run forty."""
    replace(FLEET_ALGORITHM, TOPOLOGY_VALUES, f'values: ["./{TOPOLOGY}"]')()
    replace(FLEET_ALGORITHM, OFFLOADERS, 'values: ["LeastLoaded"]')()
    replace(FLEET_ALGORITHM, CACHING, 'values: ["Static"]')()


def in_topology(old, new):
    """The small topology with ``old`` replaced by ``new``, run by one fleet case."""
    def apply():
        one_fleet_case()
        edit(TOPOLOGY, old, new)
    return apply


def a_store():
    """A response store with some entries, for the cases that export one."""
    write("m.csv", MATRIX)()
    assert main(["import", "m.csv", "--store", STORE]) == 0


# an alias bomb ("billion laughs"): 10^9 strings once every alias is expanded
BOMB = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x, x, x]"] + [
    f"&{b} [{', '.join([f'*{a}'] * 10)}]" for a, b in zip("abcdefgh", "bcdefghi")]) + "]"


class Case:
    def __init__(self, id, argv, named, *setup):
        self.id, self.argv, self.named, self.setup = id, argv, named, setup

    def param(self):
        return pytest.param(self, id=self.id)


CASES = [
    # -- the job YAML (benchmarkingjob.yaml)
    Case("job-not-a-mapping", RUN, JOB, write(JOB, "- just\n- a list\n")),
    Case("job-empty", RUN, JOB, write(JOB, "")),
    Case("job-binary", RUN, JOB, write(JOB, b"\x00\x01\x02 benchmarkingjob: {}\n")),
    Case("job-invalid-utf8", RUN, JOB, write(JOB, b"benchmarkingjob:\n  name: \"q\xff\"\n")),
    Case("job-name-not-text", RUN, JOB, replace(JOB, 'name: "query-routing"', "name: [1]")),
    Case("job-workspace-not-text", RUN, JOB, replace(JOB, 'workspace: "./workspace"',
                                                     "workspace: {a: 1}")),
    Case("job-sort-order", RUN, JOB, replace(JOB, '{"Accuracy": "descend"}',
                                             '{"Accuracy": "down"}')),
    Case("job-save-mode", RUN, JOB, replace(JOB, 'save_mode: "selected_and_all"',
                                            'save_mode: "everything"')),
    Case("job-algorithm-file-missing", RUN, JOB, replace(JOB, "edge-only.yaml",
                                                         "edge-onyl.yaml")),
    Case("job-duplicate-key", RUN, JOB, replace(JOB, '  workspace: "./workspace"\n',
                                                '  workspace: "./workspace"\n'
                                                '  workspace: "./elsewhere"\n')),
    Case("job-tab-indent", RUN, JOB, replace(JOB, '  workspace: "./workspace"',
                                             '\tworkspace: "./workspace"')),
    Case("job-nested-deep", RUN, JOB, write(JOB, "benchmarkingjob: " + "[" * 100_000)),
    # -- the testenv
    Case("testenv-not-a-mapping", RUN, TESTENV, write(TESTENV, "testenv: 7\n")),
    Case("testenv-no-dataset", RUN, TESTENV, replace(TESTENV, "  dataset:\n", "  datasets:\n")),
    Case("testenv-metrics-empty", RUN, TESTENV, replace(TESTENV, "  metrics:\n",
                                                        "  metrics: []\n  unused:\n")),
    Case("testenv-train-file-missing", RUN, TESTENV, replace(
        TESTENV, "mcq/train_data/data.jsonl", "mcq/train_data/nope.jsonl")),
    Case("testenv-metric-file-missing", RUN, TESTENV, replace(TESTENV, "testenv/accuracy.py",
                                                              "testenv/acuracy.py")),
    Case("testenv-duplicate-key", RUN, TESTENV, replace(
        TESTENV, '  hard_example_mining_mode: "mining-then-inference"\n',
        '  hard_example_mining_mode: "mining-then-inference"\n'
        '  hard_example_mining_mode: "inference-then-mining"\n')),
    # -- algorithm YAML
    Case("algorithm-paradigm", RUN, EDGE, replace(EDGE, '"jointinference"', '"incremental"')),
    Case("algorithm-no-cloud-model", RUN, EDGE, replace(EDGE, 'type: "cloudmodel"',
                                                        'type: "dataset_processor"')),
    Case("algorithm-values-not-a-list", RUN, EDGE, replace(EDGE, "values: [0]", "values: 0")),
    Case("algorithm-values-empty", RUN, EDGE, replace(EDGE, "values: [0]", "values: []")),
    Case("algorithm-hyperparameter-not-a-mapping", RUN, EDGE, replace(
        EDGE, "        - seed:\n            values: [0]", "        - 5")),
    Case("algorithm-module-url-missing", RUN, EDGE, replace(EDGE, "edge_model.py",
                                                            "edge_modle.py")),
    Case("algorithm-other-hyperparameters-missing", RUN, "nope.yaml", edge_setting(
        "other_hyperparameters", '"./nope.yaml"')),
    Case("algorithm-seed-not-a-number", RUN, EDGE, replace(EDGE, "values: [0]",
                                                           'values: ["abc"]')),
    Case("algorithm-max-tokens-not-a-number", RUN, EDGE, edge_setting("max_tokens", '"lots"'),
         replace(EDGE, 'values: ["simulated"]', 'values: ["replay"]')),
    Case("algorithm-temperature-not-a-number", RUN, EDGE, edge_setting("temperature", "[1]"),
         replace(EDGE, 'values: ["simulated"]', 'values: ["replay"]')),
    Case("algorithm-openai-concurrency-not-whole", RUN, EDGE, edge_setting(
        "max_concurrency", "2.5"), replace(EDGE, 'values: ["simulated"]', 'values: ["openai"]')),
    Case("algorithm-vllm-memory-share", RUN, EDGE, edge_setting("gpu_memory_utilization", "1.5"),
         replace(EDGE, 'values: ["simulated"]', 'values: ["vllm"]')),
    Case("algorithm-huggingface-logprobs-text", RUN, EDGE, edge_setting("logprobs", '"yes"'),
         replace(EDGE, 'values: ["simulated"]', 'values: ["huggingface"]')),
    Case("algorithm-simulated-ttft-text", RUN, EDGE, edge_setting("ttft_s", '"fast"')),
    Case("algorithm-simulated-accuracy-out-of-range", RUN, EDGE, edge_setting(
        "accuracy", "{multiple_choice: 2}")),
    Case("algorithm-profiles-path-missing", RUN, EDGE, edge_setting("profiles_path",
                                                                    '"./nope.yaml"')),
    Case("algorithm-profiles-path-bad-yaml", RUN, "profiles.yaml", write(
        "profiles.yaml", "defaults: [\n"), edge_setting("profiles_path", '"profiles.yaml"')),
    Case("algorithm-alias-bomb", RUN, EDGE, edge_setting("accuracy", BOMB)),
    Case("algorithm-duplicate-key", RUN, EDGE, replace(
        EDGE, '      name: "EdgeModel"\n', '      name: "EdgeModel"\n      name: "Other"\n')),
    Case("algorithm-cloud-probability-not-a-number", RUN, RANDOM, replace(
        RANDOM, "values: [0.5]", 'values: ["half"]')),
    Case("algorithm-module-syntax-error", RUN, f"{ROUTING}/edge_model.py",
         write(f"{ROUTING}/edge_model.py", "def broken(:\n")),
    Case("algorithm-module-raises", RUN, f"{ROUTING}/edge_model.py",
         write(f"{ROUTING}/edge_model.py", "raise RuntimeError('no')\n")),
    Case("algorithm-url-is-a-folder", RUN, EDGE, replace(
        EDGE, "query-routing/edge_model.py", "query-routing")),
    Case("testenv-metric-module-syntax-error", RUN, "accuracy.py",
         write(f"{EXAMPLE}/testenv/accuracy.py", "def broken(:\n")),
    Case("job-algorithm-url-is-a-folder", RUN, JOB, replace(
        JOB, "query-routing/edge-only.yaml", "query-routing")),
    Case("workload-trace-missing", RUN_FLEET, "nope.csv", one_fleet_case, replace(
        f"{EXAMPLE}/testalgorithms/multi-edge-offloading/multi-edge.yaml",
        'values: ["fixed"]', 'values: ["trace"]\n        - trace_file:\n'
        '            values: ["nope.csv"]')),
    Case("workload-trace-not-numbers", RUN_FLEET, "trace.csv: line 2", one_fleet_case,
         write("trace.csv", "arrival_s\nsoon\n"), replace(
             f"{EXAMPLE}/testalgorithms/multi-edge-offloading/multi-edge.yaml",
             'values: ["fixed"]', 'values: ["trace"]\n        - trace_file:\n'
             '            values: ["trace.csv"]')),
    # -- the test dataset (Ianvs' LLM format)
    Case("metadata-invalid-json", RUN, META, write(META, "{")),
    Case("metadata-not-an-object", RUN, META, write(META, "[1, 2]")),
    Case("metadata-missing-key", RUN, META, write(META, '{"dataset": "x"}')),
    Case("data-missing", RUN, "data.jsonl", lambda: os.remove(DATA)),
    Case("data-empty", RUN, DATA, write(DATA, "\n\n")),
    Case("data-invalid-utf8", RUN, f"{DATA}:1", write(DATA, b'{"query": "\xff"}\n')),
    Case("data-query-number", RUN, f"{DATA}:3", set_line(DATA, 3, query_line("42"))),
    Case("data-query-null", RUN, f"{DATA}:3", set_line(DATA, 3, query_line("null"))),
    Case("data-query-object", RUN, f"{DATA}:3", set_line(DATA, 3, query_line('{"a": 1}'))),
    Case("data-query-list-of-numbers", RUN, f"{DATA}:3", set_line(DATA, 3,
                                                                  query_line("[1, 2]"))),
    Case("data-prompt-number", RUN, f"{DATA}:2", set_line(DATA, 2, query_line(
        '"Q?", "prompt": 7'))),
    Case("data-level-3-list", RUN, f"{DATA}:2", set_line(DATA, 2, query_line('"Q?"').replace(
        '"level_3_dim": "knowledge Q&A"', '"level_3_dim": ["a"]'))),
    Case("data-response-number", RUN, f"{DATA}:3", set_line(DATA, 3, query_line(
        '"Q?"').replace('"response": "A"', '"response": 2'))),
    Case("data-response-null", RUN, f"{DATA}:3", set_line(DATA, 3, query_line(
        '"Q?"').replace('"response": "A"', '"response": null'))),
    Case("data-nested-deep", RUN, f"{DATA}:4", set_line(DATA, 4, "[" * 100_000)),
    Case("qa-jsonl-question-number", RUN, "qa.jsonl:1",
         write("qa.jsonl", '{"question": 5, "answer": "A"}\n'),
         replace(TESTENV, 'test_data_info: "./examples/edge-llm-distribution/dataset/mcq/'
                          'test_data/metadata.json"', 'test_data: "./qa.jsonl"')),
    # -- tasks CSV/JSONL (edgellm dataset convert)
    Case("tasks-invalid-utf8", ["dataset", "convert", "t.csv", "out.jsonl"], "t.csv:2",
         write("t.csv", HEADER.encode() + b"0,0,hello \xff there,2\n")),
    Case("tasks-invalid-utf8-skipping", ["dataset", "convert", "t.csv", "out.jsonl",
                                         "--skip-bad-rows"], "t.csv",
         write("t.csv", HEADER.encode() + b"0,0,hello \xff there,2\n")),
    Case("tasks-extra-cell", ["dataset", "convert", "t.csv", "out.jsonl"], "t.csv:3",
         write("t.csv", HEADER + "0,0,fine,2\n1,0,hello,2,surprise\n")),
    Case("tasks-missing-cell", ["dataset", "convert", "t.csv", "out.jsonl"], "t.csv:2",
         write("t.csv", HEADER + "0,0,hello\n")),
    Case("tasks-nul-byte", ["dataset", "convert", "t.csv", "out.jsonl"], "t.csv:2",
         write("t.csv", HEADER + "0,0,hel\x00lo,2\n")),
    Case("tasks-header-only", ["dataset", "convert", "t.csv", "out.jsonl"], "t.csv",
         write("t.csv", HEADER)),
    Case("tasks-header-only-named-format", ["dataset", "convert", "t.csv", "out.jsonl",
                                            "--from", "tasks"], "t.csv", write("t.csv", HEADER)),
    Case("tasks-duplicate-column", ["dataset", "convert", "t.csv", "out.jsonl"], "t.csv:1",
         write("t.csv", "task_id,task_type,task_token,task_token,reference_value\n"
                        "0,0,a,b,2\n")),
    Case("tasks-unknown-type", ["dataset", "convert", "t.csv", "out.jsonl"], "t.csv:2",
         write("t.csv", HEADER + "0,haiku,hello,2\n")),
    Case("tasks-jsonl-not-an-object", ["dataset", "convert", "t.jsonl", "out.csv"], "t.jsonl:2",
         write("t.jsonl", '{"task_id": 0, "task_type": 0, "task_token": "a", '
                          '"reference_value": "2"}\n[1]\n')),
    Case("tasks-every-row-bad-skipping", ["dataset", "convert", "t.csv", "out.jsonl",
                                          "--skip-bad-rows"], "t.csv",
         write("t.csv", HEADER + "0,haiku,hello,2\n")),
    Case("tasks-target-under-a-file", ["dataset", "convert", "t.csv", "afile/out.jsonl"],
         "afile", write("t.csv", HEADER + "0,0,hello,2\n"), write("afile", "x")),
    Case("tasks-target-is-a-file", ["dataset", "convert", "t.csv", "afile", "--to", "ianvs"],
         "afile", write("t.csv", HEADER + "0,0,hello,2\n"), write("afile", "x")),
    Case("tasks-target-is-a-folder", ["dataset", "convert", "t.csv", "out.csv"], "out.csv",
         write("t.csv", HEADER + "0,0,hello,2\n"), lambda: os.mkdir("out.csv")),
    Case("mcq-answer-two-letters", ["dataset", "convert", "q.csv", "out.jsonl"], "q.csv:2",
         write("q.csv", "question,A,B,answer\nWhy?,x,y,AB\n")),
    Case("mcq-choices-not-a-list", ["dataset", "convert", "q.jsonl", "out.jsonl"], "q.jsonl:1",
         write("q.jsonl", '{"question": "Why?", "choices": {"a": 1, "b": 2}, "answer": 0}\n')),
    Case("mcq-choices-bad-json", ["dataset", "convert", "q.csv", "out.jsonl"], "q.csv:2",
         write("q.csv", 'question,choices,answer\nWhy?,"[1, 2",A\n')),
    Case("mcq-answer-missing", ["dataset", "convert", "q.csv", "out.jsonl"], "q.csv:2",
         write("q.csv", "question,A,B,answer\nWhy?,x,y,\n")),
    Case("ianvs-source-query-number", ["dataset", "convert", "d", "out.jsonl"], "d/data.jsonl:1",
         write("d/metadata.json", '{"dataset": "d", "description": "", "level_1_dim": "", '
                                  '"level_2_dim": ""}'),
         write("d/data.jsonl", query_line("42") + "\n")),
    # -- outcome matrices (edgellm import, edgellm dataset split, edgellm report)
    Case("matrix-correct-maybe", ["import", "m.csv", "--store", STORE], "m.csv:3",
         write("m.csv", "id,model,correct\n0,a,1\n1,a,maybe\n")),
    Case("matrix-invalid-utf8", ["import", "m.csv", "--store", STORE], "m.csv:3",
         write("m.csv", b"id,model,correct\n0,a,1\n1,\xff,1\n")),
    Case("matrix-extra-cell", ["import", "m.csv", "--store", STORE], "m.csv:3",
         write("m.csv", "id,model,correct\n0,a,1\n1,a,1,0\n")),
    Case("matrix-wide-not-boolean", ["import", "w.csv", "--store", STORE], "w.csv:2",
         write("w.csv", "prompt,a,b\nWhy?,yes,perhaps\n")),
    Case("matrix-split-header-only", ["dataset", "split", "m.csv", "out"], "m.csv",
         write("m.csv", "id,model,correct\n")),
    Case("matrix-report-unknown-model", ["report", "--outcomes", "m.csv", "--edge-model", "c",
                                         "--cloud-model", "b", "--out", "rep"], "m.csv",
         write("m.csv", MATRIX)),
    Case("matrix-report-nul-byte", ["report", "--outcomes", "m.csv", "--edge-model", "a",
                                    "--cloud-model", "b", "--out", "rep"], "m.csv:3",
         write("m.csv", "id,model,correct\n0,a,1\n0,b\x00,0\n")),
    # -- Ianvs' cache.json (edgellm import)
    Case("cache-nested-deep", ["import", "cache.json", "--store", STORE], "cache.json",
         write("cache.json", "[" * 100_000 + "]" * 100_000)),
    Case("cache-invalid-utf8", ["import", "cache.json", "--store", STORE], "cache.json",
         write("cache.json", CACHE_LINE.replace('"q"', '"q\xff"').encode("latin-1"))),
    Case("cache-query-number", ["import", "cache.json", "--store", STORE], "cache.json",
         write("cache.json", CACHE_LINE.replace('"q"', "42"))),
    Case("cache-max-tokens-infinite", ["import", "cache.json", "--store", STORE],
         "cache.json", write("cache.json", CACHE_LINE.replace(
             '{"model": "m"}', '{"model": "m", "max_tokens": 1e999}'))),
    Case("cache-temperature-nan", ["import", "cache.json", "--store", STORE], "cache.json",
         write("cache.json", CACHE_LINE.replace('{"model": "m"}',
                                                '{"model": "m", "temperature": NaN}'))),
    Case("cache-tokens-nan", ["import", "cache.json", "--store", STORE], "cache.json",
         write("cache.json", CACHE_LINE.replace('{"completion": "A"}', '{"completion": "A", '
                                                '"usage": {"prompt_tokens": NaN}}'))),
    # -- store exports (edgellm import of an 'edgellm export' file; edgellm export)
    Case("export-file-settings-not-object", ["import", "e.jsonl", "--store", STORE],
         "e.jsonl:1", write("e.jsonl", '{"edgellm_store": 1, "model": "a", "settings": [], '
                                       '"response": {}, "messages": []}\n')),
    Case("export-file-version-true", ["import", "e.jsonl", "--store", STORE], "e.jsonl:1",
         write("e.jsonl", '{"edgellm_store": true, "model": "a", "settings": {}, '
                          '"response": {}, "item": {"id": 1}}\n')),
    Case("export-file-invalid-utf8", ["import", "e.jsonl", "--store", STORE], "e.jsonl:1",
         write("e.jsonl", b'{"edgellm_store": 1, "model": "\xff"}\n')),
    Case("export-under-a-file", ["export", "afile/out.jsonl", "--store", STORE], "afile",
         write("afile", "x"), a_store),
    Case("export-to-a-folder", ["export", "out", "--store", STORE], "out",
         lambda: os.mkdir("out"), a_store),
    Case("import-store-under-a-file", ["import", "m.csv", "--store", "afile/s.sqlite"],
         "afile", write("afile", "x"), write("m.csv", MATRIX)),
    Case("import-store-not-sqlite", ["import", "m.csv", "--store", "notes.txt"], "notes.txt",
         write("notes.txt", "not a database " * 100), write("m.csv", MATRIX)),
    Case("export-store-not-sqlite", ["export", "out.jsonl", "--store", "notes.txt"],
         "notes.txt", write("notes.txt", "not a database " * 100)),
    # -- fleet topologies
    Case("topology-decode-nan", RUN_FLEET, TOPOLOGY, in_topology(
        "decode_tokens_per_s: 110", "decode_tokens_per_s: .nan")),
    Case("topology-memory-inf", RUN_FLEET, TOPOLOGY, in_topology(
        "memory_gb: 3.5", "memory_gb: .inf")),
    Case("topology-rtt-minus-inf", RUN_FLEET, TOPOLOGY, in_topology(
        "rtt_ms: 6}", "rtt_ms: -.inf}")),
    Case("topology-rtt-negative", RUN_FLEET, TOPOLOGY, in_topology("rtt_ms: 6}", "rtt_ms: -6}")),
    Case("topology-size-nan", RUN_FLEET, TOPOLOGY, in_topology("q4_k_m: 0.92", "q4_k_m: .nan")),
    Case("topology-params-nan", RUN_FLEET, TOPOLOGY, in_topology(
        "params_b: 1.54", "params_b: .nan")),
    Case("topology-cloud-rate-inf", RUN_FLEET, TOPOLOGY, in_topology(
        "rate_limit_rps: 8.33", "rate_limit_rps: .inf")),
    Case("topology-cloud-price-nan", RUN_FLEET, f"{TOPOLOGY}: key 'cloud.input_per_mtok'",
         in_topology("rate_limit_rps: 8.33", "rate_limit_rps: 8.33\n  input_per_mtok: .nan")),
    Case("topology-memory-boolean", RUN_FLEET, TOPOLOGY, in_topology(
        "memory_gb: 3.5", "memory_gb: true")),
    Case("topology-duplicate-key", RUN_FLEET, f"{TOPOLOGY}: line 51: key 'memory_gb' given "
         "twice", in_topology("    memory_gb: 3.5\n", "    memory_gb: 3.5\n    memory_gb: 1\n")),
    Case("topology-unknown-model", RUN_FLEET, TOPOLOGY, in_topology(
        "models: [qwen2.5-1.5b]", "models: [qwen9]")),
    Case("topology-quality-nan", RUN_FLEET, f"{TOPOLOGY}: key 'models[0].quality.TC'",
         in_topology("    decode_tokens_per_s: 110\n",
                     "    decode_tokens_per_s: 110\n    quality: {TC: .nan}\n")),
    # -- command-line arguments
    Case("cli-convert-source-missing", ["dataset", "convert", "nope.csv", "out.jsonl"],
         "nope.csv"),
    Case("cli-convert-unknown-target", ["dataset", "convert", "t.csv", "out.txt", "--to",
                                        "tasks"], "out.txt", write("t.csv", HEADER + "0,0,a,2\n")),
    Case("cli-split-out-is-a-file", ["dataset", "split", "m.csv", "afile"], "afile",
         write("m.csv", MATRIX), write("afile", "x")),
    Case("cli-split-out-under-a-file", ["dataset", "split", "m.csv", "afile/out"], "afile",
         write("m.csv", MATRIX), write("afile", "x")),
    Case("cli-synthesize-under-a-file", ["dataset", "synthesize", "afile/m.csv", "--items",
                                         "10"], "afile", write("afile", "x")),
    Case("cli-report-out-under-a-file", ["report", "--outcomes", "m.csv", "--edge-model", "a",
                                         "--cloud-model", "b", "--out", "afile/rep"], "afile",
         write("m.csv", MATRIX), write("afile", "x")),
    Case("cli-synthesize-not-csv", ["dataset", "synthesize", "out.txt", "--items", "10"],
         "out.txt"),
    Case("cli-import-unknown-format", ["import", "notes.txt", "--store", STORE], "notes.txt",
         write("notes.txt", "hello")),
    Case("cli-import-task-type", ["import", "cache.json", "--task-type", "haiku", "--store",
                                  STORE], "--task-type", write("cache.json", CACHE_LINE)),
    Case("cli-export-no-store", ["export", "out.jsonl", "--store", STORE], STORE),
    Case("cli-report-router-file-missing", ["report", "--outcomes", "m.csv", "--edge-model",
                                            "a", "--cloud-model", "b", "--out", "rep",
                                            "--router", "TfidfRouter=nope.joblib"], "nope.joblib",
         write("m.csv", MATRIX)),
    Case("cli-report-job-not-run", ["report", "-f", JOB], "query-routing"),
    Case("cli-import-source-is-a-folder", ["import", "adir", "--store", STORE], "adir",
         lambda: os.mkdir("adir")),
    Case("cli-report-outcomes-missing", ["report", "--outcomes", "nope.csv", "--edge-model",
                                         "a", "--cloud-model", "b", "--out", "rep"], "nope.csv"),
    Case("cli-train-fraction", ["dataset", "split", "m.csv", "out", "--train-fraction", "2"],
         "--train-fraction", write("m.csv", MATRIX)),
    Case("cli-jobs", ["run", "-f", JOB, "--jobs", "0"], "--jobs"),
    Case("cli-run-without-file", ["run"], "-f/--file"),
    Case("cli-unknown-command", ["frobnicate"], "COMMAND: invalid choice: 'frobnicate'"),
    Case("cli-store-mode", ["run", "-f", JOB, "--store-mode", "always"], "--store-mode"),
    Case("cli-synthesize-items", ["dataset", "synthesize", "m.csv", "--items", "many"],
         "--items"),
]


def snapshot(root):
    """Every file and folder under ``root`` with its size and time (not __pycache__)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            found[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture(autouse=True)
def fresh_reads():
    """Topologies and profiles are read once per process (cached, and a topology's
    warning is logged on its first read); each case reads its own afresh."""
    for cached in (topology._load_topology, simulated._profile_table):
        cached.cache_clear()
    yield
    for cached in (topology._load_topology, simulated._profile_table):
        cached.cache_clear()


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input_is_one_clean_line(example, capsys, case):
    for step in case.setup:
        step()
    capsys.readouterr()
    before = snapshot(example)
    try:
        code = main(case.argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("edgellm: error: "), err
    assert case.named in lines[0], err
    assert "Traceback" not in err
    assert snapshot(example) == before, "something was written"
