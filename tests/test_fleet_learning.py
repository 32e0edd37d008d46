"""The learning offloaders (LinUCB, Thompson, MLPPredictor) in the fleet simulator:
registered by alias, deterministic, the same one by one and in batches, and they
learn: on a fleet where one node holds a clearly better model than the others,
they come to send it most tasks, without being told the models' quality."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import EXAMPLE, REPO
from edgellm.fleet.learning import LinUcbOffloader, MlpPredictorOffloader, ThompsonOffloader
from edgellm.fleet.registry import create_offloader
from edgellm.records import FleetOptions as Options, FleetOutcome as Outcome, FleetTask as Task
from edgellm.fleet.simulator import FleetSimulator
from edgellm.fleet.topology import load_topology
from edgellm.fleet.workload import RoundWorkload
from edgellm.metrics.catalog import METRICS
from edgellm.tasks.registry import task_types

DATA = REPO / EXAMPLE / "dataset" / "five-tasks" / "test_data" / "data.jsonl"
LEARNERS = ["LinUCB", "Thompson", "MLPPredictor"]

# Three equal nodes; "good" holds Qwen2.5-7B (profile quality 0.50-0.72 per task type),
# the two others Qwen2.5-0.5B (0.20-0.48). Fast enough that latency barely matters.
TOPOLOGY = """
name: one-good-node
nodes:
  - {id: good, memory_gb: 8, speed: 2.0, slots: 4, link: {bandwidth_mbps: 1000, rtt_ms: 4},
     models: [qwen-7b]}
  - {id: poor-a, memory_gb: 8, speed: 2.0, slots: 4, link: {bandwidth_mbps: 1000, rtt_ms: 4},
     models: [qwen-0.5b]}
  - {id: poor-b, memory_gb: 8, speed: 2.0, slots: 4, link: {bandwidth_mbps: 1000, rtt_ms: 4},
     models: [qwen-0.5b]}
models:
  - {id: qwen-0.5b, profile: Qwen/Qwen2.5-0.5B-Instruct, sizes_gb: {q4_k_m: 0.4},
     load_s_per_gb: 1.0, prefill_tokens_per_s: 3000, decode_tokens_per_s: 60}
  - {id: qwen-7b, profile: Qwen/Qwen2.5-7B-Instruct, sizes_gb: {q4_k_m: 4.7},
     load_s_per_gb: 1.0, prefill_tokens_per_s: 1200, decode_tokens_per_s: 30}
cloud: {profile: gpt-4o-mini, rtt_ms: 250, decode_tokens_per_s: 90, rate_limit_rps: 5}
"""


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    path = tmp_path_factory.mktemp("fleet") / "one-good-node.yaml"
    path.write_text(TOPOLOGY, encoding="utf-8")
    return load_topology(str(path))


def workload(repeat=2):
    """The five-task dataset ``repeat`` times, shuffled (seeded) so that both halves of
    the run hold the same task mix, in rounds of 4 tasks a second."""
    with open(DATA, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle] * repeat
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    dataset = SimpleNamespace(x=[r["query"] for r in rows], y=[r["response"] for r in rows],
                              level_3=[r["level_3_dim"] for r in rows], level_4=None)
    dataset = RoundWorkload(tasks_per_round=4, round_interval_s=1.0)(dataset)
    return dataset.x, dataset.y


@pytest.fixture(scope="module")
def samples():
    return workload()


def run(topology, samples, offloader, one_by_one=False, **params):
    sim = FleetSimulator(topology, offloader, params.pop("caching", "Static"),
                         caching_every=params.pop("caching_every", 20), **params)
    copies = [dict(s) for s in samples]
    if one_by_one:
        return [sim.serve(s) for s in copies]
    return sim.serve_batch(copies)


def accuracy(y, responses):
    return METRICS["Accuracy"](y, [[False, r, r, None] for r in responses])


def share_on(responses, node):
    return float(np.mean([r["node"] == node for r in responses]))


@pytest.fixture(scope="module")
def results(topology, samples):
    """Every offloader's responses on the one-good-node fleet (default settings)."""
    x, _ = samples
    return {name: run(topology, x, name)
            for name in ["RoundRobin", "QualityGreedy", *LEARNERS]}


# -- registry and hyperparameters -----------------------------------------------------------

def test_learners_are_created_by_alias_from_a_grid_of_params():
    # one grid for every part of the fleet: each takes the settings it accepts
    grid = {"latency_weight": 0.05, "alpha": 0.3, "noise_std": 0.1, "epsilon": 0.0,
            "hidden": [16], "seed": 3, "horizon_windows": 2}
    linucb, thompson, mlp = (create_offloader(name, **grid) for name in LEARNERS)
    assert isinstance(linucb, LinUcbOffloader) and linucb.alpha == 0.3
    assert isinstance(thompson, ThompsonOffloader) and thompson.noise_std == 0.1
    assert isinstance(mlp, MlpPredictorOffloader) and mlp.hidden == (16,)
    assert mlp.epsilon == 0.0 and mlp.seed == 3
    assert all(o.learns and o.latency_weight == 0.05 for o in (linucb, thompson, mlp))


@pytest.mark.parametrize("name, params, message", [
    ("LinUCB", {"alpha": -1}, "alpha must be >= 0"),
    ("LinUCB", {"arms": "nodes"}, "arms must be 'node_model' or 'model'"),
    ("Thompson", {"ridge": 0}, "ridge must be > 0"),
    ("MLPPredictor", {"epsilon": 1.5}, "epsilon must be >= 0 and <= 1"),
    ("MLPPredictor", {"hidden": "wide"}, "hidden must be layer sizes"),
    ("MLPPredictor", {"latency_weight": "fast"}, "latency_weight must be a number"),
])
def test_bad_hyperparameters_fail_at_creation(name, params, message):
    with pytest.raises(ValueError, match=message):
        create_offloader(name, **params)


# -- determinism -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", LEARNERS + ["DQN", "ActiveReasoning"])
def test_same_seed_same_responses(topology, samples, name):
    x = samples[0][:200]
    first = run(topology, x, create_offloader(name, seed=7))
    again = run(topology, x, create_offloader(name, seed=7))
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    if name != "LinUCB":   # the others draw random numbers: the seed matters
        other = run(topology, x, create_offloader(name, seed=8))
        assert [r["node"] for r in other] != [r["node"] for r in first]


@pytest.mark.parametrize("name", LEARNERS)
def test_serve_one_by_one_equals_serve_batch(topology, samples, name):
    """With caching rounds (new arms appear while models load) and an SLO that sends
    some tasks to the cloud."""
    x = samples[0][:240]
    params = dict(caching="LRU", caching_every=5, slo_s=1.0)
    batch = run(topology, x, name, **params)
    single = run(topology, x, name, one_by_one=True, **params)
    assert json.dumps(batch, sort_keys=True) == json.dumps(single, sort_keys=True)
    assert {r["tier"] for r in batch} == {"edge", "cloud"}
    # LRU brings the 7B model to the poor nodes: options (arms) appear during the run
    assert any("transfers" in r.get("fleet", {}) for r in batch)


# -- learning --------------------------------------------------------------------------------

def test_linucb_learns_the_better_node(results, samples):
    """LinUCB ends up sending nearly every task to the node with the better model and
    gets close to QualityGreedy, which is told the models' quality."""
    _, y = samples
    half = len(y) // 2
    linucb = results["LinUCB"]
    first, second = share_on(linucb[:half], "good"), share_on(linucb[half:], "good")
    assert second > first and second >= 0.95, (first, second)
    assert share_on(results["RoundRobin"], "good") == pytest.approx(1 / 3, abs=0.01)
    acc = {name: accuracy(y, responses) for name, responses in results.items()}
    late = {name: accuracy(y[half:], responses[half:]) for name, responses in results.items()}
    assert acc["LinUCB"] > acc["RoundRobin"] + 8, acc
    assert late["LinUCB"] > late["RoundRobin"] + 10, late
    assert late["LinUCB"] >= late["QualityGreedy"] - 2, late
    assert acc["LinUCB"] >= acc["QualityGreedy"] - 5, acc


@pytest.mark.parametrize("name", ["Thompson", "MLPPredictor"])
def test_thompson_and_mlp_learn_the_better_node(results, samples, name):
    _, y = samples
    half = len(y) // 2
    responses = results[name]
    first, second = share_on(responses[:half], "good"), share_on(responses[half:], "good")
    assert second > first and second >= 0.8, (first, second)
    assert accuracy(y, responses) > accuracy(y, results["RoundRobin"]) + 5
    assert accuracy(y[half:], responses[half:]) > accuracy(y[half:], results["RoundRobin"][half:])


# -- the update rules, on made-up options -----------------------------------------------

def options(node, model, latency, ready=None):
    n = len(node)
    return Options(node=np.array(node), model=np.array(model), quality=np.zeros(n),
                   latency_s=np.array(latency, dtype=float), wait_s=np.zeros(n),
                   ready=np.ones(n, bool) if ready is None else np.array(ready))


def task(index, type_index=1, prompt_tokens=100):
    return Task(index=index, task_type=list(task_types())[type_index], type_index=type_index,
                prompt_tokens=prompt_tokens, arrival_s=0.0, round=0)


def test_linucb_choice_is_the_textbook_score():
    """Per arm: A = ridge I + sum x x', b = sum y x, theta = A^-1 b; the choice maximises
    theta . x + alpha sqrt(x' A^-1 x) - latency_weight * expected latency."""
    rng = np.random.default_rng(1)
    alpha, weight, ridge = 0.8, 0.05, 2.0
    bandit = LinUcbOffloader(latency_weight=weight, alpha=alpha, ridge=ridge)
    d = len(task_types()) + 2
    a = {arm: ridge * np.eye(d) for arm in range(6)}
    b = {arm: np.zeros(d) for arm in range(6)}
    node, model = [0, 0, 1, 1, 2, 2], [0, 1, 0, 2, 1, 3]   # arm = row (first sight order)
    for index in range(300):
        t = task(index, type_index=int(rng.integers(6)), prompt_tokens=int(rng.integers(5, 3000)))
        opts = options(node, model, rng.uniform(0.1, 5.0, 6))
        x = np.zeros(d)
        x[t.type_index], x[-2], x[-1] = 1.0, 1.0, np.log1p(t.prompt_tokens) / 8
        expected = []
        for arm in range(6):
            a_inv = np.linalg.inv(a[arm])
            expected.append(a_inv @ b[arm] @ x + alpha * np.sqrt(x @ a_inv @ x)
                            - weight * opts.latency_s[arm])
        row = bandit.choose(t, opts)
        assert row == int(np.argmax(expected))
        quality, latency = float(rng.random()), float(opts.latency_s[row] + rng.normal(0, 0.5))
        bandit.observe([Outcome(task=t, node=node[row], model=model[row],
                                expected_latency_s=float(opts.latency_s[row]), wait_s=0.0,
                                quality=quality, latency_s=latency)])
        y = quality - weight * (latency - opts.latency_s[row])
        a[row] += np.outer(x, x)
        b[row] += y * x


@pytest.mark.parametrize("name", LEARNERS)
def test_no_exploration_of_loading_models_or_options_the_fallback_overrode(name):
    """An option never tried looks promising; it is not explored while its model still
    loads, nor at an expected latency the SLO fallback has turned down before (the task
    would go to the cloud and the option would stay untried for ever)."""
    learner = create_offloader(name, warmup=10**6, epsilon=1.0)   # the MLP: always explore
    tried = options([0], [0], [0.5])
    for index in range(30):   # arm (0, 0) is known and mediocre
        learner.choose(task(index), tried)
        learner.observe([Outcome(task=task(index), node=0, model=0, expected_latency_s=0.5,
                                 wait_s=0.0, quality=0.3, latency_s=0.5)])
    loading = options([0, 1], [0, 1], [0.5, 0.6], ready=[True, False])
    assert all(learner.choose(task(100 + i), loading) == 0 for i in range(20))
    ready = options([0, 1], [0, 1], [0.5, 8.0])
    picks = [learner.choose(task(200 + i), ready) for i in range(50)]
    assert 1 in picks   # untried and ready: explored
    overridden = 200 + picks.index(1)   # the fallback sent that task to the cloud
    learner.observe([Outcome(task=task(overridden), node=-1, model=-1, expected_latency_s=1.2,
                             wait_s=0.0, quality=0.9, latency_s=1.0)])
    assert all(learner.choose(task(300 + i), options([0, 1], [0, 1], [0.5, 9.0])) == 0
               for i in range(20))


def test_mlp_widens_its_one_hots_when_new_nodes_and_models_appear():
    mlp = MlpPredictorOffloader(warmup=0, epsilon=0.0, batch_size=8)
    few = options([0, 1], [0, 1], [0.5, 0.5])
    for index in range(64):
        row = mlp.choose(task(index), few)
        mlp.observe([Outcome(task=task(index), node=row, model=row, expected_latency_s=0.5,
                             wait_s=0.0, quality=float(row == 1), latency_s=0.5)])
    assert mlp._nodes == 16 and mlp._net is not None
    many = options([0, 1, 40], [0, 1, 20], [0.5, 0.5, 0.5])
    mlp.choose(task(1000), many)
    assert mlp._nodes == 64 and mlp._models == 32
    quality, latency = mlp.predict(task(1001), many, np.zeros(3))
    assert np.isfinite(quality).all() and np.isfinite(latency).all()
    assert quality[1] > quality[0]   # what it learnt survives the refit
