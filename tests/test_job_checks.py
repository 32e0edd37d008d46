"""Job files that would write in the wrong place or mean two things: one line naming
file and key, exit 2, nothing written (issue 14's checks before the first case)."""

import os
import stat

import pytest

from conftest import EXAMPLE, JOB, edit
from edgellm.cli import main
from test_bad_input import ROUTING, run_bad

TESTENV = f"{EXAMPLE}/testenv/testenv.yaml"


def nothing_written(root):
    """No file or folder but the example's own under ``root``."""
    return sorted(os.listdir(root)) == ["examples"]


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\\\b", "..", ".", "", "a\\0b"])
def test_job_name_must_be_one_path_segment(example, capsys, name):
    edit(JOB, 'name: "query-routing"', f'name: "{name}"')
    err = run_bad(capsys)
    assert f"{JOB}: key 'benchmarkingjob.name':" in err and "one folder name" in err
    assert nothing_written(example)
    assert not os.path.exists(example.parent / "x")


@pytest.mark.parametrize("name", ["../x", "../../x", "a/b", "..", ".", "", "rank", ".runs"])
def test_algorithm_name_must_be_one_path_segment(example, capsys, name):
    edit(JOB, 'name: "random-router"', f'name: "{name}"')
    err = run_bad(capsys)
    assert f"{JOB}: key 'benchmarkingjob.test_object.algorithms[2].name':" in err
    assert nothing_written(example)
    assert not os.path.exists(example.parent / "x")


def test_empty_hyperparameters_list_is_an_error(example, capsys):
    edit(f"{ROUTING}/edge-only.yaml", '''      name: "EdgeOnly"
      url: "./examples/edge-llm-distribution/testalgorithms/query-routing/query_routers.py"''',
         '''      name: "EdgeOnly"
      url: "./examples/edge-llm-distribution/testalgorithms/query-routing/query_routers.py"
      hyperparameters: []''')
    err = run_bad(capsys)
    assert f"{ROUTING}/edge-only.yaml: key 'algorithm.modules[3].hyperparameters': empty " \
           "list; leave the key out for the defaults" in err


def test_two_algorithms_with_one_name(example, capsys):
    edit(JOB, 'name: "random-router"', 'name: "edge-only"')
    err = run_bad(capsys)
    assert "key 'benchmarkingjob.test_object.algorithms[2].name': 'edge-only' is also " \
           "the name of key 'benchmarkingjob.test_object.algorithms[0].name'" in err


def test_same_metric_twice(example, capsys):
    edit(TESTENV, '''    - name: "Edge Ratio"
      url: "./examples/edge-llm-distribution/testenv/edge_ratio.py"''', '''    - name: "Edge Ratio"
      url: "./examples/edge-llm-distribution/testenv/edge_ratio.py"
    - name: "Accuracy"
      url: "./examples/edge-llm-distribution/testenv/accuracy.py"''')
    err = run_bad(capsys)
    assert f"{TESTENV}: key 'testenv.metrics[2].name': 'Accuracy' is also the name of " \
           "key 'testenv.metrics[0].name'" in err


def test_same_hyperparameter_twice(example, capsys):
    edit(f"{ROUTING}/edge-only.yaml", '''        - seed:
            values: [0]
''', '''        - seed:
            values: [0]
        - seed:
            values: [1]
''')
    err = run_bad(capsys)
    assert "key 'algorithm.modules[1].hyperparameters[3].seed': 'seed' is also set by " \
           "key 'algorithm.modules[1].hyperparameters[2].seed'" in err


def test_workspace_under_a_regular_file(example, capsys):
    open("afile", "w").close()
    edit(JOB, 'workspace: "./workspace"', 'workspace: "./afile/workspace"')
    err = run_bad(capsys)
    assert f"{JOB}: key 'benchmarkingjob.workspace': cannot write in ./afile/workspace" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_read_only_workspace(example, capsys):
    os.makedirs("workspace")
    os.chmod("workspace", stat.S_IRUSR | stat.S_IXUSR)
    try:
        code = main(["run", "-f", JOB, "--no-progress"])
    finally:
        os.chmod("workspace", stat.S_IRWXU)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{JOB}: key 'benchmarkingjob.workspace': cannot write in ./workspace" in err
