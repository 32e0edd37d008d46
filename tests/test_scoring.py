"""Scorers: hand-computed answers, and agreement with the reference libraries."""

import random

import pytest

from edgellm.tasks.references import parse_answers, parse_reference
from edgellm.tasks.scoring import item_score, normalize_answer, qa_exact, qa_f1, score_task


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert qa_exact("the eiffel tower.", ["Eiffel Tower"]) == 1.0
    # "paris france" vs "paris": precision 1/2, recall 1 -> F1 2/3
    assert qa_f1("Paris, France", ["Paris"]) == pytest.approx(2 / 3)
    # max over acceptable answers
    assert qa_f1("December 1972", ["14 December 1972 UTC", "December 1972"]) == 1.0
    assert qa_f1("", ["x"]) == 0.0
    scores = score_task("QA", ["december 1972", "Lyon", "blue whale"],
                        [["14 December 1972 UTC", "December 1972"], ["Paris"], ["the whale"]])
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0 + 2 * 0.5 * 1 / 1.5) / 3)


def test_qa_list_literals_numpy_and_python():
    assert parse_answers("['14 December 1972 UTC' 'December 1972']") == [
        "14 December 1972 UTC", "December 1972"]
    assert parse_answers("['Everest', 'Mount Everest']") == ["Everest", "Mount Everest"]
    assert parse_answers("Canberra") == ["Canberra"]
    assert parse_answers('["a b" "c"]') == ["a b", "c"]


def test_tc_accuracy_and_macro_f1_by_hand_and_sklearn():
    from sklearn.metrics import f1_score

    gold = ["happy", "happy", "sad", "angry"]
    pred = ["happy", "sad", "sad", None]
    scores = score_task("TC", pred, gold)
    assert scores["accuracy"] == 50.0
    # per label F1: happy 2/3, sad 2/3, angry 0, love/scared/surprise 0 -> mean over 6
    assert scores["macro_f1"] == pytest.approx(100 * (2 / 3 + 2 / 3) / 6)
    assert scores["macro_f1"] == pytest.approx(100 * f1_score(
        gold, [p or "<none>" for p in pred], average="macro", zero_division=0,
        labels=["sad", "happy", "love", "angry", "scared", "surprise"]))
    assert parse_reference("TC", "3") == "angry" and parse_reference("TC", "1.0") == "happy"


def test_ner_by_hand():
    gold = [parse_reference("NER", "B-PER I-PER O B-LOC"), parse_reference("NER", "LOC")]
    pred = [{"tags": ["B-PER", "I-PER", "O", "O"]}, {"tags": ["B-LOC"]}]
    scores = score_task("NER", pred, gold)
    # 3 gold entities, 2 predicted, both right: P 1, R 2/3
    assert scores["precision"] == 100.0
    assert scores["recall"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(80.0)
    assert item_score("NER", pred[0], gold[0]) == pytest.approx(2 / 3)


def test_ner_agrees_with_seqeval_on_random_corpora():
    from seqeval.metrics import f1_score

    rng = random.Random(0)
    kinds = ["PER", "LOC", "ORG", "MISC"]

    def tags(n):
        out, i = [], 0
        while i < n:
            if rng.random() < 0.3:
                k, length = rng.choice(kinds), rng.randint(1, 3)
                out += ["B-" + k] + ["I-" + k] * (length - 1)
                i += length
            else:
                out.append("O")
                i += 1
        return out[:n]

    gold = [tags(rng.randint(3, 15)) for _ in range(200)]
    pred = [g if rng.random() < 0.5 else tags(len(g)) for g in gold]
    ours = score_task("NER", [{"tags": p} for p in pred], gold)["f1"]
    assert ours == pytest.approx(100 * f1_score(gold, pred))


def test_ner_free_form_entity_lists():
    gold = [parse_reference("NER", "PER: Ada Lovelace; LOC: London"),
            parse_reference("NER", '[["Python", "MISC"]]')]
    pred = [{"entities": [["Ada Lovelace", "PER"], ["London", "ORG"]]},
            {"entities": [["Python", "MISC"]]}]
    # 3 gold, 3 predicted, 2 exact (span, type) matches
    scores = score_task("NER", pred, gold)
    assert scores["precision"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(200 / 3)


def test_translation_bleu_chrf_agree_with_sacrebleu():
    import sacrebleu

    refs = ["The weather is nice today.", "Our database is backed up at 2 a.m. every day."]
    hyps = ["The weather is good today.", "Our database is backed up every day at 2 a.m."]
    scores = score_task("TS", hyps, refs)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert score_task("TS", refs, refs)["bleu"] == pytest.approx(100.0)


def test_summarisation_rouge_by_hand_and_library():
    from rouge_score import rouge_scorer

    # LCS "the cat sat" = 3 of 3 predicted and 3 of 6 reference tokens: F1 2/3
    scores = score_task("SG", ["The cat sat."], ["the cat sat on the mat"])
    assert scores["rougeL"] == pytest.approx(100 * 2 / 3)
    expected = rouge_scorer.RougeScorer(["rouge2"], use_stemmer=True).score(
        "the cat sat on the mat", "The cat sat.")["rouge2"].fmeasure
    assert scores["rouge2"] == pytest.approx(100 * expected)


def test_item_scores_on_zero_one():
    assert item_score("TC", "happy", "happy") == 1.0
    assert item_score("MC", "The answer is B", "B") == 1.0
    assert 0 < item_score("TS", "the weather is good", "the weather is nice") < 1
    assert item_score("QA", None, ["x"]) == 0.0


def test_rouge_l_equals_rouge_score_exactly_on_the_shipped_summaries():
    import csv
    from pathlib import Path

    from rouge_score import rouge_scorer

    from edgellm.tasks.scoring import rouge_f1

    path = Path(__file__).resolve().parents[1] / \
        "examples/edge-llm-distribution/dataset/five-tasks/tasks.csv"
    rows = [r for r in csv.DictReader(open(path, encoding="utf-8")) if r["task_type"] == "4"]
    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for row in rows:
        summary, article = row["reference_value"], row["task_token"]
        for candidate in (article[:300], summary[::-1], " ".join(summary.split()[::2]), ""):
            expected = reference.score(summary, candidate)
            assert rouge_f1(summary, candidate) == (
                expected["rouge1"].fmeasure, expected["rouge2"].fmeasure,
                expected["rougeL"].fmeasure)


def test_lcs_length_small_cases():
    from edgellm.tasks.scoring import lcs_length

    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == 0 and lcs_length(["a"], ["a"]) == 1
