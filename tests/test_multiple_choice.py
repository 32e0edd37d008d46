import pytest

from edgellm.tasks.multiple_choice import extract_choice, option_letters, parse_options
from edgellm.tasks.scoring import is_correct


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("(C)", "C"), ("D.", "D"), ("The answer is B.", "B"),
    ("Answer: C", "C"), ("answer is (D) because", "D"),
    ("The correct answer is A. Paris", "A"), ("A) 42", "A"),
    ("I think it must be C", "C"), ("", None), (None, None), ("no idea", None),
])
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_parse_options_keeps_last_block():
    prompt = ("Question: 1+1?\nA. 1\nB. 2\nAnswer: B\n\n"
              "Question: 2+2?\nA. 3\nB. 4\nC. 5\nD. 22")
    assert parse_options(prompt) == {"A": "3", "B": "4", "C": "5", "D": "22"}


@pytest.mark.parametrize("text, letters", [
    ("Q?\nA. x\nB. y\nC. z", "ABC"), ("A. x\nB. y", "AB"), ("  (A) x\n(B) y\n(C) z", "ABC"),
    ("Q\nA) 1\nB) 2\nAnswer: B\nA. a\nB. b\nC. c\nD. d", "ABCD"),  # the last block
    ("no options here", ""), ("B. x\nC. y", ""),
])
def test_option_letters_of_the_trailing_block(text, letters):
    assert option_letters(text) == letters


@pytest.mark.parametrize("prediction, gold, right", [
    ("B", "B", True), ("B", "C", False), ("The answer is B", "B", True), ("B", "(B)", True),
    (None, "B", False),
    # neither names an option: not a match (two unreadable answers are not equal)
    ("b", "c", False), ("x", "y", False), ("no idea", "unknown", False),
])
def test_is_correct_compares_the_chosen_options(prediction, gold, right):
    assert is_correct(prediction, gold) is right
