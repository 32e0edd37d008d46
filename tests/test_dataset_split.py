"""``edgellm dataset split``: items split by the one rule edgellm splits by, every
file written atomically after everything was checked; learned routers fit on the
train part whole and refuse the test part; and the routing-curves job routes test
items only and ranks routers by APGR, CPT and AIQ as the offline evaluation does."""

import csv
import json
import math
import os

import numpy as np
import pytest

from conftest import EXAMPLE
from edgellm.cli import main
from edgellm.files import file_digest
from edgellm.outcomes import OutcomeSet, synthetic
from edgellm.report.router_curves import evaluate_scores
from edgellm.routing.metadata import MetadataRouter
from edgellm.routing.scoring import ScoringRouter
from edgellm.routing.tfidf import TfidfRouter
from edgellm.tasks.ianvs_format import load_llm_dataset

EDGE, CLOUD = synthetic.EDGE_MODEL, synthetic.CLOUD_MODEL


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def matrix(tmp_path):
    path = tmp_path / "matrix.csv"
    path.write_text(synthetic.generate(500, seed=2).to_csv())
    return str(path)


def test_outcome_matrix_split_is_the_split_every_edgellm_split_makes(matrix, tmp_path, capsys):
    out = tmp_path / "split"
    assert main(["dataset", "split", matrix, str(out), "--seed", "3",
                 "--train-fraction", "0.6"]) == 0
    assert "300 train, 200 test" in capsys.readouterr().out
    train, test = rows(out / "train.csv"), rows(out / "test.csv")
    source = rows(matrix)
    assert len(train) + len(test) == len(source) and train[0].keys() == source[0].keys()
    by_item = lambda part: {r["item_id"] for r in part}
    assert not by_item(train) & by_item(test)
    for part in (train, test):  # both models' rows of each item on the same side
        assert sorted(r["model"] for r in part) == sorted([EDGE, CLOUD] * len(by_item(part)))

    whole = OutcomeSet.from_matrix(matrix, EDGE, CLOUD)
    want_train, want_test = whole.split(0.6, seed=3)  # edgellm report --seed 3 ...
    assert [r["item_id"] for r in test if r["model"] == EDGE] == want_test.ids
    assert [r["item_id"] for r in train if r["model"] == EDGE] == want_train.ids

    record = json.loads((out / "split.json").read_text())
    assert (record["train_fraction"], record["seed"], record["items"], record["train_items"],
            record["test_items"]) == (0.6, 3, 500, 300, 200)
    assert record["source_sha256"] == file_digest(matrix)
    assert record["train"]["sha256"] == file_digest(out / "train.csv")
    assert record["test"]["sha256"] == file_digest(out / "test.csv")
    # the test items as an Ianvs dataset, for the job to route
    dataset = load_llm_dataset(str(out / "test_data" / "metadata.json"))
    assert dataset.x == want_test.queries and dataset.level_4 == want_test.subjects

    again = tmp_path / "again"
    assert main(["dataset", "split", matrix, str(again), "--seed", "3",
                 "--train-fraction", "0.6"]) == 0
    assert (again / "test.csv").read_bytes() == (out / "test.csv").read_bytes()
    assert main(["dataset", "split", matrix, str(again), "--seed", "4"]) == 0
    assert (again / "test.csv").read_bytes() != (out / "test.csv").read_bytes()


def test_ianvs_dataset_split_keeps_lines_and_metadata(tmp_path):
    source = f"{os.path.dirname(__file__)}/../{EXAMPLE}/dataset/mcq/test_data"
    out = tmp_path / "mcq"
    assert main(["dataset", "split", source + "/metadata.json", str(out),
                 "--train-fraction", "0.25", "--seed", "1"]) == 0
    with open(f"{source}/data.jsonl") as handle:
        lines = [json.loads(line) for line in handle if line.strip()]
    train = load_llm_dataset(str(out / "train_data" / "metadata.json"))
    test = load_llm_dataset(str(out / "test_data" / "metadata.json"))
    assert (len(train), len(test)) == (40, 120)
    assert sorted(train.x + test.x) == sorted(line["query"] for line in lines)
    order = np.random.default_rng(1).permutation(len(lines))
    assert train.x == [lines[i]["query"] for i in sorted(order[:40])]
    assert "train part: 40 of 160 items, seed 1" in train.description


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("item_id,model,correct\n1,a,yes\n2,a,maybe\n")
    (tmp_path / "one.csv").write_text("item_id,model,correct\n1,a,1\n1,b,0\n")
    for args, message in (
            (["bad.csv", "out"], "bad.csv:3: field 'correct': 'maybe' is not true/false"),
            (["one.csv", "out"], "one.csv: 1 items: too few to split"),
            (["missing.csv", "out"], "missing.csv: file not found"),
            (["notes.txt", "out"], "notes.txt: file not found")):
        assert main(["dataset", "split", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not os.path.exists("out")
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["dataset", "split", "notes.txt", "out"]) == 2
    assert "expected an Ianvs dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dataset", "split", "bad.csv", "out", "--train-fraction", "1"])
    assert "strictly between 0 and 1" in capsys.readouterr().err


def test_learned_routers_fit_the_train_part_whole_and_refuse_the_test_part(matrix, tmp_path):
    out = tmp_path / "split"
    assert main(["dataset", "split", matrix, str(out)]) == 0
    params = {"edge_model": EDGE, "cloud_model": CLOUD}
    router = MetadataRouter(train_outcomes=str(out / "train.csv"), **params)
    report = router.fit_report()
    assert report["train_items"] == 250  # all of the train part, not half of it
    assert report["split"] == {"by": "edgellm dataset split", "source": matrix,
                               "source_sha256": file_digest(matrix), "fraction": 0.5,
                               "seed": 0, "train_items": 250, "test_items": 250}
    test = OutcomeSet.from_matrix(str(out / "test.csv"), EDGE, CLOUD)
    router.route_batch(test.samples())
    assert router.fit_report()["routed_train_items"] == 0
    # fitting on the whole matrix with the same split gives the same router
    whole = MetadataRouter(train_outcomes=matrix, split=0.5, split_seed=0, **params)
    assert np.array_equal(whole.score(test.samples()), router.score(test.samples()))

    with pytest.raises(ValueError, match="is the test part of a split .* fit on the train "
                                         "part, train.csv"):
        TfidfRouter(train_outcomes=str(out / "test.csv"), **params).fit_report()
    again = MetadataRouter(train_outcomes=str(out / "train.csv"), split=0.5, **params)
    assert again.fit_report()["train_items"] == 125  # a split asked for is made
    # a train part edited since the split is a plain matrix again
    edited = (out / "train.csv").read_text().replace("\n", "\r\n", 1)
    (out / "train.csv").write_text(edited)
    assert MetadataRouter(train_outcomes=str(out / "train.csv"), **params) \
        .fit_report()["train_items"] == 125
    everything = MetadataRouter(train_outcomes=matrix, split=1, **params).fit_report()
    assert (everything["train_items"], everything["split"]["test_items"]) == (500, 0)
    with pytest.raises(ValueError, match="split .* must be above 0 and at most 1"):
        MetadataRouter(train_outcomes=matrix, split=1.5, **params).fit_report()


def test_routing_curves_job_routes_test_items_and_ranks_by_apgr(example, capsys):
    """The documented flow end to end: generate, split, import the test part, run."""
    (example / "workspace").mkdir()
    assert main(["dataset", "synthesize", "./workspace/mmlu-synthetic.csv", "--items", "800",
                 "--seed", "0"]) == 0
    assert main(["dataset", "split", "./workspace/mmlu-synthetic.csv",
                 "./workspace/mmlu-synthetic", "--seed", "0"]) == 0
    assert main(["import", "./workspace/mmlu-synthetic/test.csv"]) == 0
    job = f"{EXAMPLE}/benchmarkingjob-routing-curves.yaml"
    assert main(["run", "-f", job, "--no-progress", "--jobs", "1"]) == 0
    with open("workspace/routing-curves/rank/all_rank.csv", newline="") as handle:
        board = list(csv.DictReader(handle))
    by_name = {}
    for row in board:
        by_name.setdefault(row["algorithm"], []).append(row)
    assert len(by_name["tfidf-router"]) == 2
    # the router's curve does not depend on its cloud share: same figures in both rows
    first, second = by_name["tfidf-router"]
    assert first["APGR"] == second["APGR"] and first["Edge Ratio"] != second["Edge Ratio"]
    assert all(math.isnan(float(by_name[n][0]["APGR"] or "nan"))
               for n in ("edge-only", "cloud-only"))
    assert abs(float(by_name["random-router"][0]["APGR"]) - 0.5) < 0.15

    # the leaderboard's figures are those the offline evaluation gives the fitted
    # router on the test part
    test = OutcomeSet.from_matrix("./workspace/mmlu-synthetic/test.csv", EDGE, CLOUD)
    saved = [name for name in os.listdir("workspace/routing-curves/tfidf-router/routers")
             if name.endswith(".joblib")]  # beside it: its signature, .joblib.hmac
    assert len(saved) == 1
    router = ScoringRouter.load(f"workspace/routing-curves/tfidf-router/routers/{saved[0]}")
    offline = evaluate_scores("tfidf", None, router.score(test.samples()), test).metrics
    assert float(first["APGR"]) == round(offline["APGR"], 4)
    assert float(first["CPT(50%)"]) == round(100 * offline["CPT(50%)"], 2)
    assert float(first["AIQ"]) == round(offline["AIQ"], 4)
    assert float(first["APGR"]) > float(by_name["random-router"][0]["APGR"])
    with open(os.path.join(first["url"], "router.json")) as handle:
        fitted = json.load(handle)
    assert fitted["routed_train_items"] == 0 and fitted["train_items"] == 400
    assert (fitted["split"]["seed"], fitted["split"]["fraction"]) == (0, 0.5)

    # AutoRouter: its router.json says what it chose on the train part, and the
    # leaderboard's figures are those of the saved router on the test part
    auto = by_name["auto-router"]
    assert len(auto) == 2 and auto[0]["APGR"] == auto[1]["APGR"]
    with open(os.path.join(auto[0]["url"], "router.json")) as handle:
        chosen = json.load(handle)
    selection = chosen["selection"]
    assert selection["train_items"] == 400 and selection["folds"] == 5
    assert selection["cv_apgr"] == max(c["cv_apgr"] for c in selection["candidates"]
                                       if c["cv_apgr"] is not None)
    assert chosen["label"] == selection["chosen"]["params"]["label"]
    assert chosen["routed_train_items"] == 0
    saved = [name for name in os.listdir("workspace/routing-curves/auto-router/routers")
             if name.endswith(".joblib")]  # beside it: its signature, .joblib.hmac
    assert len(saved) == 1  # fitted once, reused by the second cloud share
    auto_router = ScoringRouter.load(f"workspace/routing-curves/auto-router/routers/{saved[0]}")
    offline = evaluate_scores("auto", None, auto_router.score(test.samples()), test).metrics
    assert float(auto[0]["APGR"]) == round(offline["APGR"], 4)
