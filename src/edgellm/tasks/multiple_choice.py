"""Multiple-choice items: their options, and the letter a completion chose."""

import re
from functools import lru_cache

_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.)]\s*(.+?)\s*$", re.MULTILINE)


@lru_cache(maxsize=None)
def _patterns(letters):
    """Most explicit first: "answer is (B)", "Answer: B"; then a completion that is
    a letter or starts with "B." / "(B)"; then the last standalone option letter.
    Only the item's option letters count, so the pronoun "I" is never option I."""
    group = f"([{letters}])"
    return (re.compile(rf"answer\s*(?:is|:)?\s*:?\s*\(?\b{group}\b\)?", re.IGNORECASE),
            re.compile(rf"^\s*\(?{group}(?:[.):]|\s*$)"),
            re.compile(rf"\b{group}\b"))


def parse_options(text):
    """{letter: option text} of the trailing option block ("A. ...", "B) ...")."""
    options = {}
    for letter, body in _OPTION_LINE.findall(text or ""):
        if letter == "A":
            options = {}  # a new block (few-shot prompts hold several): keep the last
        options[letter] = body
    return options


def extract_choice(completion, letters="ABCD"):
    """The option letter a completion commits to, or None. ``letters``: the item's
    option letters (MMLU's four by default)."""
    if not completion:
        return None
    text = str(completion)
    explicit, leading, standalone = _patterns(letters)
    found = [m.upper() for m in explicit.findall(text) if m.upper() in letters]
    if found:
        return found[-1]
    match = leading.match(text)
    if match:
        return match.group(1)
    found = standalone.findall(text)
    return found[-1] if found else None
