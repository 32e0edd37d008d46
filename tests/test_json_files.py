"""JSON and JSONL files as users hand them over: saved by a Windows tool (a UTF-8
byte-order mark first) they read as without one; crafted to nest 100,000 deep they
are a one-line error, not a RecursionError."""

import json

import pytest

from conftest import EXAMPLE, JOB
from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.models.importers import IanvsCacheReader, read_export
from edgellm.outcomes.matrix import read_matrix
from edgellm.outcomes.split import split_part
from edgellm.tasks.datasets import read_items
from edgellm.tasks.ianvs_format import load_llm_dataset, load_qa_jsonl

BOM = "\ufeff"
MCQ = f"{EXAMPLE}/dataset/mcq/test_data"


def twins(tmp_path, name, text):
    """``text`` as ``plain/<name>`` and, after a byte-order mark, as ``bom/<name>``."""
    for folder, prefix in (("plain", ""), ("bom", BOM)):
        path = tmp_path / folder / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(prefix + text, encoding="utf-8")
    return str(tmp_path / "plain" / name), str(tmp_path / "bom" / name)


def test_every_json_reader_drops_a_byte_order_mark(tmp_path, example):
    meta = open(f"{MCQ}/metadata.json", encoding="utf-8").read()
    data = open(f"{MCQ}/data.jsonl", encoding="utf-8").read()
    twins(tmp_path, "data.jsonl", data)
    plain, bom = twins(tmp_path, "metadata.json", meta)
    assert vars(load_llm_dataset(bom)) == vars(load_llm_dataset(plain)) | {
        "source": str(tmp_path / "bom" / "data.jsonl")}
    assert read_items(bom) == read_items(plain)
    plain, bom = twins(tmp_path, "qa.jsonl", '{"question": "q", "answer": "a"}\n')
    assert load_qa_jsonl(bom).x == load_qa_jsonl(plain).x == ["q"]
    plain, bom = twins(tmp_path, "m.jsonl", '{"id": 1, "model": "a", "correct": true}\n')
    assert len(read_matrix(bom).outcomes) == len(read_matrix(plain).outcomes) == 1
    plain, bom = twins(tmp_path, "e.jsonl", json.dumps(
        {"edgellm_store": 1, "model": "a", "settings": {}, "response": {},
         "item": {"id": 1}}) + "\n")
    assert len(read_export(bom)) == len(read_export(plain)) == 1
    plain, bom = twins(tmp_path, "cache.json", json.dumps([{"config": {"model": "m"},
                       "result": [{"query": "q", "response": {"completion": "A"}}]}]))
    reader = IanvsCacheReader()
    assert len(reader.read(bom)) == len(reader.read(plain)) == 1
    for folder in ("plain", "bom"):
        (tmp_path / folder / "train.csv").write_text("x\n")
    plain, bom = twins(tmp_path, "split.json", json.dumps({"train": {"file": "train.csv"}}))
    assert split_part(str(tmp_path / "bom" / "train.csv"))[1] == {"train": {"file": "train.csv"}}


def test_a_job_runs_on_a_dataset_saved_with_byte_order_marks(example, capsys):
    for name in ("metadata.json", "data.jsonl"):
        path = f"{MCQ}/{name}"
        text = open(path, encoding="utf-8").read()
        open(path, "w", encoding="utf-8").write(BOM + text)
    assert main(["run", "-f", JOB, "--no-progress"]) == 0, capsys.readouterr().err


def test_a_split_record_nested_deep_is_one_line(tmp_path):
    (tmp_path / "train.csv").write_text("x\n")
    (tmp_path / "split.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"split.json: not a split record: nested too deeply"):
        split_part(str(tmp_path / "train.csv"))
