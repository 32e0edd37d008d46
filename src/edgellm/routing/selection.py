"""Choosing a learned router on the train items alone: the candidates (router families
x feature sets x training labels x regularisation), k folds of the train items, each
candidate's out-of-fold scores, and the APGR of those scores pooled over every train
item (one RouteLLM curve, edgellm.metrics.routing_curves). ``AutoRouter``
(edgellm.routing.auto) starts from the candidate with the best cross-validated APGR
and blends it with others on the same out-of-fold scores (edgellm.routing.ensemble).

Nothing here sees a test item: the folds are cut from the items ``cross_validate``
is given, and the labels come from those items' recorded outcomes.
"""

import json
import time
from dataclasses import dataclass, field

import numpy as np

from edgellm.metrics.routing_curves import apgr, sweep
from edgellm.outcomes import OutcomeSet
from edgellm.routing import ROUTERS
from edgellm.routing.labels import LABELS, training_labels
from edgellm.routing.scoring import query_texts
from edgellm.routing.tfidf import TfidfRouter

# families whose candidates read metadata columns, and the setting that names them
METADATA_SETTING = {"TfidfRouter": "metadata", "EmbeddingRouter": "metadata",
                    "MetadataRouter": "by"}
TEXT_FAMILIES = ("TfidfRouter", "EmbeddingRouter", "EmbeddingKnnRouter")
EMBEDDING_FAMILIES = ("EmbeddingRouter", "EmbeddingKnnRouter")
# grid settings that only mean something with metadata columns
METADATA_ONLY = {"TfidfRouter": ("metadata_weight",)}


@dataclass
class Candidate:
    """One configuration: a family of edgellm.routing.ROUTERS and its settings (the
    training label and the metadata columns among them)."""

    family: str
    params: dict

    def build(self):
        return ROUTERS.get(self.family)(**self.params)

    def describe(self):
        settings = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.family}({settings})"

    def as_dict(self):
        return {"router": self.family, "params": dict(self.params)}


@dataclass
class Selection:
    """What ``cross_validate`` found: per candidate its cross-validated APGR (NaN
    where it could not be fitted on some fold, ``errors`` says why), the winner's
    index, the folds and seed, and how long it took."""

    candidates: list
    cv_apgr: np.ndarray
    folds: int
    seed: int
    items: int
    seconds: float = float("nan")
    cpu_seconds: float = float("nan")
    errors: dict = field(default_factory=dict)  # candidate index -> message
    # out-of-fold scores (candidates x items); not in the report
    oof: np.ndarray = field(default=None, repr=False)

    @property
    def best(self):
        if not np.isfinite(self.cv_apgr).any():
            return None
        return int(np.nanargmax(self.cv_apgr))  # ties: the first, the simpler (grid order)

    def report(self):
        """The JSON-able record ``fit_report()["selection"]`` holds."""
        best = self.best
        return {"folds": self.folds, "seed": self.seed, "train_items": self.items,
                "criterion": "APGR of the out-of-fold scores of every train item",
                "chosen": self.candidates[best].as_dict(),
                "cv_apgr": float(self.cv_apgr[best]),
                "seconds": round(self.seconds, 2), "cpu_seconds": round(self.cpu_seconds, 2),
                "candidates": [dict(c.as_dict(), cv_apgr=_finite(a),
                                    **({"error": self.errors[i]} if i in self.errors else {}))
                               for i, (c, a) in enumerate(zip(self.candidates, self.cv_apgr))]}


def _short(value):
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _finite(value):
    return float(value) if np.isfinite(value) else None


def metadata_keys(samples, min_share=0.5):
    """The metadata columns worth a prior, found in the samples: keys other than the
    query and id (``subject``, ``task_type``...) whose value is known for at least
    ``min_share`` of the items, with at least 2 distinct values, and groups of 5
    items on average (a column unique per item is an id, no prior)."""
    keys = []
    for key in dict.fromkeys(k for s in samples for k in s):
        if key in ("id", "query", "router_score", "gold", "response"):
            continue
        values = [s.get(key) for s in samples]
        known = [str(v) for v in values if v is not None and v != ""
                 and isinstance(v, (str, int))]
        distinct = len(set(known))
        if len(known) >= min_share * len(samples) and 2 <= distinct <= len(known) / 5:
            keys.append(key)
    return keys


def candidate_grid(families, labels, grid, keys, has_text, extra=None):
    """The candidates, in order: per family, its feature sets (text only, then text
    and the metadata ``keys``; the metadata router: the keys), per training label,
    every combination of the family's ``grid`` values (settings that only weigh
    metadata left out where there is none). ``extra``: settings every candidate of
    a family gets ({family: {setting: value}})."""
    candidates = []
    for family in families:
        if family in TEXT_FAMILIES and not has_text:
            continue
        if family == "MetadataRouter":
            feature_sets = [keys] if keys else []
        elif family in METADATA_SETTING:
            feature_sets = [[]] + ([keys] if keys else [])
        else:
            feature_sets = [[]]
        for features in feature_sets:
            options = {k: v for k, v in grid.get(family, {}).items()
                       if features or k not in METADATA_ONLY.get(family, ())}
            for label in labels:
                for combination in _product(options):
                    params = {"label": label}
                    if features:
                        params[METADATA_SETTING[family]] = list(features)
                    params.update(combination)
                    params.update((extra or {}).get(family, {}))
                    candidates.append(Candidate(family, params))
    return candidates


def _product(options):
    combinations = [{}]
    for key, values in options.items():
        combinations = [dict(c, **{key: v}) for c in combinations for v in values]
    return combinations


def fold_of(items, folds, seed):
    """Each item's fold (0 .. folds-1): a seeded permutation dealt round-robin, so
    the folds differ in size by one item at most."""
    fold = np.empty(items, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(items)] = np.arange(items) % folds
    return fold


def outcomes_of(right):
    """An OutcomeSet of items whose two models' right (1) or wrong (0) answers are
    ``right`` ((items, 2): edge, cloud), to sweep scores over."""
    n = len(right)
    return OutcomeSet(ids=[str(i) for i in range(n)], queries=[""] * n, subjects=[None] * n,
                      task_types=[None] * n, edge_score=right[:, 0].astype(np.float64),
                      cloud_score=right[:, 1].astype(np.float64), edge_cost=np.zeros(n),
                      cloud_cost=np.ones(n))


def scores_apgr(scores, outcomes):
    """RouteLLM's APGR of ``scores`` over ``outcomes`` (one sweep, 11 thresholds)."""
    return apgr(sweep(scores, outcomes))


def cross_validate(candidates, samples, right, folds=5, seed=0, n_jobs=1):
    """Each candidate fitted on k - 1 folds of ``samples`` (the train items) with its
    label from ``right`` ((items, 2) booleans: edge right, cloud right) and scored on
    the fold left out; its figure is the APGR of those out-of-fold scores over every
    item. TF-IDF candidates of one fold that agree on the word features share one
    fitted vectorizer (the same features as fitting each alone). ``n_jobs`` > 1: that
    many folds at once, in worker processes (one BLAS thread each, as loky starts
    them: on 2 shared cores that took a third of the CPU time of fitting here)."""
    start, cpu = time.perf_counter(), time.process_time()
    samples, right = list(samples), np.asarray(right, dtype=bool)
    n = len(samples)
    if folds > n:
        raise ValueError(f"{folds} folds for {n} train items")
    fold = fold_of(n, folds, seed)
    jobs = []
    for k in range(folds):
        fit_idx, held_idx = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        jobs.append(([samples[i] for i in fit_idx], right[fit_idx],
                     [samples[i] for i in held_idx]))
    if n_jobs == 1:
        # heavy (threadpoolctl, scikit-learn's): one BLAS thread per fit. These fits'
        # products are small, and on 2 shared cores BLAS threads waiting on each other
        # took 2-3 times the CPU time (this limit helps part of it; workers avoid it)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            results = [_fold(candidates, *job) for job in jobs]
        workers_cpu = 0.0
    else:
        # heavy (joblib, ~0.25 s): only a parallel selection needs it
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_fold_timed)(candidates, *job)
                                          for job in jobs)
        workers_cpu = sum(r[2] for r in results)
        results = [r[:2] for r in results]
    oof = np.full((len(candidates), n), np.nan)
    errors = {}
    for k, (scores, failed) in enumerate(results):
        oof[:, fold == k] = scores
        for j, message in failed.items():
            errors.setdefault(j, f"fold {k + 1} of {folds}: {message}")
    outcomes = outcomes_of(right)
    figures = np.array([scores_apgr(oof[j], outcomes) if j not in errors else np.nan
                        for j in range(len(candidates))])
    return Selection(candidates, figures, folds, seed, n, time.perf_counter() - start,
                     time.process_time() - cpu + workers_cpu, errors, oof)


def _fold(candidates, fit_on, right, held):
    """(scores of the held-out items, candidates x items; {candidate: error}) of one
    fold."""
    labels = {label: training_labels(right[:, 0], right[:, 1], label) for label in LABELS}
    scores = np.full((len(candidates), len(held)), np.nan)
    errors = {}
    shared = {}  # vectorizer settings -> (vectorizer, fit rows, held rows)
    for j, candidate in enumerate(candidates):
        router = candidate.build()
        try:
            scores[j] = _fold_scores(router, fit_on, held, labels[router.label], shared)
        except ValueError as err:  # e.g. one class only among a fold's labels
            errors[j] = str(err)
    return scores, errors


def _fold_timed(candidates, fit_on, right, held):
    cpu = time.process_time()
    scores, errors = _fold(candidates, fit_on, right, held)
    return scores, errors, time.process_time() - cpu


def _fold_scores(router, fit_on, held, y, shared):
    if not isinstance(router, TfidfRouter) or router.cv:
        router.fit(fit_on, y)
        return router.score(held)
    router._check_features()
    key = json.dumps(router.vectorizer_settings(), sort_keys=True, default=str)
    if key not in shared:
        texts = query_texts(fit_on)
        if not any(texts):
            raise ValueError("the train items have no query text")
        vectorizer = router.new_vectorizer()
        shared[key] = (vectorizer, vectorizer.fit_transform(texts),
                       vectorizer.transform(query_texts(held)))
    vectorizer, fit_rows, held_rows = shared[key]
    router._fit_once(fit_on, y, (vectorizer, fit_rows))
    return router._score(held, held_rows)
