"""``TfidfRouter``: TF-IDF of the query's words, then logistic regression
(scikit-learn only), with optional metadata columns, adaptive-ridge reweighting of
the words and cross-validation of its settings on the train items."""

import itertools

import numpy as np

from edgellm.routing.features import (_as_list, _check_texts, _column_scaling,
                                      _CorrectnessModel, _logistic_regression,
                                      _MetadataFeatures, _with_metadata)
from edgellm.routing.scoring import ScoringRouter, query_texts


class TfidfRouter(ScoringRouter):
    """TF-IDF of the query's words, then logistic regression (scikit-learn only). The
    score is the model's probability that the query is hard, or, with ``label:
    expected_gain``, the predicted P(cloud right) - P(edge right) (``_CorrectnessModel``).

    Settings: ``max_features`` (vocabulary size, default 100,000), ``ngram_range``
    (default [1, 1]: words; [1, 2] adds word pairs, at half the speed), ``min_df``
    (default 1), ``C`` (inverse regularisation, default 0.1: difficulty labels are
    noisy, and cross-validation on train splits picks 0.01-0.3), ``class_weight``
    (None or "balanced"), ``metadata`` (sample keys such as ["subject"] added as
    one-hot features: the subject prior and the text in one model),
    ``metadata_weight`` (default 1: the metadata columns are multiplied by it, so a
    group's prior, learnt from many items, is regularised less than a word's).

    The word features (scikit-learn's ``TfidfVectorizer``): ``sublinear_tf`` (default
    true: 1 + log of a word's count), ``binary`` (default false: true counts a word
    once however often it occurs), ``use_idf`` (default true), ``norm`` ("l2",
    default: each query's vector has unit length, so a word weighs less in a longer
    query; "l1"; or "none": a word's weight does not depend on the query's length).

    ``reweight`` (default 0: one plain L2-penalised fit): rounds of adaptive ridge.
    After a fit, each word's column is multiplied by |the word's fitted effect| **
    ``reweight_power`` (default 1; the scales normalised to a root mean square of 1)
    and the model is fitted again: the penalty on a word's effect b becomes about
    (b / its first estimate) ** 2 (power 1, as the adaptive lasso weighs its L1
    penalty) or |b| at the first estimate (power 0.5: repeated rounds approach an L1
    penalty), so it falls on the words that showed no effect and eases on those that
    did, as when a few words among many tell the difficulty. Each round is one more
    fit; scoring costs the same. The metadata columns are not reweighted.

    ``cv`` (default off): a number of folds k >= 2. The settings are then chosen on
    the train items only: each combination of ``cv_grid`` (a mapping of settings to
    candidate values; default {"C": [0.03, 0.1, 0.3]}) is fitted on k - 1 folds and
    scored by the log-loss of its predicted probabilities (for expected_gain: of both
    models' correctness) on the fold left out; the best combination is fitted on all
    of them. ``best_params_`` and ``cv_results_`` (and ``fit_report()["cv"]``) say
    what was chosen and why. Fitting takes k x (candidates) + 1 times as long.
    """

    NORMS = ("l2", "l1", "none")
    DEFAULT_CV_GRID = {"C": [0.03, 0.1, 0.3]}
    # settings a cv_grid may vary: those that shape the fitted model
    CV_SETTINGS = ("C", "metadata_weight", "class_weight", "sublinear_tf", "binary", "use_idf",
                   "norm", "reweight", "reweight_power", "min_df", "max_features",
                   "ngram_range")
    VECTORIZER_SETTINGS = ("max_features", "ngram_range", "min_df", "sublinear_tf", "binary",
                           "use_idf", "norm")

    def __init__(self, max_features=100000, ngram_range=(1, 1), min_df=1, C=0.1,
                 class_weight=None, metadata=None, metadata_weight=1.0, sublinear_tf=True,
                 binary=False, use_idf=True, norm="l2", reweight=0, reweight_power=1.0,
                 cv=None, cv_grid=None, **params):
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.C = C
        self.class_weight = class_weight
        self.metadata = metadata
        self.metadata_weight = metadata_weight
        self.sublinear_tf = sublinear_tf
        self.binary = binary
        self.use_idf = use_idf
        self.norm = norm
        self.reweight = reweight
        self.reweight_power = reweight_power
        self.cv = cv
        self.cv_grid = cv_grid
        super().__init__(**params)

    def __setstate__(self, state):
        # routers saved before these settings existed were fitted without reweighting
        state.setdefault("reweight", 0)
        state.setdefault("reweight_power", 1.0)
        state.setdefault("cv", None)
        state.setdefault("cv_grid", None)
        for name, value in (("sublinear_tf", True), ("binary", False), ("use_idf", True),
                            ("norm", "l2")):
            state.setdefault(name, value)
        super().__setstate__(state)

    def _check_settings(self):
        super()._check_settings()
        self._check_features()

    def _check_features(self):
        name = type(self).__name__
        for setting in ("sublinear_tf", "binary", "use_idf"):
            if not isinstance(getattr(self, setting), (bool, np.bool_)):
                raise ValueError(f"{name}: {setting} must be true or false, got "
                                 f"{getattr(self, setting)!r}")
        if (self.norm if self.norm is not None else "none") not in self.NORMS:
            raise ValueError(f"{name}: norm must be one of {', '.join(self.NORMS)}, got "
                             f"{self.norm!r}")
        if isinstance(self.reweight, bool) or not isinstance(self.reweight, (int, np.integer)) \
                or self.reweight < 0:
            raise ValueError(f"{name}: reweight (rounds of adaptive ridge) must be a whole "
                             f"number >= 0, got {self.reweight!r}")
        try:
            power = float(self.reweight_power)
        except (TypeError, ValueError):
            power = float("nan")
        if not power > 0 or not np.isfinite(power):
            raise ValueError(f"{name}: reweight_power must be a number above 0, got "
                             f"{self.reweight_power!r}")
        for setting in ("C", "metadata_weight"):
            try:
                value = float(getattr(self, setting))
            except (TypeError, ValueError):
                value = float("nan")
            if not value > 0 or not np.isfinite(value):
                raise ValueError(f"{name}: {setting} must be a number above 0, got "
                                 f"{getattr(self, setting)!r}")

    def _metadata_columns(self, samples, fit=False):
        if self.metadata_ is None:
            return None
        columns = (self.metadata_.fit_transform if fit else self.metadata_.transform)(samples)
        # the weight it was fitted with (cross-validation may have chosen it)
        return columns * float(getattr(self, "metadata_weight_", self.metadata_weight))

    def _words(self, texts):
        """The word features, each column scaled by its reweighting factor."""
        features = self.vectorizer_.transform(texts)
        scale = getattr(self, "word_scale_", None)
        if scale is not None:
            features = features @ _column_scaling(scale)
        return features

    def _fit_classifier(self, features, metadata, y):
        if y.ndim == 2:  # expected_gain
            self.classifier_ = _CorrectnessModel(self.C, self.class_weight).fit(
                features, metadata, y)
            return
        self.classifier_ = _logistic_regression(self.C, self.class_weight)
        self.classifier_.fit(_with_metadata(features, metadata), y)

    def _word_effects(self):
        """Per vocabulary word, the size of its fitted effect on the log-odds, per unit
        of its (unscaled) TF-IDF feature."""
        words = len(self.vectorizer_.vocabulary_)
        if isinstance(self.classifier_, _CorrectnessModel):
            effect = self.classifier_.text_effects()
        else:
            effect = np.abs(self.classifier_.coef_.ravel()[:words])
        scale = getattr(self, "word_scale_", None)
        return effect * scale if scale is not None else effect

    def fit(self, samples, labels):
        super().fit(samples, labels)
        if self.cv:
            self.fit_info_["cv"] = {"folds": int(self.cv), "chosen": self.best_params_,
                                    "results": self.cv_results_}
        return self

    def _fit(self, samples, y):
        self._check_features()
        _check_texts(self, query_texts(samples))
        if not self.cv:
            self._fit_once(samples, y)
            return
        self.best_params_, self.cv_results_ = self._cross_validate(samples, y)
        chosen = self._candidate(self.best_params_)
        chosen._fit_once(samples, y)
        for name in ("vectorizer_", "word_scale_", "metadata_", "metadata_weight_",
                     "classifier_"):
            setattr(self, name, getattr(chosen, name))

    def _candidate(self, params):
        """This router with ``params`` instead of its own settings, without cv."""
        settings = dict(self.get_params(), **params, cv=None, cv_grid=None)
        candidate = type(self)(**settings)
        candidate._check_features()
        return candidate

    def _cv_grid(self):
        name = type(self).__name__
        folds = self.cv
        if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
            raise ValueError(f"{name}: cv (the number of folds) must be a whole number >= 2, "
                             f"got {folds!r}")
        grid = self.DEFAULT_CV_GRID if self.cv_grid is None else self.cv_grid
        if not isinstance(grid, dict) or not grid:
            raise ValueError(f"{name}: cv_grid must map settings to lists of candidate values, "
                             f"e.g. {{'C': [0.03, 0.1, 0.3]}}, got {grid!r}")
        unknown = sorted(set(grid) - set(self.CV_SETTINGS))
        if unknown:
            raise ValueError(f"{name}: cv_grid names {', '.join(map(str, unknown))}, which "
                             f"cross-validation cannot choose (it can: "
                             f"{', '.join(self.CV_SETTINGS)})")
        values = []
        for key, candidates in grid.items():
            candidates = [candidates] if isinstance(candidates, (str, int, float)) \
                else list(candidates)
            if not candidates:
                raise ValueError(f"{name}: cv_grid gives no candidate values for {key}")
            values.append(candidates)
        return [dict(zip(grid, combination)) for combination in itertools.product(*values)]

    def _cross_validate(self, samples, y):
        """The grid combination with the lowest held-out log-loss over ``cv`` folds of
        the train items (only those: the folds are cut from ``samples``)."""
        candidates = [(params, self._candidate(params)) for params in self._cv_grid()]
        folds = int(self.cv)
        if folds > len(y):
            raise ValueError(f"{type(self).__name__}: cv {folds} folds for {len(y)} train items")
        fold = np.empty(len(y), dtype=np.int64)
        fold[np.random.default_rng(0).permutation(len(y))] = np.arange(len(y)) % folds
        losses = np.zeros(len(candidates))
        for k in range(folds):
            train, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            fit_on = [samples[i] for i in train]
            for j, (params, candidate) in enumerate(candidates):
                try:
                    candidate._fit_once(fit_on, y[train])
                except ValueError as err:  # e.g. one class only among a fold's labels
                    raise ValueError(f"{type(self).__name__}: cv fold {k + 1} of {folds} "
                                     f"could not be fitted with {params}: {err}") from None
                p = np.clip(candidate._probabilities([samples[i] for i in held]), 1e-12,
                            1 - 1e-12)
                truth = y[held].astype(np.float64)
                losses[j] -= np.sum(truth * np.log(p) + (1 - truth) * np.log1p(-p))
        losses /= y.size  # per answer (expected_gain: two per item)
        results = [{"params": params, "log_loss": float(loss)}
                   for (params, _), loss in zip(candidates, losses)]
        return dict(candidates[int(np.argmin(losses))][0]), results

    def _features(self, samples, raw_words=None):
        """(word features, metadata columns or None) of ``samples``, as fitted;
        ``raw_words``: their unscaled TF-IDF rows where already computed."""
        if raw_words is None:
            return self._words(query_texts(samples)), self._metadata_columns(samples)
        scale = getattr(self, "word_scale_", None)
        words = raw_words @ _column_scaling(scale) if scale is not None else raw_words
        return words, self._metadata_columns(samples)

    def _probabilities(self, samples):
        """Predicted probabilities of the labels: P(hard), or for expected_gain an
        (items, 2) array: P(edge right), P(cloud right)."""
        if isinstance(self.classifier_, _CorrectnessModel):
            return np.column_stack(self.classifier_.p_right(*self._features(samples)))
        return self._score(samples)  # P(hard) is the score

    def vectorizer_settings(self):
        """The settings that shape the word features alone: routers that agree on them
        can share one fitted vectorizer (``new_vectorizer``; AutoRouter's folds do)."""
        return {name: getattr(self, name) for name in self.VECTORIZER_SETTINGS}

    def new_vectorizer(self):
        """An unfitted ``TfidfVectorizer`` of this router's settings."""
        # heavy (scikit-learn, ~1.7 s): only learned routers need it
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            max_features=int(self.max_features), ngram_range=tuple(self.ngram_range),
            min_df=self.min_df, sublinear_tf=bool(self.sublinear_tf), binary=bool(self.binary),
            use_idf=bool(self.use_idf), norm=None if self.norm in (None, "none") else self.norm,
            dtype=np.float32)

    def _fit_once(self, samples, y, vectorized=None):
        """One fit with this router's settings. ``vectorized``: (a vectorizer of the
        same ``vectorizer_settings`` already fitted on these samples' texts, their
        rows), so that candidates differing only in what follows the words share it."""
        self.metadata_weight_ = float(self.metadata_weight)
        if vectorized is None:
            self.vectorizer_ = self.new_vectorizer()
            raw = self.vectorizer_.fit_transform(query_texts(samples))
        else:
            self.vectorizer_, raw = vectorized
        self.word_scale_ = None
        keys = _as_list(self.metadata)
        self.metadata_ = _MetadataFeatures(keys) if keys else None
        metadata = self._metadata_columns(samples, fit=True)
        self._fit_classifier(raw, metadata, y)
        for _ in range(int(self.reweight)):
            scale = self._word_effects() ** float(self.reweight_power)
            rms = float(np.sqrt(np.mean(scale ** 2))) if scale.size else 0.0
            if not rms > 0:  # no word has an effect: nothing to reweight
                break
            self.word_scale_ = (scale / rms).astype(np.float32)
            # the transformed texts, not ``raw``: fit_transform's rows can hold the same
            # values in another order, and the solver's sums (so its stopping point)
            # follow that order; this keeps the fits of before (the example's figures)
            self._fit_classifier(self._words(query_texts(samples)), metadata, y)

    def _score(self, samples, raw_words=None):
        words, metadata = self._features(samples, raw_words)
        if isinstance(self.classifier_, _CorrectnessModel):
            return self.classifier_.gain(words, metadata)
        return self.classifier_.predict_proba(_with_metadata(words, metadata))[:, 1]
