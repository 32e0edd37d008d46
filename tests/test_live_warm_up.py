"""The live fleet's warm-up (live/warm_up.py) reaches every task type by the name samples
give it: an answerer warmed under an alias ("NER") kept its per-type state cold for
"named_entity_recognition", and the first tasks of each type waited for it."""

from edgellm.live.warm_up import answer, answer_and_score, items
from edgellm.models.simulated import SimulatedLLM, solve_ability
from edgellm.tasks.registry import task_types


def test_the_warm_up_names_every_task_type_as_samples_do():
    assert sorted(item["task_type"] for item in items()) == sorted(task_types())


def test_a_warmed_answerer_solves_nothing_more_for_a_runs_tasks():
    """The costly per-type state (the ability that gives the profile's accuracy, solved
    numerically, cached) is there after the warm-up: a run's tasks of every type, under
    their own names, add no solve."""
    llm = SimulatedLLM("Qwen/Qwen2.5-3B-Instruct", tier="edge", node="edge-a")
    answers = answer(llm)
    assert [a["task_type"] for a in answers] == [i["task_type"] for i in items()]
    solved = solve_ability.cache_info().misses
    run = [dict(item, id=f"task-{i}", query=f"{item['query']} ({i})")
           for i, item in enumerate(items())]
    assert len(llm.generate_batch(run)) == len(run)
    assert solve_ability.cache_info().misses == solved


def test_the_centers_warm_up_scores_one_answer_of_each_type():
    scores = answer_and_score("Qwen/Qwen2.5-1.5B-Instruct")
    assert len(scores) == len(task_types()) and all(0.0 <= s <= 1.0 for s in scores)
