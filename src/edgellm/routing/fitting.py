"""Fitting a learned router on an outcome matrix, and keeping it: ``OutcomeFitting``
is mixed into ``ScoringRouter`` (edgellm.routing.scoring) and gives every learned
router ``fit_outcomes`` (labels from the train part of a seeded split), ``save`` and
``load`` (joblib) and the per-job cache a benchmark job reuses: a router fitted from
``train_outcomes`` is saved as ``<save_dir>/<Class>-<hash>.joblib``, the hash of its
fitted settings and of the outcome file, and loaded from there by the next test case.

That file sits in the workspace, which is data: whoever can write there could put a
crafted pickle in its place, and unpickling runs code. So the run that saves it signs
its bytes (edgellm.signing: an HMAC under the user's own key, kept outside the
workspace, in a ``.hmac`` sidecar), and a file that does not verify is never
unpickled: the router fits again, and says so. A file the user names (``model_path``,
``load``) is loaded as given: load only files you trust (docs/routers.md).

The methods work on the router's own state and hooks (``fit``, ``_check_params``,
``_fit_params``, ``_set_threshold``, ``fit_info_``), which ScoringRouter defines.
"""

import hashlib
import io
import json
import logging
import os

from edgellm.context import current_context
from edgellm.files import file_digest, write_bytes
from edgellm.outcomes import OutcomeSet, split_part
from edgellm.routing.labels import training_labels
from edgellm.signing import sign, verified_bytes

LOG = logging.getLogger(__name__)


def _joblib():
    # heavy (joblib, ~0.25 s): only saving and loading a router needs it
    import joblib

    return joblib


class OutcomeFitting:
    """Mixin of ScoringRouter: fitting on an outcome matrix, saving and loading."""

    def fit_outcomes(self, outcomes):
        """Fit on the train part of an ``OutcomeSet`` (or an outcome-matrix path, read
        with ``edge_model``/``cloud_model``), split by ``split`` and ``split_seed``;
        labels from the train items' recorded outcomes only. The train part written
        by ``edgellm dataset split`` trains whole unless ``split`` is set; its test
        part is refused."""
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

    def save(self, path):
        """Write the fitted router to ``path`` (joblib; atomically). Load it only from
        sources you trust: joblib files are pickles."""
        path = os.fspath(path)
        write_bytes(path, self._dumped())
        return path

    def _dumped(self):
        """The fitted router as joblib bytes."""
        self._ensure_ready()
        buffer = io.BytesIO()
        _joblib().dump(self, buffer)
        return buffer.getvalue()

    @classmethod
    def load(cls, path):
        """A router saved with ``save``; it must be a ``cls``."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no saved router there")
        return cls._unpickled(path, path)

    @classmethod
    def _unpickled(cls, path, source):
        """The router in ``source`` (a path, or a file of bytes read from ``path``)."""
        try:
            router = _joblib().load(source)
        except Exception as err:  # a truncated or foreign file
            raise ValueError(f"{path}: not a saved router ({type(err).__name__}: {err})") from None
        if not isinstance(router, cls):
            raise ValueError(f"{path}: holds a {type(router).__name__}, not a {cls.__name__}")
        if not hasattr(router, "threshold_"):
            raise ValueError(f"{path}: the router in it was never fitted")
        return router

    def _load_fitted(self, path, data=None):
        """Take the fitted state of the router saved at ``path`` (``data``: its bytes,
        already read and verified)."""
        saved = type(self).load(path) if data is None else \
            type(self)._unpickled(path, io.BytesIO(data))
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
        algorithm_dir = current_context().algorithm_dir
        folder = self.save_dir or (os.path.join(algorithm_dir, "routers")
                                   if algorithm_dir else None)
        path = None
        if folder:
            key = json.dumps({"router": type(self).__name__, "params": self._fit_params(),
                              "outcomes": file_digest(outcomes_path)},
                             sort_keys=True, default=str)
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]
            path = os.path.join(folder, f"{type(self).__name__}-{digest}.joblib")
            if os.path.isfile(path):
                data, problem = verified_bytes(path)
                if data is not None:
                    self._load_fitted(path, data)
                    LOG.info("%s: reusing the router fitted earlier on %s: %s",
                             type(self).__name__, outcomes_path, path)
                    return
                LOG.warning("%s: not loading %s: %s; fitting it again", type(self).__name__,
                            path, problem)
        self.fit_outcomes(outcomes_path)
        if path:
            data = self._dumped()
            write_bytes(path, data)
            sign(path, data)
            self.fit_info_["saved_to"] = path
            split = self.fit_info_["split"]
            LOG.info("%s: fitted on %d train items of %s (split %s, seed %s); saved to %s",
                     type(self).__name__, self.fit_info_["train_items"], outcomes_path,
                     split.get("fraction"), split.get("seed"), path)

