"""The session fixture ``tiny_model``: a tiny chat model folder built once per test
session (edgellm.testing.tiny_model says what it is)."""

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a tiny chat model folder, built once per test session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from edgellm.testing.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
