"""One item of every task type, answered (and scored) once when a process of the live
fleet starts, so that no task in flight waits for it.

The first answer of a type loads its scorer's library (seqeval brings scikit-learn and
SciPy, rouge-score NLTK: 0.05-1.1 s) and builds the answerer's per-type state (4-6 ms
per fresh model); in the center, a thread doing that holds the event loop through the
GIL: at 200 tasks/s the first tasks after each change of task type waited 15-40 ms.
"""

from edgellm.models.simulated import SimulatedLLM
from edgellm.records import response_score

# by the task types' own names: an answerer keeps its per-type state under the name a
# sample gives ("NER" warmed nothing for "named_entity_recognition")
_ITEMS = (("named_entity_recognition", "Alice lives in Paris", "B-PER O O B-LOC"),
          ("question_answering", "Question: who?", "Alice"),
          ("text_classification", "I am happy", "happy"),
          ("translation", "你好", "Hello"), ("summarization", "One. Two. Three.", "One."),
          ("multiple_choice", "Question: 1+1?\nA. 2\nB. 3", "A"))


def items():
    return [{"id": f"warm-up-{i}", "query": query, "gold": gold, "task_type": kind}
            for i, (kind, query, gold) in enumerate(_ITEMS)]


def answer(llm):
    """``llm`` (a SimulatedLLM) answers every task type once; the answers."""
    return llm.generate_batch(items())


def answer_and_score(profile):
    """A model of ``profile`` answers every task type once and the answers are scored:
    what the center's monitor does with every answered task (call it in a thread)."""
    samples = items()
    answers = SimulatedLLM(profile, tier="edge").generate_batch(samples)
    # the item scores the monitor computes (web/round_stats.py), with their libraries
    return [response_score({"gold": s["gold"], "task_type": s["task_type"]}, a)
            for s, a in zip(samples, answers)]
