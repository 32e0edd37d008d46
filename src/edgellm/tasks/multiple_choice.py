"""Multiple-choice items: their options, and the letter a completion chose."""

import re
from functools import lru_cache



@lru_cache(maxsize=None)
def _patterns(letters):
    """Most explicit first: "answer is (B)", "Answer: B"; then a completion that is
    a letter or starts with "B." / "(B)"; then the last standalone option letter.
    Only the item's option letters count, so the pronoun "I" is never option I."""
    group = f"([{letters}])"
    return (re.compile(rf"answer\s*(?:is|:)?\s*:?\s*\(?\b{group}\b\)?", re.IGNORECASE),
            re.compile(rf"^\s*\(?{group}(?:[.):]|\s*$)"),
            re.compile(rf"\b{group}\b"))


_OPENERS = ("A.", "A)", "(A)")


def parse_options(text):
    """{letter: option text} of the trailing option block ("A. ...", "B) ...", "(C) ...").

    Options close an MMLU-style prompt, so we scan lines backwards to the last one
    that opens an "A" option (few-shot prompts hold earlier blocks, and often end
    in "Answer:"). No regex over the whole prompt: this runs once per item and
    model, on prompts of thousands of characters.
    """
    text = text or ""
    end = len(text)
    while True:
        start = text.rfind("\n", 0, end) + 1
        if text[start:end].lstrip(" \t").startswith(_OPENERS):
            return _option_lines(text[start:])
        if start == 0:
            return {}
        end = start - 1


# "\n" rather than a MULTILINE "^": four times faster in CPython's regex engine.
_OPTION_MARK = re.compile(r"\n[ \t]*\(?([A-J])[.)]")
_LEADING_OPENER = re.compile(r"[ \t]*(?:A[.)]|\(A\))")  # _OPENERS at the very start


def option_letters(text):
    """The letters of the trailing option block, "ABCD" for a four-option question:
    one C-level scan, for the hot path of the simulated model."""
    found = _OPTION_MARK.findall(text)
    if "A" in found:  # the block the last "A" option opens
        return "".join(found[len(found) - 1 - found[::-1].index("A"):])
    # else a block that opens the text itself, with no newline before its "A"
    return "A" + "".join(found) if _LEADING_OPENER.match(text) else ""


def _option_lines(block):
    options = {}
    for line in block.split("\n"):
        line = line.strip(" \t\r")
        if line[:1] == "(" and line[2:3] == ")":
            letter, body = line[1:2], line[3:]
        elif line[1:2] in (".", ")"):
            letter, body = line[:1], line[2:]
        else:
            continue
        if "A" <= letter <= "J":
            options[letter] = body.strip(" \t")
    return options


def extract_choice(completion, letters="ABCD"):
    """The option letter a completion commits to, or None. ``letters``: the item's
    option letters (MMLU's four by default)."""
    if not completion:
        return None
    text = str(completion)
    if len(text) <= 3:  # fast path for the common "B", "B.", "(B)"
        bare = text.strip(" ().:")
        if len(bare) == 1:
            return bare if bare in letters else None
    explicit, leading, standalone = _patterns(letters)
    found = [m.upper() for m in explicit.findall(text) if m.upper() in letters]
    if found:
        return found[-1]
    match = leading.match(text)
    if match:
        return match.group(1)
    found = standalone.findall(text)
    return found[-1] if found else None
