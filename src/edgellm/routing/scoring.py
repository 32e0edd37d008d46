"""The base of the learned routers, in the style of RouteLLM's: a ``ScoringRouter``
gives each query one score, higher meaning more in need of the cloud, and sends it to
the cloud when the score reaches a threshold, applied in one place (``predict`` and
``route_batch``). A learned router implements only ``_fit(samples, y)`` and
``_score(samples)``.

They follow scikit-learn's conventions: ``__init__`` only stores the settings,
``fit(samples, labels)`` trains on the train split, ``score(samples)`` returns one
float per sample, ``predict(samples)`` the decisions; fitted state ends in ``_``. For
Ianvs (sedna calls ``router(sample)``) and ``edgellm run`` (``route_batch``) a router
fits itself on first use from an outcome matrix (``train_outcomes``) or loads a saved
one (``model_path``): edgellm.routing.fitting.
"""

import inspect
import logging
import os

import numpy as np

from edgellm.metrics.routing_curves import calibrate_threshold
from edgellm.registry import accepted_settings
from edgellm.routing.base import Router, note_scores
from edgellm.routing.fitting import OutcomeFitting
from edgellm.routing.labels import LABELS
from edgellm.tasks.registry import messages_text

LOG = logging.getLogger(__name__)


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


def query_texts(samples):
    """The query texts of ``samples`` (``query_text``)."""
    return [query_text(s) for s in samples]


class ScoringRouter(OutcomeFitting, Router):
    """Base of the learned routers: a score per query and a threshold. A subclass
    stores its settings in ``__init__`` (explicit keyword parameters, the rest passed
    on here) and implements ``_fit(samples, y)`` and ``_score(samples)``.

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
      ``<algorithm folder>/routers``, the run context's algorithm folder in a
      benchmark job, edgellm.context) as ``<class>-<hash of settings and outcome file>.joblib``; an existing
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

    def get_params(self, deep=False):
        return {name: getattr(self, name) for name in accepted_settings(type(self))}

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

    def _fit(self, samples, y):
        raise NotImplementedError

    def _score(self, samples):
        raise NotImplementedError

    def _set_threshold(self):
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
        texts = query_texts(samples)
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
        return self._decide(self.score(samples))

    def route_batch(self, samples):
        """The decisions; each score is also written on its sample (``router_score``,
        ``note_scores``) for the routing-curve metrics."""
        samples = list(samples)
        scores = self.score(samples)
        note_scores(samples, scores)
        self._note_train_items(samples)
        return [bool(d) for d in self._decide(scores)]

    def _decide(self, scores):
        """The one place the threshold is applied: the cloud where the score reaches it."""
        return scores >= self.threshold_

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

