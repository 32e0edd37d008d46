"""The original distribution center's other two learners, DQN and ActiveReasoning:
registered by alias with checked settings, deterministic per seed, blind to the
catalog's quality, at ease with option sets that caching rounds change, and they
learn: where one option is clearly better they come to prefer it. The multi-edge job
runs with them end to end."""

import csv
import json

import numpy as np
import pytest

from conftest import EXAMPLE, edit
from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.fleet.active_reasoning import ActiveReasoningOffloader, ForestTable
from edgellm.fleet.dqn import DqnOffloader, QNetwork
from edgellm.fleet.module import FleetEdgeModel
from edgellm.fleet.registry import create_offloader
from edgellm.fleet.topology import load_topology
from edgellm.records import FleetOptions, FleetOutcome, FleetTask
from edgellm.registry import UnknownSetting
from edgellm.tasks.registry import task_types
from test_fleet_learning import TOPOLOGY, accuracy, run, share_on, workload

LEARNERS = ["DQN", "ActiveReasoning"]
FLEET = f"{EXAMPLE}/testalgorithms/multi-edge-offloading"


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    path = tmp_path_factory.mktemp("fleet") / "one-good-node.yaml"
    path.write_text(TOPOLOGY, encoding="utf-8")
    return load_topology(str(path))


@pytest.fixture(scope="module")
def samples():
    return workload()


@pytest.fixture(scope="module")
def results(topology, samples):
    x, _ = samples
    return {name: run(topology, x, name) for name in ["RoundRobin", *LEARNERS]}


# -- settings ----------------------------------------------------------------------------

def test_created_by_alias_from_a_shared_grid():
    grid = {"latency_weight": 0.05, "load_weight": 0.0, "gamma": 0.9, "hidden": [16, 8],
            "epsilon": 0.2, "n_estimators": 4, "alpha": 0.3, "seed": 5}
    dqn, forest = (create_offloader(name, **grid) for name in LEARNERS)
    assert isinstance(dqn, DqnOffloader) and dqn.gamma == 0.9 and dqn.hidden == (16, 8)
    assert isinstance(forest, ActiveReasoningOffloader) and forest.epsilon == 0.2
    assert forest.n_estimators == 4 and dqn.seed == forest.seed == 5
    assert all(o.learns and o.latency_weight == 0.05 and o.load_weight == 0.0
               for o in (dqn, forest))


@pytest.mark.parametrize("name, params, message", [
    ("DQN", {"gamma": 1.0}, "gamma must be >= 0 and <= 0.99"),
    ("DQN", {"epsilon_end": 0.5, "epsilon_start": 0.2}, "epsilon_end must be >= 0 and <= 0.2"),
    ("DQN", {"epsilon_decay": 0}, "epsilon_decay must be > 0"),
    ("DQN", {"hidden": "wide"}, "hidden must be layer sizes"),
    ("DQN", {"hidden": [0]}, "hidden must be positive layer sizes"),
    ("DQN", {"learning_rate": "fast"}, "learning_rate must be a number"),
    ("ActiveReasoning", {"epsilon": 1.5}, "epsilon must be >= 0 and <= 1"),
    ("ActiveReasoning", {"refit_every": 0}, "refit_every must be >= 1"),
    ("ActiveReasoning", {"n_estimators": 0}, "n_estimators must be >= 1"),
])
def test_bad_settings_fail_at_creation(name, params, message):
    with pytest.raises(ValueError, match=message):
        create_offloader(name, **params)


def test_bad_settings_stop_the_fleet_module_before_the_run():
    with pytest.raises(UnknownSetting, match="did you mean 'epsilon_decay'"):
        FleetEdgeModel.check_config({"topology": "x.yaml", "offloader": "DQN",
                                     "epsilon_decy": 0.9})
    small = f"{EXAMPLE}/testalgorithms/multi-edge-offloading/topologies/small.yaml"
    with pytest.raises(ConfigError, match="gamma must be >= 0 and <= 0.99, got 2.0"):
        FleetEdgeModel.check_config({"topology": small, "offloader": "DQN", "gamma": 2.0})


# (seeds: test_fleet_learning.py's test_same_seed_same_responses covers these too)

@pytest.mark.parametrize("name", LEARNERS)
def test_serve_one_by_one_equals_serve_batch_while_caching_changes_the_options(
        topology, samples, name):
    x = samples[0][:240]
    params = dict(caching="LRU", caching_every=5, slo_s=1.0)
    batch = run(topology, x, name, **params)
    single = run(topology, x, name, one_by_one=True, **params)
    assert json.dumps(batch, sort_keys=True) == json.dumps(single, sort_keys=True)
    assert {r["tier"] for r in batch} == {"edge", "cloud"}
    assert any("transfers" in r.get("fleet", {}) for r in batch)   # options changed


# -- learning, in the simulator ------------------------------------------------------------

@pytest.mark.parametrize("name", LEARNERS)
def test_they_learn_the_better_node(results, samples, name):
    """One node holds Qwen2.5-7B, two hold Qwen2.5-0.5B: the learners come to send
    most tasks to the first, without being told the models' quality."""
    _, y = samples
    half = len(y) // 2
    responses = results[name]
    first, second = share_on(responses[:half], "good"), share_on(responses[half:], "good")
    assert second > first and second >= 0.85, (first, second)
    assert accuracy(y, responses) > accuracy(y, results["RoundRobin"]) + 5
    assert accuracy(y[half:], responses[half:]) > \
        accuracy(y[half:], results["RoundRobin"][half:]) + 8


# -- a scripted fleet whose options change -------------------------------------------------

class BlindOptions(FleetOptions):
    """Options whose catalog quality may not be read."""

    @property
    def quality(self):
        raise AssertionError("a learner read the catalog's quality")

    @quality.setter
    def quality(self, value):
        pass


def blind(pairs, latency=1.0):
    node, model = (np.array(column) for column in zip(*pairs))
    n = len(pairs)
    return BlindOptions(node=node, model=model, quality=None,
                        latency_s=np.full(n, latency), wait_s=np.zeros(n),
                        ready=np.ones(n, dtype=bool))


# (node, model) -> chance of a right answer; (2, 3) arrives with a caching round, and
# (20, 17) lies beyond the one-hot widths the learners start with
CHANCE = {(0, 0): 0.2, (1, 1): 0.6, (2, 3): 0.9, (20, 17): 0.1}
PHASES = [(20, [(0, 0), (1, 1)]), (60, [(0, 0), (2, 3)]), (40, [(0, 0), (2, 3), (20, 17)])]


def scripted(learner, seed=0, tasks_per_round=8):
    """Rounds of tasks on option sets that change between phases (as caching rounds
    change them); returns the pair chosen per task and round."""
    rng = np.random.default_rng(seed)
    chosen, index = [], 0
    for rounds, pairs in PHASES:
        options = blind(pairs)
        for number in range(rounds):
            outcomes = []
            for _ in range(tasks_per_round):
                task = FleetTask(index=index, task_type="multiple_choice",
                                 type_index=list(task_types()).index("multiple_choice"),
                                 prompt_tokens=int(rng.integers(20, 400)), arrival_s=0.0,
                                 round=number)
                row = learner.choose(task, options)
                pair = pairs[row]
                chosen.append((len(chosen) // tasks_per_round, pair))
                outcomes.append(FleetOutcome(
                    task=task, node=pair[0], model=pair[1], expected_latency_s=1.0,
                    wait_s=0.0, quality=float(rng.random() < CHANCE[pair]),
                    latency_s=1.0 + float(rng.normal(0, 0.05))))
                index += 1
            learner.observe(outcomes)
    return chosen


@pytest.mark.parametrize("name", LEARNERS)
def test_a_better_option_a_caching_round_brings_comes_to_be_preferred(name):
    """Without reading the catalog's quality (BlindOptions), through an eviction, a
    new pair and a pair beyond the one-hot widths."""
    learner = create_offloader(name, seed=1)
    chosen = scripted(learner)
    late_first = [p for r, p in chosen if 10 <= r < 20]
    late_second = [p for r, p in chosen if 60 <= r < 80]
    last = [p for r, p in chosen if r >= 100]
    assert late_first.count((1, 1)) / len(late_first) >= 0.7
    assert late_second.count((2, 3)) / len(late_second) >= 0.85   # (1, 1) is gone
    assert last.count((2, 3)) / len(last) >= 0.8
    if name == "DQN":   # one-hots widened for node 20 and model 17
        assert (learner._nodes, learner._models) == (32, 32)
    else:   # epsilon stays 0.1: the new pair is tried, then left
        assert 0 < last.count((20, 17)) / len(last) < 0.1


def test_dqn_widening_keeps_what_was_learnt():
    rng = np.random.default_rng(0)
    net = QNetwork(12, (8,), rng, dense_at=3)
    hot = np.array([[0, 5, 9], [2, 6, 11], [1, 7, 8]])
    dense = rng.normal(size=(3, 2))
    for _ in range(5):
        net.step(hot, dense, np.array([0.5, -0.2, 0.9]), 0.01)
    before = net.forward(hot, dense)
    net.insert_inputs(8, 16)   # 16 more node columns before the model columns at 8
    assert net.w[0].shape == (28, 8) and net._m[0].shape == (28, 8)
    moved = hot + np.array([0, 0, 16])
    assert np.allclose(net.forward(moved, dense), before, rtol=0, atol=1e-12)


def test_dqn_backprop_matches_finite_differences():
    rng = np.random.default_rng(3)
    net = QNetwork(12, (7, 4), rng, dense_at=3)
    hot = np.column_stack([rng.integers(0, 3, 9), 5 + rng.integers(0, 3, 9),
                           8 + rng.integers(0, 4, 9)])
    dense, target = rng.normal(size=(9, 2)), rng.normal(size=9) * 2

    def loss():
        d = net.forward(hot, dense) - target
        return np.mean(np.where(np.abs(d) <= 1, 0.5 * d * d, np.abs(d) - 0.5))

    numeric = []
    for param in net.w + net.b:
        grad = np.zeros_like(param)
        for i in np.ndindex(param.shape):
            param[i] += 1e-6
            up = loss()
            param[i] -= 2e-6
            grad[i] = (up - loss()) / 2e-6
            param[i] += 1e-6
        numeric.append(grad)
    net.step(hot, dense, target, 0.0)   # Adam's first moment after one step: 0.1 * gradient
    for analytic, expected in zip(net._m, numeric):
        assert np.allclose(analytic / 0.1, expected, atol=1e-7)


def test_forest_table_predicts_as_sklearn_does():
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(0)
    forests = {}
    for arm in (0, 2, 3):   # arm 1 has none; forests of different sizes and depths
        x = rng.random((40 + 20 * arm, 8)).astype(np.float32)
        forests[arm] = RandomForestRegressor(n_estimators=3 + arm, max_depth=2 + arm,
                                             random_state=arm).fit(x, rng.random((len(x), 2)))
    table = ForestTable(forests)
    arms = np.array([0, 2, 3, 3, 0, 2])
    x = rng.random((6, 8)).astype(np.float32)
    expected = np.array([forests[a].predict(x[i:i + 1])[0] for i, a in enumerate(arms)])
    assert np.allclose(table.predict(arms, x), expected, rtol=0, atol=1e-12)
    assert table.has(np.array([0, 1, 2, 3, 9])).tolist() == [True, False, True, True, False]


# -- the job -------------------------------------------------------------------------------

def test_the_multi_edge_job_runs_them(example, capsys):
    edit(f"{FLEET}/multi-edge.yaml", '["RoundRobin", "LeastLoaded", "QualityGreedy", '
         '"LinUCB", "MLPPredictor"]', '["DQN", "ActiveReasoning"]')
    edit(f"{FLEET}/multi-edge.yaml", '["Static", "LRU", "LFU", "DemandKnapsack"]', '["LRU"]')
    # the small topology only: its nodes start cold, so caching rounds change the options
    edit(f"{FLEET}/multi-edge.yaml", ',\n                     "./examples/edge-llm-distribution/'
         'testalgorithms/multi-edge-offloading/topologies/large.yaml"', "")
    assert main(["run", "-f", f"{EXAMPLE}/benchmarkingjob-multi-edge.yaml", "--no-progress",
                 "-j", "1"]) == 0
    with open("workspace/multi-edge-offloading/rank/all_rank.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["edgemodel-offloader"] for r in rows) == ["ActiveReasoning", "DQN"]
    assert all(r["edgemodel-topology"].endswith("small.yaml") for r in rows)
    for row in rows:
        assert 30 < float(row["Accuracy"]) < 80 and float(row["Edge Ratio"]) > 50, row
        with open(f"{row['url']}/fleet.json", encoding="utf-8") as handle:
            summary = json.load(handle)
        assert summary["tasks"] == 352 and summary["transfers"] > 0
        assert summary["offloader"] == {"DQN": "DqnOffloader", "ActiveReasoning":
                                        "ActiveReasoningOffloader"}[row["edgemodel-offloader"]]
    assert "ActiveReasoning" in capsys.readouterr().out
