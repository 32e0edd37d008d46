"""Job files that would write in the wrong place or mean two things: one line naming
file and key, exit 2, nothing written (issue 14's checks before the first case)."""

import os

import pytest

from conftest import JOB, edit
from test_bad_input import run_bad


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


@pytest.mark.parametrize("name", ["../x", "../../x", "a/b", "..", ".", "", "rank"])
def test_algorithm_name_must_be_one_path_segment(example, capsys, name):
    edit(JOB, 'name: "random-router"', f'name: "{name}"')
    err = run_bad(capsys)
    assert f"{JOB}: key 'benchmarkingjob.test_object.algorithms[2].name':" in err
    assert nothing_written(example)
    assert not os.path.exists(example.parent / "x")
