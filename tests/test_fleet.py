"""The fleet: topology files, workloads, the timeline, caching, offloading, the job."""

import csv
import json
import os

import numpy as np
import pytest
import yaml

from conftest import EXAMPLE, REPO, edit
from edgellm.cli import main
from edgellm.errors import ConfigError
from edgellm.fleet.simulator import FleetSimulator
from edgellm.fleet.topology import load_topology
from edgellm.fleet.workload import RoundWorkload
from edgellm.metrics.catalog import METRICS

FLEET = f"{EXAMPLE}/testalgorithms/multi-edge-offloading"
SMALL = str(REPO / FLEET / "topologies/small.yaml")
LARGE = str(REPO / FLEET / "topologies/large.yaml")
FIVE = REPO / EXAMPLE / "dataset/five-tasks/test_data/data.jsonl"
MULTI_JOB = f"{EXAMPLE}/benchmarkingjob-multi-edge.yaml"

TOPOLOGY = """
name: tiny
nodes:
  - {id: fast, memory_gb: 4, speed: 2.0, slots: 1, link: {bandwidth_mbps: 800, rtt_ms: 10}, models: [small]}
  - {id: slow, memory_gb: 4, speed: 0.5, slots: 1, link: {bandwidth_mbps: 80, rtt_ms: 20}, models: []}
models:
  - {id: small, profile: Qwen/Qwen2.5-1.5B-Instruct, sizes_gb: {q4_k_m: 1.0}, load_s_per_gb: 2.0,
     prefill_tokens_per_s: 1000, decode_tokens_per_s: 50}
  - {id: big, profile: Qwen/Qwen2.5-7B-Instruct, sizes_gb: {q4_k_m: 3.0, fp16: 15.0}, load_s_per_gb: 1.0,
     prefill_tokens_per_s: 200, decode_tokens_per_s: 10}
cloud: {profile: gpt-4o-mini, rtt_ms: 200, prefill_tokens_per_s: 4000, decode_tokens_per_s: 100,
        rate_limit_rps: 2}
"""


class _Data:
    def __init__(self, rows):
        self.x = [r["query"] for r in rows]
        self.y = [r["response"] for r in rows]
        self.level_3 = [r["level_3_dim"] for r in rows]
        self.level_4 = [None] * len(rows)


def five_tasks(**workload):
    rows = [json.loads(line) for line in FIVE.read_text(encoding="utf-8").splitlines()]
    data = RoundWorkload(**workload)(_Data(rows))
    return data.x, data.y


def shipped_settings():
    """The workload and fleet settings of the shipped algorithm yaml (first values)."""
    algorithm = yaml.safe_load((REPO / FLEET / "multi-edge.yaml").read_text())["algorithm"]
    settings = {}
    for module in algorithm["modules"]:
        if module["type"] in ("dataset_processor", "edgemodel"):
            settings[module["type"]] = {k: v["values"][0] for hp in module["hyperparameters"]
                                        for k, v in hp.items()}
    return settings["dataset_processor"], settings["edgemodel"]


def run_fleet(topology, offloader, caching, **overrides):
    workload, fleet = shipped_settings()
    samples, golds = five_tasks(**workload)
    fleet = {**fleet, **overrides}
    fleet.pop("topology")
    sim = FleetSimulator(load_topology(topology), offloader=offloader, caching=caching,
                         **{k: v for k, v in fleet.items() if k not in ("offloader", "caching")})
    responses = sim.serve_batch(samples)
    return sim, responses, golds


def figures(responses, golds):
    y_pred = [[False, r, r, None] for r in responses]
    e2e = [r["perf"]["e2e_latency"] for r in responses]
    hits = [r["cache_hit"] for r in responses if r["cache_hit"] is not None]
    return {"accuracy": METRICS["Accuracy"](golds, y_pred), "p95": float(np.percentile(e2e, 95)),
            "hit": float(np.mean(hits)) if hits else 0.0}


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TOPOLOGY)
    return str(path)


def mc(i, arrival, round_number=None):
    return {"id": i, "query": f"Question {i}?\nA. one\nB. two\nC. three\nD. four", "gold": "A",
            "task_type": "multiple_choice", "subject": None, "arrival_s": arrival,
            "round": i if round_number is None else round_number}


# -- the timeline ---------------------------------------------------------------------

def test_one_task_timing_follows_the_formulas(tiny):
    topo = load_topology(tiny)
    sim = FleetSimulator(topo, "LeastLoaded", "Static")
    res = sim.serve(mc(0, 5.0))
    node, model = topo.nodes[0], topo.models[0]
    prompt, out = sim._task(mc(1, 6.0)).prompt_tokens, res["usage"]["completion_tokens"]
    prefill = prompt / (model.prefill_tokens_per_s * node.speed)
    itl = 1 / (model.decode_tokens_per_s * node.speed)
    up = node.rtt_s / 2 + prompt * 4 * 8 / (node.bandwidth_mbps * 1e6)
    perf = res["perf"]
    assert res["node"] == "fast" and res["model"] == "small" and res["tier"] == "edge"
    assert perf["queue_time"] == 0 and perf["model_load_time"] == 0
    assert perf["time_to_first_token"] == pytest.approx(up + prefill + node.rtt_s / 2)
    assert perf["e2e_latency"] == pytest.approx(perf["time_to_first_token"] + (out - 1) * itl)
    assert perf["busy_s"] == pytest.approx(prefill + (out - 1) * itl)
    assert perf["arrival_s"] == 5.0 and perf["finish_s"] == pytest.approx(5.0 + perf["e2e_latency"])


def test_a_busy_slot_makes_the_next_task_queue(tiny):
    sim = FleetSimulator(load_topology(tiny), "LeastLoaded", "Static")
    first = sim.serve(mc(0, 0.0, 0))
    second = sim.serve(mc(1, 0.0, 0))   # same instant, one slot, only "fast" has a model
    assert second["node"] == "fast"
    assert second["perf"]["queue_time"] == pytest.approx(first["perf"]["busy_s"])
    assert second["perf"]["start_s"] == pytest.approx(first["perf"]["start_s"]
                                                      + first["perf"]["busy_s"])


def test_a_caching_round_pays_transfer_and_load(tiny):
    class Everything:   # plans the big model onto the empty node
        def plan(self, node, topology, demand, resident):
            return ["big"] if node.id == "slow" else list(resident)

    class Slow:   # always the slow node's model
        learns = False

        def choose(self, task, options):
            rows = np.flatnonzero(options.node == 1)
            return int(rows[0]) if len(rows) else 0

    topo = load_topology(tiny)
    sim = FleetSimulator(topo, Slow(), Everything(), caching_every=1)
    sim.serve(mc(0, 0.0))
    res = sim.serve(mc(1, 1.0))   # round 1: caching round at t = 1
    slow, big = topo.nodes[1], topo.model("big")
    ready = 1.0 + 3.0 * 8e3 / slow.bandwidth_mbps + 3.0 * big.load_s_per_gb / slow.speed
    assert sim.transfers == [{"node": "slow", "model": "big", "gb": 3.0,
                              "seconds": pytest.approx(ready - 1.0)}]
    assert res["node"] == "slow" and res["model"] == "big"
    assert res["perf"]["start_s"] == pytest.approx(ready)
    assert res["perf"]["model_load_time"] > 0 and res["cache_hit"] is False
    assert res["fleet"]["transfers"][0]["model"] == "big"


def test_slo_fallback_sends_tasks_to_the_cloud_when_the_edge_would_miss_it(tiny):
    topo = load_topology(tiny)
    sim = FleetSimulator(topo, "LeastLoaded", "Static", slo_s=0.1)
    # twenty tasks at one instant, one slot with a model: past the SLO, a task goes to
    # the cloud (rate limit 2/s, burst 2) when the cloud is expected to be faster
    responses = [sim.serve(mc(i, 0.0, 0)) for i in range(20)]
    edge = [r for r in responses if r["tier"] == "edge"]
    cloud = [r for r in responses if r["tier"] == "cloud"]
    assert responses[0]["tier"] == "edge" and len(cloud) >= 3
    assert all(r["node"] == "cloud" and r["cache_hit"] is None and r["cost_usd"] > 0
               and r["perf"]["busy_s"] == 0 for r in cloud)
    assert all(r["cost_usd"] == 0 for r in edge)
    waits = [r["perf"]["queue_time"] for r in cloud]
    assert waits[:3] == [0.0, 0.0, pytest.approx(0.5)]
    y_pred = [[False, r, r, None] for r in responses]
    assert METRICS["Edge Ratio"]([None] * 20, y_pred) == pytest.approx(100 * len(edge) / 20, abs=0.01)
    # without an SLO there is no fallback
    sim = FleetSimulator(topo, "LeastLoaded", "Static")
    assert all(sim.serve(mc(i, 0.0, 0))["tier"] == "edge" for i in range(20))


def test_serve_one_by_one_equals_serve_batch():
    samples, _ = five_tasks(tasks_per_round=4, round_interval_s=2.0)
    for offloader in ("RoundRobin", "LeastLoaded", "QualityGreedy"):
        for caching in ("Static", "LRU", "LFU", "DemandKnapsack"):
            a = FleetSimulator(load_topology(SMALL), offloader, caching, caching_every=3,
                               slo_s=6)
            b = FleetSimulator(load_topology(SMALL), offloader, caching, caching_every=3,
                               slo_s=6)
            one = [a.serve(s) for s in samples]
            assert one == b.serve_batch(samples[:100]) + b.serve_batch(samples[100:])
            assert a.round_rows() == b.round_rows()


# -- the workload -----------------------------------------------------------------------

def test_fixed_and_poisson_arrivals():
    fixed = RoundWorkload(tasks_per_round=3, round_interval_s=2.0).arrivals(7)
    assert fixed.tolist() == [0, 0, 0, 2, 2, 2, 4]
    poisson = RoundWorkload(arrival="poisson", rate_per_s=50.0, seed=1).arrivals(20000)
    assert poisson[0] == 0 and np.all(np.diff(poisson) >= 0)
    assert 20000 / poisson[-1] == pytest.approx(50.0, rel=0.05)
    assert np.array_equal(poisson, RoundWorkload(arrival="poisson", rate_per_s=50.0,
                                                 seed=1).arrivals(20000))


def test_trace_arrivals_and_their_errors(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,kind\n0.5,a\n1.25,b\n3,c\n")
    assert RoundWorkload(arrival="trace", trace_file=str(trace)).arrivals(3).tolist() == \
        [0.5, 1.25, 3.0]
    with pytest.raises(ConfigError, match=r"trace.csv: 3 arrival times for 4 tasks"):
        RoundWorkload(arrival="trace", trace_file=str(trace)).arrivals(4)
    trace.write_text("1.0\n0.5\n")
    with pytest.raises(ConfigError, match=r"trace.csv: line 2: .*non-decreasing"):
        RoundWorkload(arrival="trace", trace_file=str(trace)).arrivals(2)
    trace.write_text("1.0\nsoon\n")
    with pytest.raises(ConfigError, match=r"trace.csv: line 2: expected an arrival time"):
        RoundWorkload(arrival="trace", trace_file=str(trace)).arrivals(2)


# -- topology files ---------------------------------------------------------------------

@pytest.mark.parametrize("old, new, message", [
    ("models: [small]}", "models: [huge]}", r"key 'nodes\[0\].models\[0\]': unknown model 'huge'"),
    ("memory_gb: 4, speed: 2.0", "memory_gb: 0.5, speed: 2.0",
     r"key 'nodes\[0\].models': initial models need 1.00 GB, more than memory_gb 0.5"),
    ("profile: Qwen/Qwen2.5-7B-Instruct", "profile: Nobody/Nothing",
     r"key 'models\[1\].profile': simulated backend has no profile for model 'Nobody/Nothing'"),
    ("{bandwidth_mbps: 80, rtt_ms: 20}", "{rtt_ms: 20}",
     r"key 'nodes\[1\].link.bandwidth_mbps': missing"),
    ("id: slow", "id: fast", r"key 'nodes\[1\].id': duplicate node id 'fast'"),
    ("sizes_gb: {q4_k_m: 3.0, fp16: 15.0}", "sizes_gb: {q4_k_m: 3.0}, quantization: q2",
     r"key 'models\[1\].quantization': 'q2' is not in sizes_gb"),
    ("cloud: {", "cloud: [{", r"line \d+: invalid YAML"),
    # NaN passed the '<= 0' checks, infinities and true/false were taken as numbers
    ("decode_tokens_per_s: 50}", "decode_tokens_per_s: .nan}",
     r"key 'models\[0\].decode_tokens_per_s': expected a finite number, got nan"),
    ("memory_gb: 4, speed: 0.5", "memory_gb: .inf, speed: 0.5",
     r"key 'nodes\[1\].memory_gb': expected a finite number, got inf"),
    ("rtt_ms: 20}", "rtt_ms: -.inf}", r"key 'nodes\[1\].link.rtt_ms': expected a finite number"),
    ("rtt_ms: 20}", "rtt_ms: -20}", r"key 'nodes\[1\].link.rtt_ms': must be >= 0, got -20"),
    ("sizes_gb: {q4_k_m: 1.0}", "sizes_gb: {q4_k_m: .nan}",
     r"key 'models\[0\].sizes_gb.q4_k_m': expected a positive number, got nan"),
    ("memory_gb: 4, speed: 0.5", "memory_gb: true, speed: 0.5",
     r"key 'nodes\[1\].memory_gb': expected int or float, got bool True"),
    ("slots: 1, link: {bandwidth_mbps: 80,", "slots: true, link: {bandwidth_mbps: 80,",
     r"key 'nodes\[1\].slots': expected int, got bool True"),
    ("rate_limit_rps: 2}", "rate_limit_rps: 2, input_per_mtok: .nan}",
     r"key 'cloud.input_per_mtok': expected a finite number, got nan"),
    ("decode_tokens_per_s: 10}", "decode_tokens_per_s: 10, params_b: -.inf}",
     r"key 'models\[1\].params_b': expected a finite number"),
])
def test_bad_topology_names_file_and_key(tmp_path, old, new, message):
    path = tmp_path / "bad.yaml"
    assert old in TOPOLOGY
    path.write_text(TOPOLOGY.replace(old, new))
    with pytest.raises(ConfigError, match=f"bad.yaml: {message}"):
        load_topology(str(path))


@pytest.mark.parametrize("memory, warned", [
    ((0.5, 0.5), "nodes fast, slow cannot hold any model of the catalog (the smallest needs "
                 "1 GB): every task goes to the cloud"),
    ((4, 0.5), "node slow cannot hold any model of the catalog (the smallest needs 1 GB): "
               "they serve no task"),
])
def test_nodes_that_can_hold_no_model_are_warned_of_once(tmp_path, caplog, memory, warned):
    """Such a topology ran 100 % cloud with exit 0 and no word about it."""
    path = tmp_path / "empty.yaml"
    path.write_text(TOPOLOGY.replace("memory_gb: 4, speed: 2.0", f"memory_gb: {memory[0]}, "
                                     "speed: 2.0").replace("memory_gb: 4, speed: 0.5",
                                                           f"memory_gb: {memory[1]}, speed: 0.5")
                    .replace("models: [small]}", "models: []}"))
    with caplog.at_level("WARNING", logger="edgellm"):
        for _ in range(3):
            load_topology(str(path))
    assert [r.getMessage() for r in caplog.records] == [f"topology {path}: {warned}"]


def test_a_job_on_such_a_topology_says_so_once_before_its_cases(example, capsys):
    small = f"{FLEET}/topologies/small.yaml"
    for memory in ("4.5", "3.5"):
        edit(small, f"memory_gb: {memory}", "memory_gb: 0.5")
    edit(small, "models: [qwen2.5-1.5b]", "models: []")
    edit(f"{FLEET}/multi-edge.yaml", '"./examples/edge-llm-distribution/testalgorithms/multi-'
         'edge-offloading/topologies/large.yaml"', "")
    edit(f"{FLEET}/multi-edge.yaml", ', "QualityGreedy", "LinUCB", "MLPPredictor"]', "]")
    edit(f"{FLEET}/multi-edge.yaml", '["Static", "LRU", "LFU", "DemandKnapsack"]', '["Static"]')
    assert main(["run", "-f", MULTI_JOB, "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"edgellm: warning: topology ./{small}: nodes orin-nx-a, orin-nx-b, "
                   "orin-nano cannot hold any model of the catalog (the smallest needs 0.92 "
                   "GB): every task goes to the cloud"]


def test_a_fleet_that_fits_gets_no_warning(tiny, caplog):
    with caplog.at_level("WARNING", logger="edgellm"):
        load_topology(tiny)
    assert not caplog.records


def test_bad_topology_stops_the_job_before_any_case(example, capsys):
    edit(f"{FLEET}/topologies/small.yaml", "memory_gb: 4.5", "memory_gb: many")
    code = main(["run", "-f", MULTI_JOB, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "small.yaml: key 'nodes[0].memory_gb': expected int or float" in err
    assert not os.path.exists("workspace/multi-edge-offloading/rank")


# -- what the design predicts, on the shipped topologies and settings ---------------------

def test_demand_aware_caching_beats_static_when_the_mix_shifts():
    """The five-task dataset arrives type after type; small.yaml's nodes hold one or
    two models and start cold. Re-planning for the demand raises hits and quality."""
    for offloader in ("QualityGreedy", "RoundRobin"):
        static = figures(*run_fleet(SMALL, offloader, "Static")[1:])
        knapsack = figures(*run_fleet(SMALL, offloader, "DemandKnapsack")[1:])
        assert knapsack["hit"] > static["hit"] + 0.3, (offloader, static, knapsack)
        assert knapsack["accuracy"] > static["accuracy"], (offloader, static, knapsack)


def test_least_loaded_beats_round_robin_on_p95_on_the_heterogeneous_fleet():
    for caching in ("Static", "LRU"):
        rr = figures(*run_fleet(LARGE, "RoundRobin", caching)[1:])
        ll = figures(*run_fleet(LARGE, "LeastLoaded", caching)[1:])
        assert ll["p95"] < 0.7 * rr["p95"], (caching, rr, ll)


def test_ignoring_model_quality_costs_accuracy():
    for topology, caching in ((LARGE, "Static"), (SMALL, "DemandKnapsack")):
        greedy = figures(*run_fleet(topology, "QualityGreedy", caching)[1:])
        for blind in ("RoundRobin", "LeastLoaded"):
            other = figures(*run_fleet(topology, blind, caching)[1:])
            assert greedy["accuracy"] > other["accuracy"] + 1.0, (topology, blind, greedy, other)


# -- the job --------------------------------------------------------------------------

def test_multi_edge_job_runs_writes_round_logs_and_repeats_exactly(example, capsys):
    # a slice of the sweep: two offloaders x two caching policies x both topologies
    edit(f"{FLEET}/multi-edge.yaml", '["RoundRobin", "LeastLoaded", "QualityGreedy", '
         '"LinUCB", "MLPPredictor"]', '["RoundRobin", "QualityGreedy"]')
    edit(f"{FLEET}/multi-edge.yaml", '["Static", "LRU", "LFU", "DemandKnapsack"]',
         '["Static", "DemandKnapsack"]')
    rank = "workspace/multi-edge-offloading/rank/all_rank.csv"
    runs = []
    for _ in range(2):
        assert main(["run", "-f", MULTI_JOB, "--no-progress", "-j", "1"]) == 0
        with open(rank, newline="") as handle:
            rows = list(csv.DictReader(handle))
        runs.append(rows)
    out = capsys.readouterr().out
    assert "multi-edge-offloading" in out and "Cache Hit Ratio" in out
    first, both = runs
    assert len(first) == 8 and len(both) == 16   # rows accumulate across runs

    def values(rows):
        skip = {"rank", "time", "url"}
        return sorted(tuple((k, v) for k, v in r.items() if k not in skip) for r in rows)
    assert values(both) == sorted(values(first) * 2)   # the second run: the same rows
    folder = first[0]["url"]
    for name in ("rounds.csv", "fleet.json", "results.jsonl", "latency_per_round.png",
                 "tasks_per_node.png", "cache_contents.png"):
        assert os.path.isfile(os.path.join(folder, name)), name
    with open(os.path.join(folder, "rounds.csv"), newline="") as handle:
        log = list(csv.DictReader(handle))
    summary = json.loads(open(os.path.join(folder, "fleet.json")).read())
    assert sum(int(r["tasks"]) for r in log) == summary["tasks"] == 352
    assert {r["node"] for r in log} == set(summary["nodes"]) | {"cloud"}


def test_fleet_metrics_do_not_count_sednas_copy_of_the_answer_twice():
    """sedna hands the answer over as a deep copy of the edge result: every metric must
    read the same as with the shared object edgellm run passes."""
    import copy
    sim, responses, golds = run_fleet(LARGE, "RoundRobin", "LRU")
    shared = [[False, r, r, None] for r in responses]
    copied = [[False, copy.deepcopy(r), r, None] for r in responses]
    for name in ("Models Transferred", "Transfer GB", "Node Utilisation", "Load Balance",
                 "Cache Hit Ratio", "Edge Ratio", "Cloud Cost", "Goodput", "Accuracy"):
        assert METRICS[name](golds, copied) == METRICS[name](golds, shared), name
    assert METRICS["Models Transferred"](golds, shared) == len(sim.transfers) > 0


def test_nodes_with_a_base_url_answer_from_their_server(tmp_path, monkeypatch):
    """Each node an OpenAI-compatible endpoint: its server's answers and measured times
    replace the modelled ones; queueing at the node stays on the clock."""
    from edgellm.fleet.module import _endpoints
    from edgellm.models.chat import messages_for
    from edgellm.testing.openai_server import LoopbackOpenAIServer

    monkeypatch.setenv("EDGELLM_STORE", str(tmp_path / "responses.sqlite"))
    with LoopbackOpenAIServer(first_token_delay=0.03, token_delay=0.002,
                              completion_tokens=5) as one, \
            LoopbackOpenAIServer(first_token_delay=0.03, token_delay=0.002,
                                 completion_tokens=5) as two:
        text = TOPOLOGY.replace("models: [small]}", f"models: [small], base_url: '{one.base_url}'}}")
        text = text.replace("models: []}", f"models: [small], base_url: '{two.base_url}'}}")
        path = tmp_path / "served.yaml"
        path.write_text(text)
        topo = load_topology(str(path))
        sim = FleetSimulator(topo, "RoundRobin", "Static", endpoints=_endpoints(topo))
        samples = [mc(i, 0.0, 0) for i in range(4)]
        responses = sim.serve_batch(samples)
        for endpoint in sim.endpoints.values():
            endpoint.close()
    assert [r["node"] for r in responses] == ["fast", "slow", "fast", "slow"]
    assert len(one.requests) == 2 and len(two.requests) == 2
    for sample, res in zip(samples, responses):
        server = one if res["node"] == "fast" else two
        tokens, _ = server.completion_for(messages_for(sample))
        assert res["completion"] == "".join(tokens) and res["model"] == "small"
        assert res["usage"]["completion_tokens"] == 5
        assert res["perf"]["busy_s"] >= 0.03 + 4 * 0.002
    # the second task on each node waited for the first: one slot per node
    for first, second in ((responses[0], responses[2]), (responses[1], responses[3])):
        assert second["perf"]["queue_time"] == pytest.approx(first["perf"]["busy_s"], abs=1e-6)
        assert second["perf"]["e2e_latency"] >= first["perf"]["busy_s"] + 0.03


def test_a_quality_override_changes_the_answers_too(tmp_path):
    """The topology's `quality` is what offloaders expect *and* what answers follow."""
    path = tmp_path / "override.yaml"
    path.write_text(TOPOLOGY.replace("load_s_per_gb: 2.0,", "load_s_per_gb: 2.0, quality: "
                                     "{multiple_choice: 0.05},"))
    samples = [mc(i, float(i), i) for i in range(400)]
    for topology, low, high in ((path, 0.0, 0.15), (None, 0.4, 0.75)):
        topo = load_topology(str(topology)) if topology else None
        if topo is None:
            plain = tmp_path / "plain.yaml"
            plain.write_text(TOPOLOGY)
            topo = load_topology(str(plain))
        responses = FleetSimulator(topo, "LeastLoaded", "Static").serve_batch(samples)
        assert all(r["model"] == "small" for r in responses)
        accuracy = np.mean([r["prediction"] == "A" for r in responses])
        assert low <= accuracy <= high, accuracy
