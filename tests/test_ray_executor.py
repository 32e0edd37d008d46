"""``edgellm run --executor ray``: one Ray task per test case, on a local Ray instance
started here (2 CPUs, loopback), gives the local run's results and rank files."""

import csv
import glob
import json
import os

import pytest

from conftest import JOB, REPO, edit
from edgellm.cli import main

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'edgellm[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, object_store_memory=80 * 1024 * 1024,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO / "src")}})
    yield
    ray.shutdown()


def _rank(workspace):
    with open(f"{workspace}/query-routing/rank/all_rank.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _key(row):
    return (row["algorithm"], row["edgemodel-model"])


def _outputs(folder):
    with open(os.path.join(folder, "results.jsonl")) as handle:
        results = [json.loads(line) for line in handle]
    with open(os.path.join(folder, "metrics.json")) as handle:
        return results, json.load(handle)


def test_ray_gives_the_local_runs_results(example, local_ray, capsys):
    assert main(["run", "-f", JOB, "--no-progress"]) == 0
    edit(JOB, 'workspace: "./workspace"', 'workspace: "./on-ray"')
    assert main(["run", "-f", JOB, "--executor", "ray"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("on Ray") == 10 and "query-routing" in captured.out
    local, remote = _rank("workspace"), _rank("on-ray")
    assert [list(r) for r in local] == [list(r) for r in remote]  # the same columns

    def values(rows):
        return {_key(r): {k: v for k, v in r.items() if k not in ("time", "url")}
                for r in rows}
    assert values(local) == values(remote)
    assert len(local) == 10
    by_key = {_key(r): r["url"] for r in remote}
    for row in local:
        assert _outputs(row["url"]) == _outputs(by_key[_key(row)])
        assert by_key[_key(row)].startswith("./on-ray/")
    assert not glob.glob("on-ray/query-routing/*/*.partial")


def test_address_needs_the_ray_executor(example, capsys):
    assert main(["run", "-f", JOB, "--address", "ray://127.0.0.1:10001"]) == 2
    assert "--address: only with --executor ray" in capsys.readouterr().err


def test_an_address_nothing_answers_at_is_one_line(example, capsys, monkeypatch):
    # as if no Ray ran in this process (the module's local Ray may): the address is
    # checked before ray.init, which would retry it for minutes
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert main(["run", "-f", JOB, "--executor", "ray", "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "--address: no Ray cluster answers at 127.0.0.1:1" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
