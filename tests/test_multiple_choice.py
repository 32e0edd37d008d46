import pytest

from edgellm.tasks.multiple_choice import extract_choice, parse_options


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
