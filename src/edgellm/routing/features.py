"""What the learned routers read besides a query's text, and how they combine it:
one-hot metadata columns (``_MetadataFeatures``: e.g. the subject beside the words),
the expected-gain correctness model (``_CorrectnessModel``: one logistic regression
of "the answer is right" over both models' answers), and the sparse-matrix helpers
that put feature blocks side by side. The routers' fitted state holds these
objects, so their names are part of what a saved router (a pickle) refers to."""

import numpy as np


def _sparse():
    # heavy (scipy, ~0.4 s): only fitting and scoring a learned router needs it
    from scipy import sparse

    return sparse


def _logistic_regression(C, class_weight=None, max_iter=1000):
    """scikit-learn's ``LogisticRegression``, the classifier of the linear routers."""
    # heavy (scikit-learn, ~1.7 s): only learned routers need it
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=float(C), class_weight=class_weight, max_iter=max_iter)


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _metadata_rows(samples, keys):
    """One row of strings per sample: its values of ``keys`` (missing: "")."""
    return [[str(s.get(k) if s.get(k) is not None else "") for k in keys] for s in samples]


class _MetadataFeatures:
    """One-hot columns of sample metadata (e.g. subject) next to the text features,
    so one linear model learns a prior per group and the text signal together.
    Values unseen in training get no column (zeros)."""

    def __init__(self, keys):
        # heavy (scikit-learn, ~1.7 s): only learned routers need it
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
        self.model = _logistic_regression(C, class_weight, max_iter=2000)

    @classmethod
    def _rows(cls, shared, own, cloud):
        sparse = _sparse()
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
        sparse = _sparse()
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


def _with_metadata(features, metadata):
    """The features with the metadata one-hot columns beside them (CSR), or as they
    are where there is no metadata."""
    if metadata is None:
        return features
    sparse = _sparse()
    return sparse.hstack([sparse.csr_matrix(features), metadata]).tocsr()


def _column_scaling(scale):
    sparse = _sparse()
    return sparse.diags(np.asarray(scale, dtype=np.float32), format="csr")

