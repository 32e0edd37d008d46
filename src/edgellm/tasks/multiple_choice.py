"""Multiple-choice items: their options, and the letter a completion chose."""

import re

_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.)]\s*(.+?)\s*$", re.MULTILINE)
# Most explicit first: "answer is (B)", "Answer: B", then a completion that is or
# starts with a letter, then the last standalone capital A-J.
_EXPLICIT = re.compile(r"answer\s*(?:is|:)?\s*:?\s*\(?\b([A-J])\b\)?", re.IGNORECASE)
_LEADING = re.compile(r"^\s*\(?([A-J])(?:[.):]|\s|$)")
_STANDALONE = re.compile(r"\b([A-J])\b")


def parse_options(text):
    """{letter: option text} of the trailing option block ("A. ...", "B) ...")."""
    options = {}
    for letter, body in _OPTION_LINE.findall(text or ""):
        if letter == "A":
            options = {}  # a new block (few-shot prompts hold several): keep the last
        options[letter] = body
    return options


def extract_choice(completion):
    """The option letter a completion commits to, or None."""
    if not completion:
        return None
    text = str(completion)
    explicit = _EXPLICIT.findall(text)
    if explicit:
        return explicit[-1].upper()
    leading = _LEADING.match(text)
    if leading:
        return leading.group(1)
    standalone = _STANDALONE.findall(text)
    return standalone[-1] if standalone else None
