"""``AutoRouter``: a learned router chosen for the outcome matrix at hand, on its train
items only. It tries the shipped router families with every feature set the items
offer, every training label and a grid of regularisation, scores each by k-fold
cross-validated APGR on the train items (edgellm.routing.selection), blends the best
with those that raise it (edgellm.routing.ensemble), fits them on all of the train
items and routes with the blend."""

import logging

import numpy as np

from edgellm.registry import RegistryError, UnknownSetting, check_settings, nearest
from edgellm.routing import ROUTERS
from edgellm.routing.encoder import _minilm_package
from edgellm.routing.ensemble import Blend, greedy_ensemble
from edgellm.routing.labels import LABELS, training_labels
from edgellm.routing.scoring import ScoringRouter, query_texts
from edgellm.routing.selection import (EMBEDDING_FAMILIES, METADATA_SETTING, candidate_grid,
                                       cross_validate, metadata_keys)

LOG = logging.getLogger(__name__)

# greedy ensemble rounds (edgellm.routing.ensemble); 0: the top candidate alone
ENSEMBLE_ROUNDS = 20
FAMILIES = ("TfidfRouter", "MetadataRouter", "EmbeddingRouter", "EmbeddingKnnRouter")
# settings a grid may not vary: AutoRouter sets them itself (labels, metadata) or
# they are about routing and fitting, not the model
RESERVED = ("label", "metadata", "by", "classifier", "threshold", "cloud_share", "model_path",
            "train_outcomes", "edge_model", "cloud_model", "split", "split_seed", "save_dir",
            "cv", "cv_grid")


class AutoRouter(ScoringRouter):
    """Chooses among the shipped learned routers on the train items alone and routes
    with the top one blended with those that raise its figure
    (docs/routing-evaluation.md, "AutoRouter").

    Candidates: each family of ``families`` (default TfidfRouter, MetadataRouter,
    and, with ``embeddings: true``, EmbeddingRouter) with each feature set (the
    query's text; the text and the metadata columns; the metadata alone), each
    training label of ``labels`` (default all three) and each combination of the
    family's values in ``grid`` (default ``DEFAULT_GRID``: C and the metadata weight
    of the TF-IDF router, the smoothing of the metadata prior, C of the embedding
    router). ``metadata``: the metadata columns to use (default: those the train
    items have, ``selection.metadata_keys``; [] for none). Each candidate is fitted on
    ``folds`` - 1 folds of the train items (cut with ``seed``) and scored on the one
    left out; the candidate whose out-of-fold scores, pooled over every train item,
    have the highest APGR (RouteLLM's, 11 thresholds) is the top one. ``ensemble``
    rounds of greedy ensemble selection (edgellm.routing.ensemble) then blend it with
    the candidates that raise that APGR (0: the top one alone); the blend's members are
    fitted on every train item and route together.

    It learns from both models' right and wrong answers: its ``label`` is
    expected_gain (fit it with an (items, 2) array: edge right, cloud right), from
    which each candidate's own label is derived. The score is the blend's, on the top
    candidate's scale (P(hard) or an expected gain), so give ``cloud_share``; without
    it (and without a threshold) the cut sends the share of train items the top
    candidate's natural cut (0.5 for a probability, 0 for an expected gain) sends by
    its out-of-fold scores. ``fit_report()["selection"]`` says what it chose, the
    cross-validated APGR and every candidate's. ``embedding_settings``: settings of
    the embedding routers (e.g. {"layers": 1}). ``n_jobs``: folds fitted at once in
    worker processes with one BLAS thread each (default 2; 1: in this process; with
    embeddings always here, the encoder's cache being per process).
    """

    DEFAULT_FAMILIES = ("TfidfRouter", "MetadataRouter", "EmbeddingRouter")
    DEFAULT_GRID = {"TfidfRouter": {"C": [0.03, 0.1, 0.3, 1.0], "metadata_weight": [1.0, 3.0]},
                    "MetadataRouter": {"smoothing": [3.0, 10.0, 30.0]},
                    "EmbeddingRouter": {"C": [0.1, 1.0]},
                    "EmbeddingKnnRouter": {"n_neighbors": [16, 64]}}

    def __init__(self, folds=5, families=None, labels=None, grid=None, metadata=None,
                 embeddings=False, embedding_settings=None, seed=0, n_jobs=2,
                 ensemble=ENSEMBLE_ROUNDS, label="expected_gain", **params):
        self.folds = folds
        self.ensemble = ensemble
        self.families = families
        self.labels = labels
        self.grid = grid
        self.metadata = metadata
        self.embeddings = embeddings
        self.embedding_settings = embedding_settings
        self.seed = seed
        self.n_jobs = n_jobs
        super().__init__(label=label, **params)

    # -- settings --------------------------------------------------------------------

    def _check_settings(self):
        super()._check_settings()
        self._families()
        self._labels()
        self._grid()
        self._embedding_settings()
        for setting, least in (("folds", 2), ("seed", 0), ("n_jobs", 1), ("ensemble", 0)):
            value = getattr(self, setting)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < least:
                raise ValueError(f"AutoRouter: {setting} must be a whole number >= {least}, "
                                 f"got {value!r}")
        if not isinstance(self.embeddings, (bool, np.bool_)):
            raise ValueError(f"AutoRouter: embeddings must be true or false, got "
                             f"{self.embeddings!r}")
        if self.metadata is not None and (isinstance(self.metadata, str) or not all(
                isinstance(k, str) for k in self.metadata)):
            raise ValueError(f"AutoRouter: metadata must be a list of sample keys (e.g. "
                             f"['subject']; [] for none), got {self.metadata!r}")

    def _check_params(self):
        super()._check_params()
        if self.label != "expected_gain":
            raise ValueError(f"AutoRouter: label must be expected_gain (it learns from both "
                             f"models' right and wrong answers and derives each candidate's "
                             f"label); choose the candidates' labels with labels, e.g. "
                             f"labels: [{self.label}]")

    def _families(self):
        families = self.DEFAULT_FAMILIES if self.families is None else self.families
        if isinstance(families, str) or not list(families):
            raise ValueError(f"AutoRouter: families must be a list of router names, e.g. "
                             f"{list(self.DEFAULT_FAMILIES)}, got {families!r}")
        for family in families:
            if family not in FAMILIES:
                hint = nearest(family, FAMILIES)
                raise RegistryError(f"AutoRouter: families: {family!r} is not a family it can "
                                    f"choose" + (f"; did you mean '{hint}'?" if hint else "")
                                    + f" (known: {', '.join(FAMILIES)})")
        chosen = [f for f in families if self.embeddings or f not in EMBEDDING_FAMILIES]
        if not chosen:
            raise ValueError("AutoRouter: families names embedding routers only, and "
                             "embeddings is false: set embeddings: true")
        return chosen

    def _labels(self):
        labels = list(LABELS) if self.labels is None else self.labels
        if isinstance(labels, str) or not list(labels):
            raise ValueError(f"AutoRouter: labels must be a list of training labels, e.g. "
                             f"{list(LABELS)}, got {labels!r}")
        for label in labels:
            if label not in LABELS:
                hint = nearest(label, LABELS)
                raise ValueError(f"AutoRouter: labels: unknown label {label!r}"
                                 + (f"; did you mean '{hint}'?" if hint else "")
                                 + f" (known: {', '.join(LABELS)})")
        return list(labels)

    def _grid(self):
        """The grid: DEFAULT_GRID with each family ``grid`` names replaced by its own."""
        if self.grid is not None and not isinstance(self.grid, dict):
            raise ValueError(f"AutoRouter: grid must map router families to their settings' "
                             f"candidate values, e.g. {{TfidfRouter: {{C: [0.1, 1.0]}}}}, "
                             f"got {self.grid!r}")
        grid = dict(self.DEFAULT_GRID)
        for family, options in (self.grid or {}).items():
            if family not in FAMILIES:
                hint = nearest(family, FAMILIES)
                raise RegistryError(f"AutoRouter: grid: {family!r} is not a family it can "
                                    f"choose" + (f"; did you mean '{hint}'?" if hint else "")
                                    + f" (known: {', '.join(FAMILIES)})")
            if not isinstance(options, dict):
                raise ValueError(f"AutoRouter: grid: {family} must map settings to lists of "
                                 f"values, got {options!r}")
            _check_family_settings(family, options, f"AutoRouter grid {family}")
            values = {}
            for key, candidates in options.items():
                candidates = list(candidates) if isinstance(candidates, (list, tuple)) \
                    else [candidates]
                if not candidates:
                    raise ValueError(f"AutoRouter: grid: {family} gives no values for {key}")
                values[key] = candidates
            grid[family] = values
        return grid

    def _embedding_settings(self):
        settings = self.embedding_settings or {}
        if not isinstance(settings, dict):
            raise ValueError(f"AutoRouter: embedding_settings must map EmbeddingRouter "
                             f"settings to values, e.g. {{layers: 1}}, got {settings!r}")
        _check_family_settings("EmbeddingRouter", settings, "AutoRouter embedding_settings")
        return settings

    # -- fitting ---------------------------------------------------------------------

    def candidates(self, samples):
        """The candidates for these train items (``selection.candidate_grid``)."""
        self._check_settings()
        keys = metadata_keys(samples) if self.metadata is None else list(self.metadata)
        families = self._families()
        if any(f in EMBEDDING_FAMILIES for f in families):
            _check_embeddings_installed()
        extra = {f: self._embedding_settings() for f in EMBEDDING_FAMILIES}
        candidates = candidate_grid(families, self._labels(), self._grid(), keys,
                                    any(query_texts(samples)), extra)
        if not candidates:
            raise ValueError("AutoRouter: nothing to choose from: the train items have no "
                             "query text and no metadata column (give metadata, or a "
                             "matrix with a query or subject column)")
        for candidate in candidates:  # a bad grid value fails here, before any fit
            candidate.build()._check_settings()
        return candidates

    def _fit(self, samples, y):
        candidates = self.candidates(samples)
        LOG.info("AutoRouter: %d candidates, %d-fold cross-validation on %d train items",
                 len(candidates), self.folds, len(samples))
        # the sentence encoder's cache of embeddings is per process: folds of embedding
        # candidates run here, so that each query is embedded once
        jobs = 1 if any(c.family in EMBEDDING_FAMILIES for c in candidates) else int(self.n_jobs)
        selection = cross_validate(candidates, samples, y, int(self.folds), int(self.seed),
                                   jobs)
        best = selection.best
        if best is None:
            raise ValueError("AutoRouter: no candidate could be fitted on every fold: "
                             + "; ".join(f"{candidates[i].describe()}: {e}"
                                         for i, e in list(selection.errors.items())[:3]))
        weights, blend_apgr = greedy_ensemble(selection.oof, y, selection.cv_apgr,
                                              rounds=int(self.ensemble))
        routers = [None] * len(candidates)
        # heavy (threadpoolctl, scikit-learn's): one BLAS thread, as in the folds
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            for j in np.flatnonzero(weights):
                routers[j] = candidates[j].build()
                routers[j].fit(samples, training_labels(y[:, 0], y[:, 1], routers[j].label))
        self.blend_ = Blend.of(routers, weights, selection.oof, best)
        self.chosen_ = self.blend_.first
        # the top candidate's natural cut; for a blend, as the share of the train items'
        # out-of-fold scores it sends, carried over to the blend's scale
        natural = _natural_cut(self.chosen_.label)
        self.natural_threshold_ = natural if len(self.blend_.members) == 1 else \
            self.blend_.cut_matching(selection.oof[best], natural)
        self.selection_ = selection.report()
        self.selection_["ensemble"] = {
            "rounds": int(self.ensemble), "cv_apgr": blend_apgr,
            "members": [dict(candidates[j].as_dict(), weight=float(weights[j]),
                             cv_apgr=float(selection.cv_apgr[j]))
                        for j in self.blend_.indices]}
        LOG.info("AutoRouter: chose %s (cross-validated APGR %.3f of %d candidates; blend of "
                 "%d, %.3f) in %.1f s", candidates[best].describe(), selection.cv_apgr[best],
                 len(candidates), len(self.blend_.members), blend_apgr, selection.seconds)

    def fit(self, samples, labels):
        super().fit(samples, labels)
        self.fit_info_["label"] = self.chosen_.label
        self.fit_info_["selection"] = self.selection_
        self._set_threshold()
        return self

    def _score(self, samples):
        blend = getattr(self, "blend_", None)  # None: saved before blends
        return blend.score(samples) if blend is not None else self.chosen_.score(samples)

    def _set_threshold(self):
        super()._set_threshold()
        chosen = getattr(self, "chosen_", None)
        if self.threshold is None and self.cloud_share is None and chosen is not None:
            # the top candidate's natural cut (carried over to a blend's scale)
            self.threshold_ = getattr(self, "natural_threshold_", None)
            if self.threshold_ is None:  # saved before blends
                self.threshold_ = _natural_cut(chosen.label)

    def describe_choice(self):
        """One line: the chosen configuration and its cross-validated APGR; the blend,
        where the ensemble kept more than the top candidate."""
        selection = self.fit_report()["selection"]
        chosen = selection["chosen"]
        settings = ", ".join(f"{k}={v}" for k, v in chosen["params"].items())
        line = (f"{chosen['router']}({settings}), cross-validated APGR "
                f"{selection['cv_apgr']:.3f} ({selection['folds']} folds, "
                f"{len(selection['candidates'])} candidates)")
        ensemble = selection.get("ensemble")
        if ensemble and len(ensemble["members"]) > 1:
            line += (f"; blended with {len(ensemble['members']) - 1} more (greedy ensemble, "
                     f"out-of-fold APGR {ensemble['cv_apgr']:.3f})")
        return line


def _natural_cut(label):
    """A label's own cut: 0 for an expected gain (the cloud does better), 0.5 for a
    probability."""
    return 0.0 if label == "expected_gain" else 0.5


def _check_family_settings(family, settings, owner):
    reserved = sorted(set(settings) & set(RESERVED))
    if reserved:
        raise ValueError(f"{owner}: {reserved[0]} is set by AutoRouter itself (labels: the "
                         f"training labels, metadata: the metadata columns), not by a grid")
    try:
        check_settings(ROUTERS.get(family), settings, owner=owner)
    except UnknownSetting:
        raise
    except RegistryError as err:  # pragma: no cover - FAMILIES are registered
        raise ValueError(str(err)) from None


def _check_embeddings_installed():
    try:
        _minilm_package()
    except ImportError as err:  # asked for and not there: say so rather than skip them
        raise ValueError(f"AutoRouter: embeddings: true: {err}") from None


__all__ = ["AutoRouter", "FAMILIES", "METADATA_SETTING"]
