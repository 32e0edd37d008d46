import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/edge-llm-distribution"
JOB = f"{EXAMPLE}/benchmarkingjob.yaml"


@pytest.fixture(scope="session", autouse=True)
def edgellm_cache(tmp_path_factory):
    """One private cache folder for the whole session: what edgellm builds once per
    user (the embedding router's ONNX model) is built once per session, and never
    in the user's own cache."""
    folder = tmp_path_factory.mktemp("edgellm-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGELLM_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture
def example(tmp_path, monkeypatch):
    """A private copy of the example, with the current directory at its root (Ianvs
    resolves every path in the YAML files against the current directory)."""
    shutil.copytree(REPO / EXAMPLE, tmp_path / EXAMPLE,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def edit(path, old, new):
    """Replace ``old`` with ``new`` in a file of the example copy (must occur)."""
    text = Path(path).read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    Path(path).write_text(text.replace(old, new), encoding="utf-8")


def sample(i, gold="A", subject="s", query=None):
    return {"id": i, "gold": gold, "task_type": "multiple_choice", "subject": subject,
            "query": query or f"Question: item {i}?\nA. one\nB. two\nC. three\nD. four"}
