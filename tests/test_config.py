"""Reading Ianvs' YAML: the hyperparameter grid and testenv keys."""

import pytest
import yaml

from conftest import JOB
from edgellm.bench.config import read_algorithm, read_job
from edgellm.errors import ConfigError


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def module(mtype, name, url, **hps):
    spec = {"type": mtype, "name": name, "url": url}
    if hps:  # `hyperparameters: []` is an error: the key is left out for the defaults
        spec["hyperparameters"] = [{k: {"values": v}} for k, v in hps.items()]
    return spec


def test_grid_is_cartesian_product_over_all_modules_in_ianvs_order(tmp_path):
    url = write(tmp_path / "m.py", {})
    path = write(tmp_path / "algo.yaml", {"algorithm": {
        "paradigm_type": "jointinference",
        "modules": [module("edgemodel", "E", url, model=["a", "b"], temperature=[0, 1]),
                    module("cloudmodel", "C", url, model=["x", "y", "z"]),
                    module("hard_example_mining", "R", url)]}})
    cases = read_algorithm("algo", path)
    assert len(cases) == 2 * 2 * 3
    combos = [(c.modules["edgemodel"].hyperparameters["model"],
               c.modules["edgemodel"].hyperparameters["temperature"],
               c.modules["cloudmodel"].hyperparameters["model"]) for c in cases]
    assert combos[:4] == [("a", 0, "x"), ("a", 0, "y"), ("a", 0, "z"), ("a", 1, "x")]
    assert len(set(combos)) == 12
    assert cases[0].hyperparameter_columns() == {
        "edgemodel-model": "a", "edgemodel-temperature": "0", "cloudmodel-model": "x"}


def test_other_hyperparameters_files_are_merged(tmp_path):
    url = write(tmp_path / "m.py", {})
    extra = write(tmp_path / "extra.yaml", {"max_tokens": 64, "model": "base"})
    path = write(tmp_path / "algo.yaml", {"algorithm": {
        "paradigm_type": "jointinference",
        "modules": [{"type": "edgemodel", "name": "E", "url": url, "hyperparameters": [
                        {"other_hyperparameters": {"values": [extra]}},
                        {"model": {"values": ["m1", "m2"]}}]},
                    module("cloudmodel", "C", url), module("hard_example_mining", "R", url)]}})
    hps = [c.modules["edgemodel"].hyperparameters for c in read_algorithm("a", path)]
    assert hps == [{"max_tokens": 64, "model": "m1"}, {"max_tokens": 64, "model": "m2"}]


def test_missing_required_module_and_wrong_paradigm(tmp_path):
    url = write(tmp_path / "m.py", {})
    path = write(tmp_path / "algo.yaml", {"algorithm": {
        "paradigm_type": "jointinference", "modules": [module("edgemodel", "E", url)]}})
    with pytest.raises(ConfigError, match="missing module type.*cloudmodel"):
        read_algorithm("a", path)
    path = write(tmp_path / "algo2.yaml", {"algorithm": {"paradigm_type": "singletasklearning",
                                                        "modules": []}})
    with pytest.raises(ConfigError, match="algorithm.paradigm_type.*not supported"):
        read_algorithm("a", path)


def test_example_job_reads_as_ianvs_would(example):
    job = read_job(JOB)
    assert job.name == "query-routing" and job.output_dir == "./workspace/query-routing"
    assert len(job.test_cases) == 3 + 1 + 3 + 3
    assert job.testenv.mining_mode == "mining-then-inference"
    assert job.testenv.dataset.test_key == "test_data_info"
    assert len(job.testenv.metrics) == 20
    assert job.rank.sort_by == [("Accuracy", False), ("Edge Ratio", False)]


def test_the_real_models_algorithm_reads_and_names_what_is_missing(example, capsys,
                                                                     monkeypatch):
    """The shipped real-model algorithm is valid; run without its model folder, it
    stops before any test case with one line naming the folder."""
    from conftest import EXAMPLE, edit
    from edgellm.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    real = f"{EXAMPLE}/testalgorithms/query-routing/real-models.yaml"
    cases = read_algorithm("real", real)
    assert len(cases) == 1
    assert cases[0].modules["edgemodel"].hyperparameters["backend"] == "huggingface"
    assert cases[0].modules["cloudmodel"].hyperparameters["backend"] == "openai"
    edit(JOB, "testalgorithms/query-routing/edge-only.yaml",
         "testalgorithms/query-routing/real-models.yaml")
    assert main(["run", "-f", JOB, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "real-models.yaml: key 'algorithm.modules[1]': backend 'huggingface'" in err
    assert "model folder not found: ./models/Qwen2.5-1.5B-Instruct" in err
