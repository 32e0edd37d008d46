"""Extraction is not fooled by a model that echoes its prompt."""

from edgellm.tasks.extraction import extract_prediction, parse_entity_pairs
from edgellm.tasks.registry import prompt_for

TC = {"task_type": "TC", "query": "my cat knocked my coffee over again", "gold": "3"}
NER = {"task_type": "NER", "query": "Yasmin Farouk left Deloitte for Peru ."}


def test_tc_label_list_in_instructions_is_not_an_answer():
    assert extract_prediction(TC, prompt_for(TC)) is None  # pure echo: no answer
    assert extract_prediction(TC, prompt_for(TC) + " angry") == "angry"
    assert extract_prediction(TC, "Reply with exactly one word from this list: sad, happy, "
                                  "love, angry, scared, surprise.\nangry") == "angry"
    assert extract_prediction(TC, "The options are sad, happy, love, angry, scared, "
                                  "surprise; I pick love") == "love"
    assert extract_prediction(TC, "Emotion: Angry.") == "angry"


def test_ner_instruction_words_do_not_score():
    assert extract_prediction(NER, prompt_for(NER))["entities"] == []
    echoed = prompt_for(NER) + "\nPER: Yasmin Farouk\nORG: Deloitte\nLOC: Peru"
    prediction = extract_prediction(NER, echoed)
    assert prediction["entities"] == [["Yasmin Farouk", "PER"], ["Deloitte", "ORG"],
                                      ["Peru", "LOC"]]
    assert prediction["tags"] == ["B-PER", "I-PER", "O", "B-ORG", "O", "B-LOC", "O"]
    # "LOC (location)" names nothing in the input
    assert extract_prediction(NER, "LOC: location\nPER: person")["entities"] == []


def test_ner_accepts_other_layouts():
    assert extract_prediction(NER, "Yasmin Farouk (person); Peru (LOC)")["entities"] == [
        ["Yasmin Farouk", "PER"], ["Peru", "LOC"]]
    assert extract_prediction(NER, '[{"text": "Deloitte", "type": "ORG"}]')["entities"] == [
        ["Deloitte", "ORG"]]


def test_qa_ts_sg_take_the_answer_after_the_echo():
    qa = {"task_type": "QA", "query": "Which city is the capital of Australia?"}
    assert extract_prediction(qa, prompt_for(qa) + " Canberra.\nIt was chosen in 1908.") \
        == "Canberra"
    ts = {"task_type": "TS", "query": "今天天气很好。"}
    assert extract_prediction(ts, prompt_for(ts) + " The weather is nice today.") == \
        "The weather is nice today."
    sg = {"task_type": "SG", "query": "A long article."}
    assert extract_prediction(sg, "Summary: The council approved it.") == \
        "The council approved it."


def test_multiple_choice_echo_of_options():
    mc = {"task_type": "multiple_choice", "query": "Question: 2+2?\nA. 3\nB. 4\nC. 5\nD. 22"}
    assert extract_prediction(mc, prompt_for(mc) + " B") == "B"
    assert extract_prediction(mc, "Answer: (C)") == "C"


def test_entity_pairs_of_an_answer_nested_very_deep_are_none_found():
    assert parse_entity_pairs("[" * 100_000 + "]" * 100_000) == []
