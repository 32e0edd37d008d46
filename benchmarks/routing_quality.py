"""How well do the learned routers route? (issue 5: on a public-style weak/strong
outcome matrix of 14,000 MMLU items, subject known, 50/50 split of the items with seed
0, the best shipped learned router reaches APGR >= 0.65 and CPT(50 %) <= 30 % on the
test half; the RouteLLM paper's best router: APGR 0.603, CPT(50 %) 35.4 % on MMLU.)

Builds the synthetic MMLU-shaped matrix (edgellm.testing.outcome_matrix, whose
docstring describes and calibrates it), writes it as an outcome-matrix CSV and reads
it back as ``edgellm report`` would, splits the items 50/50 with seed 0, fits every
learned router of edgellm.routing.learned on the train half with each training label
and prints, on the test half, APGR, CPT(50 %), CPT(80 %) and AIQ, the threshold
calibrated to a 50 % cloud share on train and the share it reaches on test, with the
random router (10 seeds) and the oracle.

    python benchmarks/routing_quality.py [--items 14000] [--seed 0]
        [--routers TfidfRouter ...] [--labels edge_wrong cloud_right_edge_wrong expected_gain]
"""

import argparse
import functools
import os
import sys
import tempfile
import time

import numpy as np

LABELS = ("edge_wrong", "cloud_right_edge_wrong", "expected_gain")
# Routers that cannot be fitted from an outcome matrix alone
NOT_FITTED_HERE = {"BERTRouter": "needs a local fine-tuned model (model_path)",
                   "CascadeRouter": "routes on the edge's answer, not the query"}


class SubjectPriorPlaceholder:
    """PLACEHOLDER, used only while edgellm.routing.learned is missing: the share of
    the train items of the query's subject that carry the label. Not a shipped
    router; the MetadataRouter of edgellm.routing.learned replaces it."""

    def __init__(self, label="cloud_right_edge_wrong"):
        self.label = label

    def fit(self, samples, labels):
        totals = {}
        for sample, label in zip(samples, labels):
            count, positive = totals.get(sample["subject"], (0, 0))
            totals[sample["subject"]] = (count + 1, positive + int(label))
        self.prior = {s: positive / count for s, (count, positive) in totals.items()}
        self.default = float(np.mean(labels))
        return self

    def score(self, samples):
        return np.array([self.prior.get(s["subject"], self.default) for s in samples])


def placeholder_labels(train, label):
    if label == "edge_wrong":
        return (train.edge_score < 1.0).astype(int)
    return (train.cloud_score > train.edge_score).astype(int)


def routers_to_run(names):
    from edgellm.report.router_curves import learned_router_classes

    classes = learned_router_classes()
    if not classes:
        print("NOTE: edgellm.routing.learned is not there yet: a subject-prior PLACEHOLDER "
              "written inside this benchmark stands in for the learned routers.\n")
        return {"SubjectPrior (placeholder)": SubjectPriorPlaceholder}, True
    if names:
        unknown = [n for n in names if n not in classes]
        if unknown:
            sys.exit(f"unknown routers {unknown}; known: {sorted(classes)}")
        classes = {n: classes[n] for n in names}
    return classes, False


def fmt(value, percent=False):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=14000)
    parser.add_argument("--seed", type=int, default=0, help="matrix seed (split seed is 0)")
    parser.add_argument("--routers", nargs="*", help="class names (default: all)")
    parser.add_argument("--labels", nargs="*", default=list(LABELS), choices=LABELS)
    args = parser.parse_args()

    from edgellm.bench.atomic import write_text
    from edgellm.report import router_curves
    from edgellm.routing.outcomes import OutcomeSet
    from edgellm.testing import outcome_matrix

    matrix = outcome_matrix.generate(args.items, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mmlu_synthetic.csv")
        write_text(path, matrix.to_csv())
        outcomes = OutcomeSet.from_matrix(path, outcome_matrix.EDGE_MODEL,
                                          outcome_matrix.CLOUD_MODEL)
    train, test = outcomes.split(0.5, seed=0)
    print(f"matrix: {len(outcomes)} items, {len(set(outcomes.subjects))} subjects, seed "
          f"{args.seed}; edge {outcome_matrix.EDGE_MODEL} accuracy "
          f"{outcomes.edge_accuracy:.3f}, cloud {outcome_matrix.CLOUD_MODEL} "
          f"{outcomes.cloud_accuracy:.3f}")
    print(f"split: {len(train)} train / {len(test)} test items (fraction 0.5, seed 0); "
          f"test accuracies: edge {test.edge_accuracy:.3f}, cloud {test.cloud_accuracy:.3f}")
    print("signal in the matrix (AUC vs oracle label, vs edge wrong): " + "; ".join(
        f"{k} {a:.2f}, {b:.2f}" for k, (a, b) in outcome_matrix.signal_summary(matrix).items()))
    print()

    classes, placeholder = routers_to_run(args.routers)
    if "TfidfRouter" in classes:  # the text router with the subject as features too
        classes["TfidfRouter+subject"] = functools.partial(classes["TfidfRouter"],
                                                           metadata=["subject"])
        # the subject columns regularised less than the words (weight chosen by 5-fold
        # cross-validation on the train half, docs/routers.md)
        classes["TfidfRouter+subject x3"] = functools.partial(
            classes["TfidfRouter"], metadata=["subject"], metadata_weight=3.0)
        # the recommended configuration (docs/routers.md, the example's tfidf-router.yaml):
        # one round of adaptive ridge on the words, C and metadata_weight chosen by 5-fold
        # cross-validation of APGR on the train halves of matrix seeds 0-4
        classes["TfidfRouter+subject adaptive"] = functools.partial(
            classes["TfidfRouter"], metadata=["subject"], metadata_weight=5.0, C=0.03,
            reweight=1)
    if placeholder:
        router_curves.training_labels = placeholder_labels
    header = (f"{'router':<28} {'label':<23} {'APGR':>6} {'CPT50':>6} {'CPT80':>6} {'AIQ':>6} "
              f"{'thr@50%':>8} {'test share':>10} {'fit s':>6} {'score q/s':>10}")
    print(header)
    print("-" * len(header))
    results = []
    for name, cls in classes.items():
        if name in NOT_FITTED_HERE:
            print(f"{name:<28} skipped: {NOT_FITTED_HERE[name]}")
            continue
        for label in args.labels:
            try:
                evaluation = router_curves.fit_and_evaluate(name, cls(label=label), train, test,
                                                            label)
            except (ValueError, ImportError, OSError, TypeError) as err:
                print(f"{name:<28} {label:<23} skipped: {type(err).__name__}: {err}")
                continue
            results.append((name, label, evaluation))
            m, c = evaluation.metrics, evaluation.calibration
            print(f"{name:<28} {label:<23} {fmt(m['APGR']):>6} {fmt(m['CPT(50%)'], True):>6} "
                  f"{fmt(m['CPT(80%)'], True):>6} {fmt(m['AIQ']):>6} {c.threshold:>8.4f} "
                  f"{fmt(c.test_share, True):>10} {evaluation.fit_seconds:>6.1f} "
                  f"{len(test) / evaluation.score_seconds:>10.0f}")
    start = time.perf_counter()
    random, oracle = router_curves.baselines(test)
    # what the generator's own parameters give (outcome_matrix.bayes_gain): the
    # ceiling of a router that reads the subject and the cue words
    ceiling = router_curves.evaluate_scores(
        "ceiling", None, outcome_matrix.bayes_gain(matrix)[[int(i) for i in test.ids]], test)
    for evaluation, what in ((random, "random (10 seeds)"), (oracle, "oracle"),
                             (ceiling, "ceiling (generator's params)")):
        m = evaluation.metrics
        print(f"{what:<28} {'':<23} {fmt(m['APGR']):>6} {fmt(m['CPT(50%)'], True):>6} "
              f"{fmt(m['CPT(80%)'], True):>6} {fmt(m['AIQ']):>6}")
    print(f"(baselines: {time.perf_counter() - start:.2f} s)")
    print()
    if results:
        name, label, best = max(results, key=lambda r: r[2].metrics["APGR"])
        apgr, cpt50 = best.metrics["APGR"], best.metrics["CPT(50%)"]
        verdict = "meets" if apgr >= 0.65 and cpt50 <= 0.30 else "does NOT meet"
        print(f"best{' (PLACEHOLDER, not a shipped router)' if placeholder else ''}: {name} "
              f"({label}): APGR {apgr:.3f} (target >= 0.65), CPT(50%) {100 * cpt50:.1f}% "
              f"(target <= 30%): {verdict} the issue's figure")
    print("references: RouteLLM paper, best router on MMLU: APGR 0.603, CPT(50%) 35.4%; on "
          "RouteLLM's real MMLU matrix (same split rule): subject prior 0.671 (0.637 without "
          "the high-school-mathematics grading artefact), TF-IDF 0.647")


if __name__ == "__main__":
    main()
