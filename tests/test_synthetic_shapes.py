"""The synthetic matrix's other shapes (issue 18: matrices the routers were not
developed on): without its subject column, and the "gap" difficulty model, where the
weak model also fails on a difficulty of its own that other words show. The default
writes what it always wrote, byte for byte."""

import hashlib

import numpy as np
import pytest

from edgellm.cli import main
from edgellm.outcomes import OutcomeSet, synthetic

# `edgellm dataset synthesize` before these shapes existed (commit 110a868): the
# default must keep writing exactly this
DEFAULT_SHA256 = {(300, 0): "57a6668df628a515893da671f8ee8ce145e66e8a31914a88a8a83d671eaa3fa9",
                  (1000, 7): "635a7dd83ac7ffbbc62200e6e822cc04c41494f6ec941c7a427d872ebdd28184"}


@pytest.mark.parametrize("items, seed", sorted(DEFAULT_SHA256))
def test_default_synthesize_writes_the_same_bytes(tmp_path, items, seed):
    path = tmp_path / "m.csv"
    assert main(["dataset", "synthesize", str(path), "--items", str(items), "--seed",
                 str(seed)]) == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DEFAULT_SHA256[items, seed]
    assert synthetic.generate(items, seed, "shared").to_csv() == path.read_text()


def test_the_gap_model_keeps_the_accuracies_and_adds_the_weak_model_s_own_difficulty():
    shared, gap = synthetic.generate(14000, 3), synthetic.generate(14000, 3, "gap")
    assert gap.difficulty_model == "gap" and shared.gap is None
    # the same subjects and the same strong model; the weak model calibrated as before
    assert gap.subjects == shared.subjects
    assert np.array_equal(gap.strong_correct, shared.strong_correct)
    assert abs(gap.weak_correct.mean() - shared.weak_correct.mean()) < 0.015
    # the weak model's errors follow g; the strong model's do not
    high = gap.gap > 1
    assert (~gap.weak_correct[high]).mean() > (~gap.weak_correct[~high]).mean() + 0.2
    assert abs((~gap.strong_correct[high]).mean() - (~gap.strong_correct[~high]).mean()) < 0.03
    # ... and the gap cue words show g: more of them where g is high
    assert np.corrcoef(gap.gap, gap.gap_cues)[0, 1] > 0.25
    words = set(synthetic.GAP_CUES)
    counted = [sum(w.strip("?") in words for w in q.split()) for q in gap.queries[:200]]
    assert counted == gap.gap_cues[:200].tolist()
    assert not any(w in q.split() for q in shared.queries[:500] for w in words)
    # the models disagree more than under the shared difficulty
    only = lambda m: (m.strong_correct & ~m.weak_correct).mean()
    assert only(gap) > only(shared) + 0.02


def test_the_ceiling_of_the_gap_model_reads_the_gap_cues():
    gap = synthetic.generate(4000, 1, "gap")
    outcomes = gap.to_outcome_set()
    from edgellm.metrics.routing_curves import apgr, sweep

    ceiling = synthetic.bayes_gain(gap)
    blind = synthetic.generate(4000, 1, "gap")
    blind.gap_cues = np.zeros_like(blind.gap_cues)  # the ceiling without the gap cues
    assert apgr(sweep(ceiling, outcomes)) > apgr(sweep(synthetic.bayes_gain(blind), outcomes))


def test_without_the_subject_column(tmp_path):
    matrix = synthetic.generate(200, 0)
    path = tmp_path / "m.csv"
    path.write_text(matrix.to_csv(subject=False))
    assert "subject" not in path.read_text().splitlines()[0].split(",")
    outcomes = OutcomeSet.from_matrix(str(path), synthetic.EDGE_MODEL, synthetic.CLOUD_MODEL)
    assert outcomes.subjects == [None] * 200 and outcomes.queries == matrix.queries


def test_an_unknown_difficulty_model_is_refused():
    with pytest.raises(ValueError, match="difficulty must be one of shared, gap"):
        synthetic.generate(10, 0, "hard")
