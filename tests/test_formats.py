"""The one format sniffer (edgellm.formats) and the one row reader (edgellm.rows)."""

import json

import pytest

from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.formats import expect_format, sniff
from edgellm.rows import BadRow, parse_rows

FILES = {
    "tasks.csv": ("task_id,task_type,task_token,reference_value\n0,QA,q,a\n", "tasks"),
    "mcq.jsonl": (json.dumps({"question": "q", "choices": ["a", "b"], "answer": 0}) + "\n",
                  "mcq"),
    "data.jsonl": (json.dumps({"query": "q", "response": "A", "task_type": "QA"}) + "\n",
                   "ianvs"),
    "long.csv": ("item_id,model,correct\n0,a,1\n", "outcomes"),
    "long.jsonl": (json.dumps({"id": 0, "model": "a", "score": 0.5}) + "\n", "outcomes"),
    "wide.csv": ("prompt,weak,strong\nq,True,False\n", "outcomes-wide"),
    "store.jsonl": (json.dumps({"edgellm_store": 1, "model": "a"}) + "\n", "store"),
    "cache.json": ("[]", "ianvs-cache"),
    "notes.csv": ("a,b\n1,2\n", None),
    "notes.txt": ("hello", None),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_sniff_tells_each_format(tmp_path, name):
    content, expected = FILES[name]
    path = tmp_path / name
    path.write_text(content)
    assert sniff(str(path)) == expected


def test_a_folder_or_metadata_json_is_an_ianvs_dataset(tmp_path):
    assert sniff(str(tmp_path)) == "ianvs"
    assert sniff(str(tmp_path / "metadata.json")) == "ianvs"


def test_each_caller_says_in_one_line_what_it_expected(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, (content, _) in FILES.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match=r"tasks.csv: holds a tasks file, expected an "
                                          r"outcome matrix, long"):
        expect_format("tasks.csv", ("outcomes", "outcomes-wide"))
    with pytest.raises(ConfigError, match=r"notes.csv: unknown format: expected a tasks file"):
        expect_format("notes.csv", ("tasks", "mcq", "ianvs"))
    with pytest.raises(ConfigError, match=r"empty.jsonl: no rows: the file is empty$"):
        expect_format("empty.jsonl", ("outcomes",))
    for argv, message in (
            (["import", "tasks.csv", "--store", "s.sqlite"],
             "tasks.csv: holds a tasks file, expected an outcome matrix"),
            (["dataset", "convert", "long.csv", "out"],
             "long.csv: holds an outcome matrix, long, expected a tasks file"),
            (["dataset", "split", "store.jsonl", "out"],
             "store.jsonl: holds an 'edgellm export' file, expected an Ianvs dataset")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_parse_rows_names_file_line_and_field_or_skips_and_counts(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('a,b\n1,x\n2,"two\nlines"\n3,y\n')

    def parse(row, line, index):
        if row["a"] == "2":
            raise BadRow("b", "not a letter")
        return (row["a"], line, index)

    with pytest.raises(ConfigError, match=r"rows.csv:3: field 'b': not a letter$"):
        parse_rows(str(path), parse)
    assert parse_rows(str(path), parse, skip_bad_rows=True) == ([("1", 2, 0), ("3", 5, 2)], 1)
