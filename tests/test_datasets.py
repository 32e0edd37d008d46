"""Dataset formats: the distribution center's CSV/JSONL, Ianvs' LLM format, mcq sets."""

import csv
import json
import re

import pytest

from edgellm import rows
from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.tasks.datasets import read_items, write_items
from edgellm.tasks.ianvs_format import load_llm_dataset
from edgellm.tasks.references import parse_reference
from edgellm.tasks.scoring import item_score

ROWS = [
    ("0", "0", "i miss my grandmother so much today", "0"),
    ("0", "QA", "Which city is the capital of Australia?", "Canberra"),
    ("1", "2", "When did Apollo 17 land?", "['14 December 1972 UTC' 'December 1972']"),
    ("0", "1", "Ada Lovelace lived in London .", "B-PER I-PER O O B-LOC O"),
    ("1", "NER", "Nairobi", "LOC"),
    ("0", "3", "今天天气很好。", "The weather is nice today."),
    ("0", "4", "The council met on Monday. It approved the budget.", "The council approved it."),
]

QA_LIST = '["14 December 1972 UTC", "December 1972"]'  # ROWS[2]'s answers, as JSON


def write_csv(path, rows, header=("task_id", "task_type", "task_token", "reference_value")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def test_tasks_csv_ids_repeat_across_types(tmp_path):
    items, skipped = read_items(write_csv(tmp_path / "t.csv", ROWS))
    assert skipped == 0
    assert [(i.code, i.task_id) for i in items] == [
        ("TC", "0"), ("QA", "0"), ("QA", "1"), ("NER", "0"), ("NER", "1"), ("TS", "0"),
        ("SG", "0")]
    assert items[2].reference == "['14 December 1972 UTC' 'December 1972']"


def test_reference_enum_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("5", "0", "so scared of the dark", "4")],
                     header=("task_id", "task_type", "task_token", "reference_enum"))
    assert read_items(path)[0][0].reference == "4"


def test_duplicate_id_within_a_type_names_both_lines(tmp_path):
    path = write_csv(tmp_path / "t.csv", ROWS + [("1", "QA", "Another?", "x")])
    with pytest.raises(ConfigError, match=r"t.csv:9: field 'task_id': task QA 1 also at line 4"):
        read_items(path)


def test_bad_rows_name_file_line_field_or_are_skipped(tmp_path):
    rows = ROWS + [("2", "1", "Ada lived here .", "B-PER O O"),   # 3 tags, 4 tokens
                   ("3", "9", "what?", "x"),                       # unknown type
                   ("4", "0", "hmm", "")]                           # no reference
    path = write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(ConfigError, match=r"t.csv:9: field 'reference_value': 3 tags for 4"):
        read_items(path)
    items, skipped = read_items(path, skip_bad_rows=True)
    assert (len(items), skipped) == (7, 3)


def test_jsonl_tasks_and_malformed_line(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [json.dumps({"task_id": r[0], "task_type": r[1], "task_token": r[2],
                         "reference_value": r[3]}, ensure_ascii=False) for r in ROWS]
    path.write_text("\n".join(lines[:3] + ["{not json"] + lines[3:]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"t.jsonl:4: invalid JSON"):
        read_items(str(path))
    assert len(read_items(str(path), skip_bad_rows=True)[0]) == 7


def test_ianvs_folder_round_trip_keeps_task_types(tmp_path):
    items, _ = read_items(write_csv(tmp_path / "t.csv", ROWS))
    write_items(items, str(tmp_path / "ianvs"))
    meta = json.loads((tmp_path / "ianvs" / "metadata.json").read_text())
    assert {"dataset", "description", "level_1_dim", "level_2_dim"} <= meta.keys()
    back, _ = read_items(str(tmp_path / "ianvs" / "metadata.json"))
    assert [(i.code, i.task_id, i.text, parse_reference(i.task_type, i.reference))
            for i in back] == \
        [(i.code, i.task_id, i.text, parse_reference(i.task_type, i.reference)) for i in items]
    # task type from level_3_dim alone (no field of its own)
    data = tmp_path / "ianvs" / "data.jsonl"
    records = [json.loads(line) for line in data.read_text().splitlines()]
    for r in records:
        del r["task_type"], r["task_id"]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [i.code for i in read_items(str(tmp_path / "ianvs"))[0]] == \
        ["TC", "QA", "QA", "NER", "NER", "TS", "SG"]


def test_mcq_csv(tmp_path):
    path = write_csv(tmp_path / "m.csv", [("2+2?", "3", "4", "5", "6", "1"),
                                          ("Red planet?", "Mars", "Venus", "", "", "A")],
                     header=("question", "A", "B", "C", "D", "answer"))
    items, _ = read_items(path)
    assert items[0].text == "Question: 2+2?\nA. 3\nB. 4\nC. 5\nD. 6" and items[0].reference == "B"
    assert items[1].text.endswith("B. Venus") and items[1].reference == "A"


def test_convert_cli_round_trip_and_errors(tmp_path, capsys):
    source = write_csv(tmp_path / "t.csv", ROWS)
    assert main(["dataset", "convert", source, str(tmp_path / "out")]) == 0
    assert main(["dataset", "convert", str(tmp_path / "out"), str(tmp_path / "back.csv")]) == 0
    out = capsys.readouterr().out
    assert "wrote 7 items" in out and "NER 2" in out
    with open(tmp_path / "back.csv", newline="", encoding="utf-8") as handle:
        back = [(r["task_id"], r["task_token"], r["reference_value"]) for r in csv.DictReader(handle)]
    assert back == [(r[0], r[2], r[3] if r[2] != ROWS[2][2] else QA_LIST) for r in ROWS]

    bad = write_csv(tmp_path / "bad.csv", ROWS + [("7", "1", "a b", "B-PER")])
    assert main(["dataset", "convert", bad, str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv:9: field 'reference_value'" in err
    assert main(["dataset", "convert", bad, str(tmp_path / "x.csv"), "--skip-bad-rows"]) == 0
    assert "skipped 1 bad row\n" in capsys.readouterr().out


def test_convert_writes_numpy_style_answer_lists_as_json_lists(tmp_path):
    """The distribution center writes a QA item's answers as numpy prints them
    ("['a' 'b']"): Ianvs' data.jsonl and a CSV written back get the JSON list as text
    (Ianvs loads every response into one numpy array of strings, which cannot hold a
    list), the tasks JSONL a JSON list; the answers, and so the scores, stay the same."""
    source = write_csv(tmp_path / "t.csv", ROWS)
    assert main(["dataset", "convert", source, str(tmp_path / "ianvs")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "ianvs" / "data.jsonl").open()]
    assert json.loads(lines[2]["response"]) == ["14 December 1972 UTC", "December 1972"]
    assert all(isinstance(line["response"], str) for line in lines)
    assert [line["response"] for line in lines if line["task_type"] != "QA"] == \
        [r[3] for r in ROWS if r[1] not in ("QA", "2")]  # other references as they were
    assert lines[1]["response"] == "Canberra"  # one plain answer stays a string
    assert main(["dataset", "convert", str(tmp_path / "ianvs"), str(tmp_path / "back.csv")]) == 0
    assert main(["dataset", "convert", str(tmp_path / "back.csv"), str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "data.jsonl").read_text() == \
        (tmp_path / "ianvs" / "data.jsonl").read_text()
    assert main(["dataset", "convert", str(tmp_path / "ianvs"), str(tmp_path / "t.jsonl")]) == 0
    tasks = [json.loads(line) for line in (tmp_path / "t.jsonl").open()]
    assert tasks[2]["reference_value"] == ["14 December 1972 UTC", "December 1972"]
    for prediction in ("December 1972", "14 December 1972", "1973", ""):
        scores = {item_score("question_answering", prediction,
                             parse_reference("question_answering", gold))
                  for gold in (ROWS[2][3], lines[2]["response"], QA_LIST)}
        assert len(scores) == 1, prediction
    # a bracketed plain answer is not a list of answers
    assert parse_reference("question_answering", "[1969]") == ["[1969]"]


HEADER = b"task_id,task_type,task_token,reference_value\r\n"
GOOD = b"".join(b"%d,0,fine text %d,2\r\n" % (i, i) for i in range(3))
UNFIT = [(b"7,0,caf\xe9 in latin-1,2\r\n", "task_token", "is not UTF-8 text"),
         (b"8,0,nul\x00byte,2\r\n", "task_token", "holds a NUL byte"),
         (b"9,0,one,2,too many\r\n", "(line)", "5 cells, but the header has 4 columns"),
         (b"10,0,too few\r\n", "(line)", "3 cells, but the header has 4 columns")]


@pytest.mark.parametrize("row, field, problem", UNFIT,
                         ids=["not-utf8", "nul-byte", "more-cells", "fewer-cells"])
def test_rows_that_do_not_fit_or_are_not_text_are_named(tmp_path, row, field, problem):
    """A row of bytes that are not UTF-8, with a NUL byte, or with more or fewer cells
    than the header is a bad row, named by its line and column."""
    source = tmp_path / "t.csv"
    source.write_bytes(HEADER + GOOD + row + GOOD.replace(b",0,", b",1,"))
    where = "" if field == "(line)" else f"field '{re.escape(field)}': "  # the whole row
    with pytest.raises(ConfigError, match=rf"t.csv:5: {where}{problem}"):
        read_items(str(source))


def test_rows_that_do_not_fit_are_skipped_and_counted(tmp_path, capsys):
    source = tmp_path / "t.csv"
    source.write_bytes(HEADER + GOOD + b"".join(row for row, _, _ in UNFIT))
    assert main(["dataset", "convert", str(source), str(tmp_path / "out.jsonl"),
                 "--skip-bad-rows"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 3 items") and out.endswith("(TC 3); skipped 4 bad rows\n")
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3


def test_a_column_named_twice_is_an_error(tmp_path):
    source = write_csv(tmp_path / "t.csv", [("0", "0", "a", "b", "2")], header=(
        "task_id", "task_type", "task_token", "task_token", "reference_value"))
    with pytest.raises(ConfigError, match=r"t.csv:1: column 'task_token' given twice"):
        read_items(source)


def test_a_header_only_file_says_it_has_no_rows(tmp_path, capsys):
    source = write_csv(tmp_path / "t.csv", [])
    for extra in ([], ["--from", "tasks"]):
        assert main(["dataset", "convert", source, str(tmp_path / "o.jsonl")] + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"edgellm: error: {source}: no rows") and "expected" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_long_cells_read_and_deep_lists_do_not_recurse(tmp_path, monkeypatch):
    """A document of 200,000 characters (csv's own limit is 131,072) is a cell like
    any other; a QA reference nested 50,000 deep is taken as text, not a
    RecursionError; a cell past edgellm's limit is an error at its line."""
    document = "word " * 40_000
    deep = "[" * 50_000 + "]" * 50_000
    path = write_csv(tmp_path / "t.csv", [("0", "TS", document, "a summary"),
                                          ("1", "QA", "q?", deep)])
    items, _ = read_items(path)
    assert items[0].text == document and items[1].reference == deep
    monkeypatch.setattr(rows, "MAX_CELL_CHARS", 100_000)
    with pytest.raises(ConfigError, match=r"t.csv:2: cannot read the row: field larger than "
                                          r"field limit \(100000\)"):
        read_items(path)


LINE = {"query": "Q?", "response": "A", "level_1_dim": "single-modal", "level_2_dim": "text",
        "level_3_dim": "knowledge Q&A", "level_4_dim": "general"}
META = {"dataset": "d", "description": "", "level_1_dim": "", "level_2_dim": ""}


def ianvs_folder(tmp_path, *lines):
    folder = tmp_path / "d"
    folder.mkdir(exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps(META))
    (folder / "data.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(folder / "metadata.json")


@pytest.mark.parametrize("key, value, expected", [
    ("query", 42, "text or a list of chat messages"),
    ("query", None, "text or a list of chat messages"),
    ("query", [{"role": "user"}], "text or a list of chat messages"),
    ("response", 2, "text or a list of answers"),
    ("response", None, "text or a list of answers"),
    ("prompt", 7, "text"),
    ("level_3_dim", ["TC"], "text"),
])
def test_dataset_lines_holding_values_of_another_kind_are_named(tmp_path, key, value,
                                                                 expected):
    """Each of these failed (or scored wrong) only when a test case ran; now the
    dataset does not load, naming the line and the key."""
    path = ianvs_folder(tmp_path, LINE, dict(LINE, **{key: value}))
    data = str(tmp_path / "d" / "data.jsonl")
    with pytest.raises(ConfigError, match=rf"{re.escape(data)}:2: key '{key}': expected "
                                          rf"{re.escape(expected)}( \(.*\))?, got"):
        load_llm_dataset(path)
    with pytest.raises(ConfigError, match=rf"data.jsonl:2: field '{key}': expected"):
        read_items(path)


def test_chat_message_queries_answer_lists_and_null_levels_load(tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    path = ianvs_folder(tmp_path, dict(LINE, query=messages),
                        dict(LINE, response=["Canberra", "canberra"], level_3_dim=None))
    dataset = load_llm_dataset(path)
    assert dataset.x == [messages, "Q?"] and dataset.y == ["A", ["Canberra", "canberra"]]
    assert dataset.level_3 == ["knowledge Q&A", None]
