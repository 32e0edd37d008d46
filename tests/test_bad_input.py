"""Bad input: one clear line naming file and key/line, exit 2, no rank file touched."""

import os

import pytest


from conftest import EXAMPLE, JOB, edit
from edgellm.cli import main

RANK = "workspace/query-routing/rank"
ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
DATA = f"{EXAMPLE}/dataset/mcq/test_data/data.jsonl"


def run_bad(capsys):
    code = main(["run", "-f", JOB, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("edgellm: error: ")
    assert "Traceback" not in err
    assert not os.path.exists(RANK)
    return err


def test_missing_job_file(example, capsys):
    code = main(["run", "-f", "nope/benchmarkingjob.yaml"])
    err = capsys.readouterr().err
    assert code == 2 and "nope/benchmarkingjob.yaml: benchmarkingjob file not found" in err


def test_a_folder_given_as_the_job_file(example, capsys):
    code = main(["run", "-f", EXAMPLE])
    err = capsys.readouterr().err
    assert code == 2 and f"{EXAMPLE}: a folder, not a benchmarkingjob file" in err


def test_a_folder_where_the_job_names_a_file(example, capsys):
    edit(JOB, 'testenv: "./examples/edge-llm-distribution/testenv/testenv.yaml"',
         'testenv: "./examples/edge-llm-distribution/testenv"')
    err = run_bad(capsys)
    assert "key 'benchmarkingjob.testenv': ./examples/edge-llm-distribution/testenv is a " \
           "folder, not a file" in err


def test_malformed_yaml_names_line(example, capsys):
    edit(JOB, 'name: "query-routing"', 'name: "query-routing\n  oops: [')
    err = run_bad(capsys)
    assert JOB in err and "line " in err and "invalid YAML" in err


def test_missing_key(example, capsys):
    edit(JOB, '  name: "query-routing"\n', "")
    assert f"{JOB}: key 'benchmarkingjob.name': missing" in run_bad(capsys)


def test_missing_testenv_file(example, capsys):
    os.remove(f"{EXAMPLE}/testenv/testenv.yaml")
    err = run_bad(capsys)
    assert "key 'benchmarkingjob.testenv'" in err and "testenv.yaml" in err


def test_unknown_module_alias(example, capsys):
    edit(f"{ROUTING}/oracle-router.yaml", 'name: "OracleRouter"', 'name: "OracleRuter"')
    err = run_bad(capsys)
    assert f"{ROUTING}/oracle-router.yaml: key 'algorithm.modules[3]'" in err
    assert "'OracleRuter' is not registered" in err and "OracleRouter" in err


def test_unknown_module_type(example, capsys):
    edit(f"{ROUTING}/edge-only.yaml", 'type: "edgemodel"', 'type: "edge_model"')
    err = run_bad(capsys)
    assert "key 'algorithm.modules[1].type'" in err and "'edge_model'" in err


def test_missing_dataset_file(example, capsys):
    os.remove(DATA)
    err = run_bad(capsys)
    assert DATA in err and "not found" in err


def test_missing_test_entry(example, capsys):
    edit(f"{EXAMPLE}/testenv/testenv.yaml", "test_data_info:", "test_info:")
    assert "key 'testenv.dataset.test_data_info': missing" in run_bad(capsys)


def test_malformed_jsonl_line_names_line(example, capsys):
    lines = open(DATA, encoding="utf-8").read().splitlines()
    lines[6] = lines[6][:-5]
    open(DATA, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    err = run_bad(capsys)
    assert f"{DATA}:7: invalid JSON" in err


def test_jsonl_line_missing_key(example, capsys):
    lines = open(DATA, encoding="utf-8").read().splitlines()
    lines[2] = lines[2].replace('"response"', '"answer"')
    open(DATA, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    assert f"{DATA}:3: missing key 'response'" in run_bad(capsys)


@pytest.mark.parametrize("line", ['["a", "list"]', '"text"', "null", "7"])
def test_jsonl_line_that_is_not_an_object(example, capsys, line):
    lines = open(DATA, encoding="utf-8").read().splitlines()
    lines[4] = line
    lines.insert(1, "   ")  # blank lines are skipped, not errors
    open(DATA, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    assert f"{DATA}:6: expected a JSON object" in run_bad(capsys)


def test_unknown_metric(example, capsys):
    edit(f"{EXAMPLE}/testenv/testenv.yaml", 'name: "Edge Ratio"', 'name: "Edge Rate"')
    err = run_bad(capsys)
    assert "testenv.yaml: key 'testenv.metrics[1]'" in err
    assert "metric 'Edge Rate' is not registered" in err


def test_bad_mining_mode(example, capsys):
    edit(f"{EXAMPLE}/testenv/testenv.yaml", '"mining-then-inference"', '"mine-first"')
    assert "key 'testenv.hard_example_mining_mode'" in run_bad(capsys)


def test_module_file_shadowing_installed_module(example, capsys):
    os.rename(f"{ROUTING}/query_routers.py", f"{ROUTING}/yaml.py")
    for name in ("edge-only", "cloud-only", "random-router", "oracle-router"):
        edit(f"{ROUTING}/{name}.yaml", "query_routers.py", "yaml.py")
    err = run_bad(capsys)
    assert "basename 'yaml' is already imported" in err


def test_bad_input_leaves_existing_rank_files_untouched(example, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    capsys.readouterr()
    before = open(f"{RANK}/all_rank.csv").read()
    edit(f"{EXAMPLE}/testenv/testenv.yaml", 'name: "Accuracy"', 'name: "Acuracy"')
    assert main(["run", "-f", JOB, "--no-progress"]) == 2
    assert open(f"{RANK}/all_rank.csv").read() == before


def test_unknown_visualization_method(example, capsys):
    edit(JOB, 'method: "print_table"', 'method: "plot_bars"')
    assert "key 'benchmarkingjob.rank.visualization.method'" in run_bad(capsys)


def test_unknown_backend_fails_before_any_case(example, capsys):
    edit(f"{ROUTING}/oracle-router.yaml", 'values: ["simulated"]', 'values: ["simulatd"]')
    err = run_bad(capsys)
    assert f"{ROUTING}/oracle-router.yaml: key " \
           "'algorithm.modules[1].hyperparameters[0].backend'" in err
    assert "did you mean 'simulated'?" in err
    assert "unknown backend 'simulatd'" in err
    assert not os.path.exists("workspace/query-routing")  # no case folder was started


def test_model_without_profile_fails_before_any_case(example, capsys):
    edit(f"{ROUTING}/edge-only.yaml", '"Qwen/Qwen2.5-3B-Instruct"', '"Qwen/Qwen9-3B"')
    err = run_bad(capsys)
    assert "backend 'simulated'" in err and "no profile for model 'Qwen/Qwen9-3B'" in err



def test_learned_router_missing_train_outcomes_fails_before_any_case(example, capsys):
    edit(f"{ROUTING}/random-router.yaml", '''      name: "RandomRouter"
      url: "./examples/edge-llm-distribution/testalgorithms/query-routing/query_routers.py"
      hyperparameters:
        - cloud_probability:
            values: [0.5]
        - seed:
            values: [0]''', '''      name: "TfidfRouter"
      url: "./examples/edge-llm-distribution/testalgorithms/query-routing/query_routers.py"
      hyperparameters:
        - train_outcomes:
            values: ["./workspace/trian.csv"]''')
    err = run_bad(capsys)
    assert "TfidfRouter: train_outcomes ./workspace/trian.csv: file not found" in err
    assert f"{ROUTING}/random-router.yaml" in err


def test_a_setting_that_is_not_a_number_is_named(example, capsys):
    # the router's float() says only "could not convert string to float: 'half'"
    edit(f"{ROUTING}/random-router.yaml", "values: [0.5]", 'values: ["half"]')
    err = run_bad(capsys)
    assert f"{ROUTING}/random-router.yaml: key 'algorithm.modules[3].hyperparameters[0]" \
           f".cloud_probability': 'half' is not a number" in err


def test_misspelt_testenv_key(example, capsys):
    edit(f"{EXAMPLE}/testenv/testenv.yaml", "hard_example_mining_mode:",
         "hard_example_minning_mode:")
    err = run_bad(capsys)
    assert "key 'testenv.hard_example_minning_mode': unknown key; did you mean " \
           "'hard_example_mining_mode'?" in err


@pytest.mark.parametrize("old, new, key", [
    ('{"Edge Ratio": "descend"}', '{"Edge Ration": "descend"}', "rank.sort_by[1]"),
    ('"TTFT P99"', '"TTFT P999"', "rank.selected_dataitem.metrics"),
    ('hyperparameters: ["edgemodel-model"', 'hyperparameters: ["edgemodel-modle"',
     "rank.selected_dataitem.hyperparameters[0]"),
    ('modules: ["hard_example_mining"]', 'modules: ["hard_example_minig"]',
     "rank.selected_dataitem.modules[0]"),
])
def test_rank_names_that_match_nothing(example, capsys, old, new, key):
    edit(JOB, old, new)
    err = run_bad(capsys)
    assert f"key 'benchmarkingjob.{key}" in err and new.split('"')[1] in err
