"""The outcome-matrix format (edgellm.outcomes): the wide layout beside the long one,
read by OutcomeSet, imported, split; and the synthetic matrix's command."""

import csv
import json
import os

import numpy as np
import pytest

from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.models.importers import read_entries
from edgellm.models.store import open_store
from edgellm.outcomes import OutcomeSet, read_matrix, synthetic

EDGE, CLOUD = "weak/model-7b", "strong-model"
ITEMS = [("What is 2+2?\nA. 3\nB. 4\nAnswer:", "math", True, True),
         ("Which nerve?\nA. one\nB. two\nAnswer:", "anatomy", False, True),
         ("Which year?\nA. 1969\nB. 1970\nAnswer:", "history", True, False),
         ("Which gas?\nA. O2\nB. N2\nAnswer:", "chemistry", False, False)]


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def wide(path, index_column=False):
    """The items as RouteLLM writes them: prompt, one true/false column per model."""
    header = ["prompt", "subject", EDGE, CLOUD]
    rows = [[q, s, e, c] for q, s, e, c in ITEMS]
    if index_column:  # pandas' to_csv with its index: a column with an empty header
        header, rows = [""] + header, [[i] + row for i, row in enumerate(rows)]
    return write_csv(path, header, rows)


def long(path):
    rows = [[i, q, s, model, int(ok)] for i, (q, s, e, c) in enumerate(ITEMS)
            for model, ok in ((EDGE, e), (CLOUD, c))]
    return write_csv(path, ["item_id", "query", "subject", "model", "correct"], rows)


def test_wide_matrix_reads_as_its_long_twin(tmp_path):
    from_wide = OutcomeSet.from_matrix(wide(tmp_path / "w.csv", index_column=True), EDGE, CLOUD)
    from_long = OutcomeSet.from_matrix(long(tmp_path / "l.csv"), EDGE, CLOUD)
    for column in ("ids", "queries", "subjects", "task_types"):
        assert getattr(from_wide, column) == getattr(from_long, column), column
    for column in ("edge_score", "cloud_score", "edge_cost", "cloud_cost"):
        assert np.array_equal(getattr(from_wide, column), getattr(from_long, column)), column
    assert from_wide.ids == ["0", "1", "2", "3"]  # no id column: the row's position
    assert from_wide.edge_score.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_wide_columns_other_than_the_items_are_models(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "q7", "query": "first?", "task_type": "QA", "a": True, "b": 0.25},
        {"id": "q9", "query": "second?", "a": "no", "b": "", "c": 1}]))
    matrix = read_matrix(str(path))
    assert (matrix.layout, matrix.models) == ("wide", ["a", "b", "c"])
    assert [(o.model, o.key, o.response["score"]) for o in matrix.outcomes] == [
        ("a", ("id", "q7"), 1.0), ("b", ("id", "q7"), 0.25),
        ("a", ("id", "q9"), 0.0), ("c", ("id", "q9"), 1.0)]  # an empty cell records none
    assert matrix.outcomes[0].task_type == "question_answering"
    assert matrix.outcomes[0].item == {"id": "q7", "query": "first?"}


def test_wide_errors_name_file_line_and_field(tmp_path):
    path = write_csv(tmp_path / "w.csv", ["prompt", EDGE, CLOUD],
                     [["q1", "True", "False"], ["q2", "maybe", "True"]])
    with pytest.raises(ConfigError, match=rf"w\.csv:3: field '{EDGE}': 'maybe' is not "
                                          r"true/false, 1/0 or a score between 0 and 1"):
        OutcomeSet.from_matrix(path, EDGE, CLOUD)
    path = write_csv(tmp_path / "x.csv", ["prompt", EDGE], [["q1", "True"]])
    with pytest.raises(ConfigError, match=rf"x\.csv: no column '{CLOUD}' \(models in the "
                                          rf"file: {EDGE}\)"):
        OutcomeSet.from_matrix(path, EDGE, CLOUD)
    path = write_csv(tmp_path / "y.csv", ["id", "prompt", EDGE], [[1, "q1", 1], [1, "q2", 0]])
    with pytest.raises(ConfigError, match=rf"y\.csv:3: field 'item_id': model '{EDGE}' has "
                                          r"this item already at line 2"):
        read_matrix(path)


def test_wide_matrix_imports_and_replays_per_model(tmp_path):
    path = wide(tmp_path / "w.csv")
    entries = read_entries(path)
    assert len(entries) == 8
    assert {e.identity for e in entries} == {EDGE, CLOUD}
    first = entries[0]
    assert first.item == {"id": "0", "query": ITEMS[0][0]}
    assert first.response["score"] == 1.0 and first.response["completion"] is None
    store = str(tmp_path / "s.sqlite")
    assert main(["import", path, "--store", store]) == 0
    opened = open_store(store)
    assert len(list(opened.entries())) == 8
    opened.close()


def test_wide_matrix_splits_like_its_outcome_set(tmp_path, capsys):
    path = wide(tmp_path / "w.csv")
    out = tmp_path / "split"
    assert main(["dataset", "split", path, str(out), "--seed", "3"]) == 0
    record = json.loads((out / "split.json").read_text())
    assert (record["format"], record["items"], record["rows"]) == ("outcomes-wide", 4, 4)
    whole = OutcomeSet.from_matrix(path, EDGE, CLOUD)
    train, test = whole.split(0.5, seed=3)
    part = OutcomeSet.from_matrix(str(out / "test.csv"), EDGE, CLOUD)
    assert part.queries == test.queries and part.subjects == test.subjects
    assert os.path.isfile(out / "test_data" / "data.jsonl")
    lines = [json.loads(line) for line in (out / "test_data" / "data.jsonl").open()]
    assert [line["query"] for line in lines] == test.queries


def test_synthesize_writes_the_generators_matrix(tmp_path, capsys):
    path = tmp_path / "m.csv"
    assert main(["dataset", "synthesize", str(path), "--items", "120", "--seed", "4"]) == 0
    assert "wrote 120 items x 2 models" in capsys.readouterr().out
    assert path.read_text() == synthetic.generate(120, seed=4).to_csv()
    assert path.read_text().splitlines()[0] == ("item_id,query,subject,model,correct,"
                                                "prompt_tokens,completion_tokens,e2e_latency,"
                                                "cost_usd")
    assert main(["dataset", "synthesize", str(tmp_path / "m.txt")]) == 2
    assert "expected a .csv file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dataset", "synthesize", str(path), "--items", "0"])
