"""The one YAML reader: a key given twice and alias bombs are one-line errors."""

import time

import pytest

from edgellm.errors import ConfigError
from edgellm.yaml_file import MAX_ALIAS_VALUES, load_yaml


def read(tmp_path, text):
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    return load_yaml(str(path), "test")


@pytest.mark.parametrize("text, line, first", [
    ("a: 1\nb: 2\na: 3\n", 3, 1),
    ("top:\n  x: {a: 1, b: 2, a: 3}\n", 2, 2),
    ("list:\n  - k: 1\n    j: 2\n    k: 1\n", 4, 2),
])
def test_a_key_given_twice_names_both_lines(tmp_path, text, line, first):
    with pytest.raises(ConfigError, match=rf"f.yaml: line {line}: key '\w' given twice "
                                          rf"\(first at line {first}\)"):
        read(tmp_path, text)


def test_merge_keys_anchors_and_aliases_still_work(tmp_path):
    data = read(tmp_path, "base: &b {a: 1, c: 2}\nd:\n  <<: *b\n  a: 5\n"
                          "same: &s [1, 2]\ntwice: [*s, *s]\n'1': text\n1: number\n")
    assert data["d"] == {"a": 5, "c": 2} and data["twice"] == [[1, 2], [1, 2]]
    assert data["1"] == "text" and data[1] == "number"


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    # 9 levels of 10 aliases each: 10^9 strings once expanded
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
    started = time.perf_counter()
    # the first block past the limit is named: e (line 5), 10^5 strings
    with pytest.raises(ConfigError, match=r"f.yaml: line 5: aliases expand this block to "
                                          r"111,111 values"):
        read(tmp_path, bomb)
    assert time.perf_counter() - started < 1.0


def test_aliases_up_to_the_limit_are_fine(tmp_path):
    per = 1000
    count = MAX_ALIAS_VALUES // (per + 1) - 1
    text = f"a: &a [{', '.join(['x'] * per)}]\nb: [{', '.join(['*a'] * count)}]\n"
    assert len(read(tmp_path, text)["b"]) == count


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="line 1: an alias refers to the block it is in"):
        read(tmp_path, "a: &a [1, *a]\n")


@pytest.mark.parametrize("loader", ["SafeLoader", "CSafeLoader"])
def test_deep_nesting_is_refused_before_composing(tmp_path, monkeypatch, loader):
    # the pure-Python composer and a libyaml without its own nesting limit both recurse
    # once per level: 100,000 "[" was a RecursionError or a segfault before this check
    import yaml

    from edgellm import yaml_file
    if not hasattr(yaml, loader):
        pytest.skip("PyYAML without libyaml")
    monkeypatch.setattr(yaml_file, "_Loader", getattr(yaml, loader))
    with pytest.raises(ConfigError, match=r"f.yaml: line 2: (blocks nested more than "
                                          r"200 deep|invalid YAML: exceeded maximum)"):
        read(tmp_path, "a: 1\nb: " + "[" * 100_000)
    deep = yaml_file.MAX_NESTING - 1  # the last depth allowed (the mapping is one)
    data, levels = read(tmp_path, "b: " + "[" * deep + "]" * deep)["b"], 1
    while data:
        data, levels = data[0], levels + 1
    assert levels == deep
