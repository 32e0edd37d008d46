"""How well do the learned routers route? (issue 5: on a public-style weak/strong
outcome matrix of 14,000 MMLU items, subject known, 50/50 split of the items with seed
0, the best shipped learned router reaches APGR >= 0.65 and CPT(50 %) <= 30 % on the
test half; the RouteLLM paper's best router: APGR 0.603, CPT(50 %) 35.4 % on MMLU.)

Builds the synthetic MMLU-shaped matrix (edgellm.outcomes.synthetic, ``edgellm dataset
synthesize``, whose docstring describes and calibrates it), writes it as an outcome-matrix CSV and reads
it back as ``edgellm report`` would, splits the items 50/50 with seed 0, fits every
learned router of edgellm.routing.ROUTERS on the train half with each training label
and prints, on the test half, APGR, CPT(50 %), CPT(80 %) and AIQ, the threshold
calibrated to a 50 % cloud share on train and the share it reaches on test, with the
random router (10 seeds) and the oracle.

``--routellm DIR`` runs the same on the public matrix the synthetic one imitates:
RouteLLM's recorded MMLU outcomes (routellm/evals/mmlu/responses/ of a RouteLLM
checkout, github.com/lm-sys/RouteLLM; not shipped here): one mmlu_<subject>.csv per
subject in the wide outcome-matrix layout (edgellm.outcomes: a ``prompt`` column and
one true/false column per model), here Mixtral-8x7B-Instruct-v0.1 (edge) and
gpt-4-1106-preview (cloud). The files record no cost: each cloud call costs 1, so AIQ is over the cloud-call share.
``--exclude-subjects high_school_mathematics`` leaves out the subject whose recorded
gpt-4 accuracy (3 %) is a grading artefact.

    python benchmarks/routing_quality.py [--items 14000] [--seed 0]
        [--routers TfidfRouter ...] [--labels edge_wrong cloud_right_edge_wrong expected_gain]
        [--routellm DIR [--exclude-subjects SUBJECT ...]]
"""

import argparse
import functools
import glob
import os
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

from edgellm.errors import ConfigError
from edgellm.files import write_text
from edgellm.outcomes import OutcomeSet, synthetic
from edgellm.report import router_curves

LABELS = ("edge_wrong", "cloud_right_edge_wrong", "expected_gain")
# Routers that cannot be fitted from an outcome matrix alone
NOT_FITTED_HERE = {"BERTRouter": "needs a local fine-tuned model (model_path)",
                   "CascadeRouter": "routes on the edge's answer, not the query"}
ROUTELLM_MODELS = ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")


def read_routellm_mmlu(folder, exclude=()):
    """RouteLLM's recorded MMLU outcomes (the module docstring) as an OutcomeSet: each
    file read as a wide outcome matrix (edgellm.outcomes), its subject from its name;
    a bad folder or file is a one-line exit naming it."""
    paths = sorted(glob.glob(os.path.join(folder, "mmlu_*.csv")))
    if not paths:
        sys.exit(f"error: {folder}: no mmlu_<subject>.csv files (expected RouteLLM's "
                 "routellm/evals/mmlu/responses folder)")
    parts = []
    for path in paths:
        subject = os.path.basename(path)[len("mmlu_"):-len(".csv")]
        if subject in exclude:
            continue
        try:
            part = OutcomeSet.from_matrix(path, *ROUTELLM_MODELS)
        except ConfigError as err:
            sys.exit(f"error: {err}")
        parts.append(replace(part, subjects=[subject] * len(part)))
    if not parts:
        sys.exit(f"error: {folder}: every subject was excluded")
    n = sum(len(part) for part in parts)
    return OutcomeSet(
        ids=[str(i) for i in range(n)], queries=[q for part in parts for q in part.queries],
        subjects=[s for part in parts for s in part.subjects],
        task_types=["multiple_choice"] * n,
        edge_score=np.concatenate([part.edge_score for part in parts]),
        cloud_score=np.concatenate([part.cloud_score for part in parts]),
        edge_cost=np.zeros(n), cloud_cost=np.ones(n), edge_model=ROUTELLM_MODELS[0],
        cloud_model=ROUTELLM_MODELS[1], source=f"RouteLLM's MMLU outcomes ({folder})")


def synthetic_outcomes(items, seed):
    """The synthetic matrix, written as an outcome-matrix CSV and read back as
    ``edgellm report`` reads it."""
    matrix = synthetic.generate(items, seed)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mmlu_synthetic.csv")
        write_text(path, matrix.to_csv())
        return matrix, OutcomeSet.from_matrix(path, synthetic.EDGE_MODEL, synthetic.CLOUD_MODEL)


def routers_to_run(names):
    classes = router_curves.learned_router_classes()
    if names:
        unknown = [n for n in names if n not in classes]
        if unknown:
            sys.exit(f"unknown routers {unknown}; known: {sorted(classes)}")
        classes = {n: classes[n] for n in names}
    return classes


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
    parser.add_argument("--routellm", metavar="DIR",
                        help="RouteLLM's routellm/evals/mmlu/responses folder: route its "
                             "recorded outcomes instead of the synthetic matrix")
    parser.add_argument("--exclude-subjects", nargs="*", default=[], metavar="SUBJECT",
                        help="with --routellm: subjects left out")
    args = parser.parse_args()

    if args.routellm:
        matrix, outcomes = None, read_routellm_mmlu(args.routellm, set(args.exclude_subjects))
        what = ("RouteLLM's recorded MMLU outcomes"
                + (f" without {', '.join(args.exclude_subjects)}" if args.exclude_subjects
                   else ""))
    else:
        matrix, outcomes = synthetic_outcomes(args.items, args.seed)
        what = f"synthetic MMLU-shaped, seed {args.seed}"
    train, test = outcomes.split(0.5, seed=0)
    print(f"matrix: {len(outcomes)} items, {len(set(outcomes.subjects))} subjects ({what}); "
          f"edge {outcomes.edge_model} accuracy {outcomes.edge_accuracy:.3f}, cloud "
          f"{outcomes.cloud_model} {outcomes.cloud_accuracy:.3f}")
    print(f"split: {len(train)} train / {len(test)} test items (fraction 0.5, seed 0); "
          f"test accuracies: edge {test.edge_accuracy:.3f}, cloud {test.cloud_accuracy:.3f}")
    if matrix is not None:
        print("signal in the matrix (AUC vs oracle label, vs edge wrong): " + "; ".join(
            f"{k} {a:.2f}, {b:.2f}"
            for k, (a, b) in synthetic.signal_summary(matrix).items()))
    print()

    classes = routers_to_run(args.routers)
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
    if "EmbeddingRouter" in classes:  # with the subject; and the first layer only (L1)
        embedding = classes["EmbeddingRouter"]
        classes["EmbeddingRouter+subject"] = functools.partial(embedding, metadata=["subject"])
        classes["EmbeddingRouter L1"] = functools.partial(embedding, layers=1)
        classes["EmbeddingRouter+subject L1"] = functools.partial(embedding, layers=1,
                                                                  metadata=["subject"])
    if "EmbeddingKnnRouter" in classes:
        classes["EmbeddingKnnRouter L1"] = functools.partial(classes["EmbeddingKnnRouter"],
                                                             layers=1)
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
    baselines = [(random, "random (10 seeds)"), (oracle, "oracle")]
    if matrix is not None:
        # what the generator's own parameters give (synthetic.bayes_gain): the
        # ceiling of a router that reads the subject and the cue words
        baselines.append((router_curves.evaluate_scores(
            "ceiling", None, synthetic.bayes_gain(matrix)[[int(i) for i in test.ids]],
            test), "ceiling (generator's params)"))
    for evaluation, what in baselines:
        m = evaluation.metrics
        print(f"{what:<28} {'':<23} {fmt(m['APGR']):>6} {fmt(m['CPT(50%)'], True):>6} "
              f"{fmt(m['CPT(80%)'], True):>6} {fmt(m['AIQ']):>6}")
    print(f"(baselines: {time.perf_counter() - start:.2f} s; score q/s of an embedding router "
          "is cold only on the first row of its setting: later rows reuse the process's "
          "embeddings, benchmarks/router_speed.py times it)")
    print()
    if results:
        name, label, best = max(results, key=lambda r: r[2].metrics["APGR"])
        apgr, cpt50 = best.metrics["APGR"], best.metrics["CPT(50%)"]
        verdict = "meets" if apgr >= 0.65 and cpt50 <= 0.30 else "does NOT meet"
        print(f"best: {name} "
              f"({label}): APGR {apgr:.3f} (target >= 0.65), CPT(50%) {100 * cpt50:.1f}% "
              f"(target <= 30%): {verdict} the issue's figure")
    print("reference: RouteLLM paper, best router on MMLU: APGR 0.603, CPT(50%) 35.4%"
          + ("" if args.routellm else "; the same routers on RouteLLM's recorded MMLU "
             "outcomes: --routellm DIR"))


if __name__ == "__main__":
    main()
