import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/edge-llm-distribution"
JOB = f"{EXAMPLE}/benchmarkingjob.yaml"


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
