"""How well does AutoRouter route an outcome matrix it was not tuned on? (issue 18:
chosen on the train half alone, by cross-validated APGR, it must beat the random router
by >= 0.05 APGR on every split seed and never fall more than 0.02 below the best single
configuration of its grid picked on the test half; on RouteLLM's decontaminated MMLU,
mean APGR >= 0.67 and CPT(50 %) <= 29 %. The RouteLLM paper's best router on MMLU:
APGR 0.603, CPT(50 %) 35.4 %.)

For each split seed (default 0 1 2; 50/50 splits of the items, edgellm's split rule),
AutoRouter chooses on the train half (its selection time, wall and CPU, is printed),
then every configuration it tried is fitted on the whole train half and swept over the
test half: its cross-validated APGR (what the choice saw) beside its test APGR,
CPT(50 %) and CPT(80 %), the chosen one marked "*", the best on test marked "^" (for
reference: choosing by it would be choosing on test data). Then the random router (10
seeds), the oracle, and for the synthetic matrices the ceiling of the generator's own
parameters (edgellm.outcomes.synthetic.bayes_gain). A summary over the seeds closes it.

Matrices:

- default: the synthetic MMLU-shaped matrix (edgellm.outcomes.synthetic, ``edgellm
  dataset synthesize``), written as an outcome-matrix CSV and read back as ``edgellm
  report`` reads it; ``--items`` and ``--seed`` (the matrix's), and two shapes the
  routers were not developed on: ``--no-subject`` (the CSV without its subject column)
  and ``--difficulty gap`` (the weak model also fails on a difficulty of its own,
  shown by other words);
- ``--routellm DIR``: RouteLLM's recorded outcomes (github.com/lm-sys/RouteLLM, not
  shipped here; DIR is a checkout, its routellm/evals folder, or the
  mmlu/responses folder inside it), Mixtral-8x7B-Instruct-v0.1 (edge) against
  gpt-4-1106-preview (cloud), read as RouteLLM's evaluation reads them:
  ``--benchmark mmlu`` (default): the mmlu_<subject>.csv files in the order of
  mmlu/domains.py (ALL_MMLU_DOMAINS), subject from the file name; ``--benchmark
  gsm8k``: gsm8k/gsm8k_responses.csv, no subject. The prompts of the benchmark's
  contaminated_prompts.jsonl are dropped (RouteLLM's decontamination). The files
  record no cost: each cloud call costs 1, so AIQ is over the cloud-call share.
  ``--exclude-subjects`` leaves MMLU subjects out.

``--routers NAME ...`` prints, per split seed, the fixed configurations of the earlier
benchmark (each learned router with each of ``--labels``) instead; ``--embeddings``
lets AutoRouter try the embedding routers too; ``--ensemble R``: its greedy ensemble
rounds (0: the top candidate alone).

``--population N`` (synthetic matrices): AutoRouter and every configuration are also
scored on N fresh items of the same generator, what the test half only estimates. On
a small matrix the test half's own noise decides the "best on test" reference; the
population says how far AutoRouter is from the configuration that is truly best, and
how far that one falls below the best on test (the gap even a perfect choice has).

    python benchmarks/routing_quality.py [--split-seeds 0 1 2] [--folds 5] [--jobs 2]
        [--items 14000] [--seed 0] [--no-subject] [--difficulty shared|gap]
        [--population N] [--ensemble R]
        [--routellm DIR [--benchmark mmlu|gsm8k] [--exclude-subjects SUBJECT ...]]
        [--embeddings] [--routers NAME ... [--labels LABEL ...]]
"""

import argparse
import ast
import functools
import json
import os
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

from edgellm.cli.parser import checked
from edgellm.errors import ConfigError
from edgellm.files import write_text
from edgellm.outcomes import OutcomeSet, synthetic
from edgellm.report import router_curves
from edgellm.routing.auto import ENSEMBLE_ROUNDS, AutoRouter

LABELS = ("edge_wrong", "cloud_right_edge_wrong", "expected_gain")
# Routers that cannot be fitted from an outcome matrix alone
NOT_FITTED_HERE = {"BERTRouter": "needs a local fine-tuned model (model_path)",
                   "CascadeRouter": "routes on the edge's answer, not the query",
                   "AutoRouter": "chooses among the others: run without --routers"}
ROUTELLM_MODELS = ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")
# the population's draws: a seed no matrix of this benchmark uses
POPULATION_SEED = 1_000_000
PAPER = "RouteLLM paper, best router on MMLU: APGR 0.603, CPT(50%) 35.4%"


# -- RouteLLM's recorded outcomes ------------------------------------------------------


class InputError(Exception):
    """Bad input: main prints the one line (naming the file) and exits with status 2."""


def routellm_evals(folder):
    """RouteLLM's routellm/evals folder, from a checkout, that folder, or one inside
    it (mmlu, mmlu/responses, gsm8k)."""
    folder = os.path.abspath(folder)
    for candidate in (os.path.join(folder, "routellm", "evals"), folder,
                      os.path.dirname(folder), os.path.dirname(os.path.dirname(folder))):
        if os.path.isdir(os.path.join(candidate, "mmlu", "responses")):
            return candidate
    raise InputError(f"{folder}: not a RouteLLM checkout (no routellm/evals/mmlu/responses "
             "in or above it)")


def contaminated_prompts(path):
    """The eval_prompt of each line of a RouteLLM contaminated_prompts.jsonl."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: not found (RouteLLM's decontamination list)")
    prompts = set()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                prompts.add(json.loads(line)["eval_prompt"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path}:{number}: not a JSON object with an eval_prompt "
                                 "(RouteLLM's decontamination list)") from None
    return prompts


def mmlu_domains(evals):
    """ALL_MMLU_DOMAINS of RouteLLM's mmlu/domains.py, read as a literal (never run)."""
    path = os.path.join(evals, "mmlu", "domains.py")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            try:
                for node in ast.parse(handle.read()).body:
                    if isinstance(node, ast.Assign) and any(
                            getattr(t, "id", None) == "ALL_MMLU_DOMAINS" for t in node.targets):
                        return [str(domain) for domain in ast.literal_eval(node.value)]
            except (SyntaxError, ValueError, TypeError):
                pass  # the same line as no list: what is wanted is that list
    raise InputError(f"{path}: no ALL_MMLU_DOMAINS list (RouteLLM's MMLU item order)")


def _read(path, subject=None):
    try:
        part = OutcomeSet.from_matrix(path, *ROUTELLM_MODELS)
    except ConfigError as err:
        raise InputError(f"{err}")
    return replace(part, subjects=[subject] * len(part)) if subject else part


def read_routellm(folder, benchmark="mmlu", exclude=()):
    """(OutcomeSet, what) of RouteLLM's recorded outcomes of ``benchmark``, in RouteLLM's
    item order, decontaminated as its evaluation does (the module docstring)."""
    evals = routellm_evals(folder)
    if benchmark == "mmlu":
        parts = []
        for domain in mmlu_domains(evals):
            path = os.path.join(evals, "mmlu", "responses", f"mmlu_{domain}.csv")
            if domain in exclude:
                continue
            if not os.path.isfile(path):
                raise InputError(f"{path}: not found (ALL_MMLU_DOMAINS names it)")
            parts.append(_read(path, domain))
        if not parts:
            raise InputError(f"{folder}: every subject was excluded")
    else:
        parts = [_read(os.path.join(evals, "gsm8k", "gsm8k_responses.csv"))]
    whole = _concatenate(parts)
    dropped = contaminated_prompts(os.path.join(evals, benchmark, "contaminated_prompts.jsonl"))
    keep = [i for i, q in enumerate(whole.queries) if q not in dropped]
    outcomes = whole.subset(keep)
    outcomes = replace(outcomes, ids=[str(i) for i in range(len(outcomes))])
    what = (f"RouteLLM's recorded {benchmark.upper()} outcomes, {len(outcomes)} of "
            f"{len(whole)} items after its decontamination"
            + (f", without {', '.join(sorted(exclude))}" if exclude else ""))
    return outcomes, what


def _concatenate(parts):
    n = sum(len(part) for part in parts)
    return OutcomeSet(
        ids=[str(i) for i in range(n)], queries=[q for part in parts for q in part.queries],
        subjects=[s for part in parts for s in part.subjects],
        task_types=[t for part in parts for t in part.task_types],
        edge_score=np.concatenate([part.edge_score for part in parts]),
        cloud_score=np.concatenate([part.cloud_score for part in parts]),
        edge_cost=np.zeros(n), cloud_cost=np.ones(n), edge_model=ROUTELLM_MODELS[0],
        cloud_model=ROUTELLM_MODELS[1], source="RouteLLM")


# -- the synthetic matrix --------------------------------------------------------------


def synthetic_outcomes(items, seed, difficulty="shared", subject=True):
    """The synthetic matrix, written as an outcome-matrix CSV (without its subject
    column unless ``subject``) and read back as ``edgellm report`` reads it."""
    matrix = synthetic.generate(items, seed, difficulty)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mmlu_synthetic.csv")
        write_text(path, matrix.to_csv(subject=subject))
        return matrix, OutcomeSet.from_matrix(path, synthetic.EDGE_MODEL, synthetic.CLOUD_MODEL)


# -- printing --------------------------------------------------------------------------


def fmt(value, percent=False):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def figures(metrics):
    return (f"{fmt(metrics['APGR']):>6} {fmt(metrics['CPT(50%)'], True):>6} "
            f"{fmt(metrics['CPT(80%)'], True):>6}")


def baseline_rows(test, matrix):
    random, oracle = router_curves.baselines(test)
    rows = [("random (10 seeds)", random.metrics), ("oracle", oracle.metrics)]
    if matrix is not None:
        # what the generator's own parameters give (synthetic.bayes_gain): the ceiling
        # of a router that reads the subject and the cue words
        ceiling = router_curves.evaluate_scores(
            "ceiling", None, synthetic.bayes_gain(matrix)[[int(i) for i in test.ids]], test)
        rows.append(("ceiling (generator's params)", ceiling.metrics))
    return random.metrics["APGR"], rows


# -- AutoRouter, chosen on train and checked on test -----------------------------------


def evaluate_candidate(candidate, train, test, population=None):
    """A configuration fitted on all of ``train`` and swept over ``test`` (its curve's
    figures; no threshold calibration, which the table does not show); with a
    ``population``, its APGR there too (``population APGR``)."""
    try:
        router = candidate.build().fit(train.samples(), router_curves.training_labels(
            train, candidate.params["label"]))
    except ValueError as err:  # e.g. one class only: the row says so, the others go on
        return {"APGR": np.nan, "CPT(50%)": np.nan, "CPT(80%)": np.nan, "error": str(err),
                "population APGR": np.nan}
    metrics = router_curves.evaluate_scores(candidate.describe(), None,
                                            router.score(test.samples()), test).metrics
    if population is not None:
        metrics["population APGR"] = population_apgr(router, population)
    return metrics


def population_apgr(router, population):
    return router_curves.evaluate_scores("population", None, router.score(population.samples()),
                                         population).metrics["APGR"]


def auto_run(train, test, matrix, args, population=None):
    """AutoRouter chosen on ``train``; every configuration it tried, fitted on all of
    ``train`` and swept over ``test`` (and ``population``, a fresh draw of the same
    generator, where given). Returns the seed's summary."""
    # heavy (joblib, scikit-learn's): the configurations in worker processes, one BLAS
    # thread each, as AutoRouter fits its folds
    from joblib import Parallel, delayed

    router = AutoRouter(folds=args.folds, seed=0, n_jobs=args.jobs,
                        embeddings=args.embeddings, ensemble=args.ensemble)
    start = time.perf_counter()
    auto = router_curves.fit_and_evaluate("AutoRouter", router, train, test, "expected_gain")
    total = time.perf_counter() - start
    selection = router.fit_report()["selection"]
    print(f"AutoRouter on the {len(train)} train items: {len(selection['candidates'])} "
          f"candidates, {selection['folds']} folds: selection {selection['seconds']:.1f} s "
          f"wall ({selection['cpu_seconds']:.1f} CPU s), with the refit {total:.1f} s")
    candidates = router.candidates(train.samples())
    # the embedding routers' cache of embeddings is per process: those run here
    jobs = 1 if args.embeddings else args.jobs
    metrics = Parallel(n_jobs=jobs)(delayed(evaluate_candidate)(c, train, test, population)
                                    for c in candidates)
    rows = [(c, selection["candidates"][i]["cv_apgr"], m)
            for i, (c, m) in enumerate(zip(candidates, metrics))]
    chosen = next(i for i, c in enumerate(candidates)
                  if c.as_dict() == selection["chosen"])
    test_apgr = np.array([m["APGR"] for _, _, m in rows], dtype=float)
    # none where APGR is undefined on the test half (both models equally accurate there)
    best = int(np.nanargmax(test_apgr)) if np.isfinite(test_apgr).any() else None
    header = f"{'':<2} {'configuration':<78} {'CV APGR':>7} {'APGR':>6} {'CPT50':>6} {'CPT80':>6}"
    print(header)
    print("-" * len(header))
    for i, (candidate, cv, metrics) in enumerate(rows):
        mark = ("*" if i == chosen else " ") + ("^" if i == best else " ")
        print(f"{mark} {candidate.describe()[:78]:<78} {fmt(cv):>7} {figures(metrics)}"
              + (f"  not fitted: {metrics['error']}" if "error" in metrics else ""))
    members = selection["ensemble"]["members"]
    if len(members) > 1:
        blend = (f"the blend: * and {len(members) - 1} more (weights "
                 + " ".join(f"{m['weight']:.2f}" for m in members) + ")")
        print(f"{'':<2} {blend[:78]:<78} {fmt(selection['ensemble']['cv_apgr']):>7} "
              f"{figures(auto.metrics)}")
    elif abs(rows[chosen][2]["APGR"] - auto.metrics["APGR"]) > 1e-9:
        print(f"warning: AutoRouter's test APGR {auto.metrics['APGR']:.4f} differs from its "
              f"chosen configuration's {rows[chosen][2]['APGR']:.4f}")
    random_apgr, baselines = baseline_rows(test, matrix)
    for what, metrics in baselines:
        print(f"{'':<2} {what:<78} {'':>7} {figures(metrics)}")
    summary = {"apgr": auto.metrics["APGR"], "cpt50": auto.metrics["CPT(50%)"],
               "cv": selection["cv_apgr"], "random": random_apgr,
               "best": rows[best][2]["APGR"] if best is not None else np.nan,
               "seconds": selection["seconds"], "cpu": selection["cpu_seconds"],
               "chosen": rows[chosen][0].describe()
               + (f" + {len(members) - 1} blended" if len(members) > 1 else "")}
    if population is not None:
        summary.update(population_summary(router, population, rows))
    print(f"AutoRouter: {summary['chosen']}: CV APGR {fmt(summary['cv'])}; test APGR "
          f"{fmt(summary['apgr'])}, CPT(50%) {fmt(summary['cpt50'], True)}; random "
          f"{fmt(random_apgr)} (margin {summary['apgr'] - random_apgr:+.3f}); best single "
          f"configuration on test {fmt(summary['best'])} (AutoRouter "
          f"{summary['apgr'] - summary['best']:+.3f})")
    if population is not None:
        print(f"on the population ({len(population)} fresh items of the same generator): "
              f"AutoRouter {fmt(summary['pop'])}, random {fmt(summary['pop_random'])} (margin "
              f"{summary['pop'] - summary['pop_random']:+.3f}); the truly best configuration "
              f"{fmt(summary['pop_best'])} (AutoRouter {summary['pop'] - summary['pop_best']:+.3f}),"
              f" on the test half {fmt(summary['best_true_on_test'])} (best on test "
              f"{summary['best_true_on_test'] - summary['best']:+.3f})")
    return summary


def population_summary(router, population, rows):
    """AutoRouter's and the configurations' APGR on ``population``: what the test half
    estimates with the noise of its few items. ``best_true_on_test``: the test-half
    APGR of the configuration truly best on the population (the reference the gap
    target could hope for, were the choice perfect)."""
    random = router_curves.baselines(population)[0].metrics["APGR"]
    pop = np.array([m["population APGR"] for _, _, m in rows], dtype=float)
    truly = int(np.nanargmax(pop))
    return {"pop": population_apgr(router, population), "pop_random": random,
            "pop_best": pop[truly], "best_true_on_test": rows[truly][2]["APGR"]}


def targets(margin, gap, reference):
    """The issue's two targets, met or missed: the least margin over random and the least
    gap to ``reference``, over the split seeds."""
    return (f"beats random by >= 0.05 on every seed (least margin {margin:+.3f}): "
            f"{'met' if margin >= 0.05 else 'MISSED'}; never more than 0.02 below {reference} "
            f"(least {gap:+.3f}): {'met' if gap >= -0.02 else 'MISSED'}")


def print_summary(seeds, summaries, routellm_mmlu):
    print()
    header = (f"{'split seed':>10} {'APGR':>6} {'CPT50':>6} {'CV APGR':>7} {'random':>6} "
              f"{'margin':>7} {'best@test':>9} {'gap':>7} {'select s':>8} {'CPU s':>6}  chosen")
    print(header)
    print("-" * len(header))
    for seed, s in zip(seeds, summaries):
        print(f"{seed:>10} {fmt(s['apgr']):>6} {fmt(s['cpt50'], True):>6} {fmt(s['cv']):>7} "
              f"{fmt(s['random']):>6} {s['apgr'] - s['random']:>+7.3f} {fmt(s['best']):>9} "
              f"{s['apgr'] - s['best']:>+7.3f} {s['seconds']:>8.1f} {s['cpu']:>6.1f}  "
              f"{s['chosen']}")
    mean = {k: float(np.mean([s[k] for s in summaries]))
            for k in ("apgr", "cpt50", "cv", "random", "best", "seconds", "cpu")}
    print(f"{'mean':>10} {fmt(mean['apgr']):>6} {fmt(mean['cpt50'], True):>6} "
          f"{fmt(mean['cv']):>7} {fmt(mean['random']):>6} {mean['apgr'] - mean['random']:>+7.3f} "
          f"{fmt(mean['best']):>9} {mean['apgr'] - mean['best']:>+7.3f} "
          f"{mean['seconds']:>8.1f} {mean['cpu']:>6.1f}")
    print("targets: " + targets(min(s["apgr"] - s["random"] for s in summaries),
                                min(s["apgr"] - s["best"] for s in summaries),
                                "the best single configuration on test"))
    if "pop" in summaries[0]:
        reach = min(s["best_true_on_test"] - s["best"] for s in summaries)
        print("the same targets on the population (fresh items of the same generator): "
              + targets(min(s["pop"] - s["pop_random"] for s in summaries),
                        min(s["pop"] - s["pop_best"] for s in summaries),
                        "the truly best configuration")
              + f". The truly best configuration's own least gap on the test halves: {reach:+.3f}")
    if routellm_mmlu:
        print(f"targets on RouteLLM's MMLU: mean APGR >= 0.67 ({mean['apgr']:.3f}): "
              f"{'met' if mean['apgr'] >= 0.67 else 'MISSED'}; mean CPT(50%) <= 29% "
              f"({100 * mean['cpt50']:.1f}%): {'met' if mean['cpt50'] <= 0.29 else 'MISSED'}")
    print(f"reference: {PAPER}")


# -- fixed configurations (--routers) --------------------------------------------------


def routers_to_run(names):
    classes = router_curves.learned_router_classes()
    unknown = [n for n in names if n not in classes]
    if unknown:
        print(f"error: --routers: unknown routers {unknown}; known: {sorted(classes)}",
              file=sys.stderr)
        sys.exit(2)
    classes = {n: classes[n] for n in names}
    if "TfidfRouter" in classes:  # the text router with the subject as features too
        tfidf = classes["TfidfRouter"]
        classes["TfidfRouter+subject"] = functools.partial(tfidf, metadata=["subject"])
        classes["TfidfRouter+subject x3"] = functools.partial(
            tfidf, metadata=["subject"], metadata_weight=3.0)
        # the configuration docs/routers.md used to recommend (tuned on the synthetic
        # matrix, whose parameters come from all of RouteLLM's MMLU)
        classes["TfidfRouter+subject adaptive"] = functools.partial(
            tfidf, metadata=["subject"], metadata_weight=5.0, C=0.03, reweight=1)
    if "EmbeddingRouter" in classes:  # with the subject; and the first layer only (L1)
        embedding = classes["EmbeddingRouter"]
        classes["EmbeddingRouter+subject"] = functools.partial(embedding, metadata=["subject"])
        classes["EmbeddingRouter L1"] = functools.partial(embedding, layers=1)
        classes["EmbeddingRouter+subject L1"] = functools.partial(embedding, layers=1,
                                                                  metadata=["subject"])
    if "EmbeddingKnnRouter" in classes:
        classes["EmbeddingKnnRouter L1"] = functools.partial(classes["EmbeddingKnnRouter"],
                                                             layers=1)
    return classes


def fixed_run(classes, labels, train, test, matrix):
    header = (f"{'router':<28} {'label':<23} {'APGR':>6} {'CPT50':>6} {'CPT80':>6} {'AIQ':>6} "
              f"{'thr@50%':>8} {'test share':>10} {'fit s':>6} {'score q/s':>10}")
    print(header)
    print("-" * len(header))
    for name, cls in classes.items():
        if name in NOT_FITTED_HERE:
            print(f"{name:<28} skipped: {NOT_FITTED_HERE[name]}")
            continue
        for label in labels:
            try:
                evaluation = router_curves.fit_and_evaluate(name, cls(label=label), train, test,
                                                            label)
            except (ValueError, ImportError, OSError, TypeError) as err:
                print(f"{name:<28} {label:<23} skipped: {type(err).__name__}: {err}")
                continue
            m, c = evaluation.metrics, evaluation.calibration
            print(f"{name:<28} {label:<23} {figures(m)} {fmt(m['AIQ']):>6} {c.threshold:>8.4f} "
                  f"{fmt(c.test_share, True):>10} {evaluation.fit_seconds:>6.1f} "
                  f"{len(test) / evaluation.score_seconds:>10.0f}")
    for what, metrics in baseline_rows(test, matrix)[1]:
        print(f"{what:<28} {'':<23} {figures(metrics)} {fmt(metrics['AIQ']):>6}")


def whole(least):
    """An argparse type: a whole number >= ``least`` (the CLI's checked types)."""
    return checked(int, lambda n: n >= least, f"a whole number >= {least}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the 50/50 splits (default 0 1 2)")
    parser.add_argument("--folds", type=int, default=5, help="AutoRouter's folds (default 5)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="AutoRouter's n_jobs: folds fitted at once in worker processes; "
                             "also the configurations of the table (default 2)")
    parser.add_argument("--ensemble", type=whole(0), default=ENSEMBLE_ROUNDS,
                        help="AutoRouter's greedy ensemble rounds (0: the top candidate "
                             "alone; default AutoRouter's)")
    parser.add_argument("--embeddings", action="store_true",
                        help="AutoRouter also tries the embedding routers")
    parser.add_argument("--items", type=int, default=14000)
    parser.add_argument("--seed", type=int, default=0, help="the synthetic matrix's seed")
    parser.add_argument("--difficulty", choices=synthetic.DIFFICULTIES, default="shared",
                        help="the synthetic matrix's difficulty model (default shared)")
    parser.add_argument("--no-subject", action="store_true",
                        help="the synthetic matrix without its subject column")
    parser.add_argument("--population", type=whole(1), metavar="N",
                        help="synthetic matrices: also score AutoRouter and every "
                             "configuration on N fresh items of the same generator (seed "
                             f"{POPULATION_SEED} + --seed), the figures the test half estimates")
    parser.add_argument("--routellm", metavar="DIR",
                        help="a RouteLLM checkout (or its routellm/evals, or mmlu/responses "
                             "folder): route its recorded outcomes")
    parser.add_argument("--benchmark", choices=["mmlu", "gsm8k"], default="mmlu",
                        help="with --routellm: which benchmark's outcomes (default mmlu)")
    parser.add_argument("--exclude-subjects", nargs="*", default=[], metavar="SUBJECT",
                        help="with --routellm: MMLU subjects left out")
    parser.add_argument("--routers", nargs="+", metavar="NAME",
                        help="fixed configurations of these learned routers instead of "
                             "AutoRouter")
    parser.add_argument("--labels", nargs="*", default=list(LABELS), choices=LABELS,
                        help="with --routers: the training labels")
    args = parser.parse_args()

    if args.population and (args.routellm or args.routers):
        parser.error("--population: only for AutoRouter on the synthetic matrices (fresh "
                     "items come from their generator)")
    if args.routellm:
        matrix = None
        try:
            outcomes, what = read_routellm(args.routellm, args.benchmark,
                                           set(args.exclude_subjects))
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
    else:
        matrix, outcomes = synthetic_outcomes(args.items, args.seed, args.difficulty,
                                              not args.no_subject)
        what = (f"synthetic MMLU-shaped, {args.items} items, seed {args.seed}, difficulty "
                f"{args.difficulty}" + (", no subject column" if args.no_subject else ""))
    subjects = len({s for s in outcomes.subjects if s})
    print(f"matrix: {len(outcomes)} items, {subjects} subjects ({what}); edge "
          f"{outcomes.edge_model} accuracy {outcomes.edge_accuracy:.3f}, cloud "
          f"{outcomes.cloud_model} {outcomes.cloud_accuracy:.3f}")
    if matrix is not None:
        print("signal in the matrix (AUC vs oracle label, vs edge wrong): " + "; ".join(
            f"{k} {a:.2f}, {b:.2f}" for k, (a, b) in synthetic.signal_summary(matrix).items()))
    population = None
    if args.population and matrix is not None:
        _, population = synthetic_outcomes(args.population, POPULATION_SEED + args.seed,
                                           args.difficulty, not args.no_subject)
    classes = routers_to_run(args.routers) if args.routers else None
    summaries = []
    for seed in args.split_seeds:
        train, test = outcomes.split(0.5, seed=seed)
        print(f"\nsplit seed {seed}: {len(train)} train / {len(test)} test items (fraction "
              f"0.5); test accuracies: edge {test.edge_accuracy:.3f}, cloud "
              f"{test.cloud_accuracy:.3f}")
        if classes is not None:
            fixed_run(classes, args.labels, train, test, matrix)
        else:
            summaries.append(auto_run(train, test, matrix, args, population))
    if summaries:
        print_summary(args.split_seeds, summaries,
                      bool(args.routellm) and args.benchmark == "mmlu")


if __name__ == "__main__":
    main()
