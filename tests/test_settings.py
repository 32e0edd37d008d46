"""The one registry and the one settings rule: a misspelt setting on any kind of module
ends the job before its first test case with one line naming the file, the key and the
nearest valid name (exit 2, rank files untouched); lookup by alias with did-you-mean;
a duplicate alias is an error."""

import os
import re

import pytest

from conftest import EXAMPLE, JOB, edit
from edgellm.cli import main
from edgellm.models import check_backend
from edgellm.models.chat import ChatBackend
from edgellm.models.setting_kinds import check_kinds
from edgellm.models.simulated import SimulatedLLM
from edgellm.registry import (Registry, RegistryError, SettingError, UnknownSetting,
                              accepted_settings, check_settings)

ROUTING = f"{EXAMPLE}/testalgorithms/query-routing"
FLEET_JOB = f"{EXAMPLE}/benchmarkingjob-multi-edge.yaml"
FLEET = f"{EXAMPLE}/testalgorithms/multi-edge-offloading/multi-edge.yaml"
SENTINEL = "rank,algorithm\n1,an earlier run\n"


def run_misspelt(capsys, job, rank_dir):
    """Run ``job``; it must stop with one line, exit 2, and leave the rank files as
    they were (an earlier run's file is there, unchanged)."""
    os.makedirs(rank_dir)
    for name in ("all_rank.csv", "selected_rank.csv"):
        with open(os.path.join(rank_dir, name), "w") as handle:
            handle.write(SENTINEL)
    code = main(["run", "-f", job, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("edgellm: error: "), err
    assert "Traceback" not in err
    for name in ("all_rank.csv", "selected_rank.csv"):
        with open(os.path.join(rank_dir, name)) as handle:
            assert handle.read() == SENTINEL
    assert sorted(os.listdir(os.path.dirname(rank_dir))) == ["rank"]  # no case folder
    return err


MAIN_RANK = "workspace/query-routing/rank"
FLEET_RANK = "workspace/multi-edge-offloading/rank"


@pytest.mark.parametrize("kind, file, old, new, key, hint", [
    ("backend", f"{ROUTING}/edge-only.yaml", "        - seed:\n            values: [0]\n\n"
     "    - type: \"cloudmodel\"", "        - sed:\n            values: [0]\n\n"
     "    - type: \"cloudmodel\"", "algorithm.modules[1].hyperparameters[2].sed", "seed"),
    ("router", f"{ROUTING}/random-router.yaml", "- cloud_probability:", "- cloud_probabilty:",
     "algorithm.modules[3].hyperparameters[0].cloud_probabilty", "cloud_probability"),
    ("dataset processor", f"{ROUTING}/edge-only.yaml",
     'url: "./examples/edge-llm-distribution/testalgorithms/query-routing/data_processor.py"\n',
     'url: "./examples/edge-llm-distribution/testalgorithms/query-routing/data_processor.py"\n'
     '      hyperparameters:\n        - task_typ:\n            values: ["MC"]\n',
     "algorithm.modules[0].hyperparameters[0].task_typ", "task_type"),
])
def test_misspelt_setting_of_the_main_job(example, capsys, kind, file, old, new, key, hint):
    edit(file, old, new)
    err = run_misspelt(capsys, JOB, MAIN_RANK)
    assert f"{file}: key '{key}'" in err, kind
    assert f"did you mean '{hint}'?" in err, kind


@pytest.mark.parametrize("kind, old, new, key, hint", [
    ("fleet module", "- caching_every:", "- cachng_every:",
     "algorithm.modules[1].hyperparameters[3].cachng_every", "caching_every"),
    ("offloader", "- latency_weight:", "- latency_wieght:",
     "algorithm.modules[1].hyperparameters[5].latency_wieght", "latency_weight"),
    ("caching policy", "        - seed:\n            values: [0]\n",
     "        - seed:\n            values: [0]\n        - horizon_window:\n"
     "            values: [4]\n",
     "algorithm.modules[1].hyperparameters[7].horizon_window", "horizon_windows"),
    ("offloader alias", '"LeastLoaded", ', '"LeastLoadd", ',
     "algorithm.modules[1].hyperparameters[1].offloader", "LeastLoaded"),
    ("caching alias", '"LRU", ', '"LUR", ',
     "algorithm.modules[1].hyperparameters[2].caching", "LRU"),
    ("dataset processor", "- tasks_per_round:", "- tasks_per_rond:",
     "algorithm.modules[0].hyperparameters[0].tasks_per_rond", "tasks_per_round"),
])
def test_misspelt_setting_of_the_fleet_job(example, capsys, kind, old, new, key, hint):
    edit(FLEET, old, new)
    err = run_misspelt(capsys, FLEET_JOB, FLEET_RANK)
    assert f"{FLEET}: key '{key}'" in err, kind
    assert f"did you mean '{hint}'?" in err, kind


def test_a_setting_shared_by_a_grid_is_fine_for_parts_that_do_not_take_it():
    from edgellm.fleet.registry import create_offloader

    # the multi-edge grid gives latency_weight to RoundRobin too: it takes what it accepts
    assert type(create_offloader("RoundRobin", latency_weight=0.02)).__name__ == \
        "RoundRobinOffloader"
    with pytest.raises(UnknownSetting, match="did you mean 'latency_weight'"):
        create_offloader("RoundRobin", latency_wieght=0.02)


# -- the registry itself ----------------------------------------------------------------

class Base:
    def __init__(self, alpha=1, beta=2):
        self.alpha, self.beta = alpha, beta


class Child(Base):
    def __init__(self, gamma=3, **settings):
        super().__init__(**settings)
        self.gamma = gamma

    @classmethod
    def extra_settings(cls):
        return ["delta"]


def test_settings_are_the_init_parameters_along_the_class_tree():
    assert accepted_settings(Child) == ["alpha", "beta", "gamma", "delta"]
    check_settings(Child, {"alpha": 0, "gamma": 1, "delta": 2})
    with pytest.raises(UnknownSetting) as err:
        check_settings(Child, {"gama": 1})
    assert err.value.name == "gama" and err.value.suggestion == "gamma"
    assert "did you mean 'gamma'?" in str(err.value)
    with pytest.raises(UnknownSetting, match=r"known: alpha, beta, gamma, delta"):
        check_settings(Child, {"zzzzzz": 1})


def test_registry_lookup_lazy_entries_and_duplicates():
    registry = Registry("thing")
    registry.register("base", Base)
    registry.register("lazy", "test_settings:Child")
    assert registry.get("lazy") is Child  # imported on first lookup
    assert registry.names() == ["base", "lazy"]
    registry.register("base", Base)  # the same object again: nothing changes
    with pytest.raises(RegistryError, match="'base' is registered twice"):
        registry.register("base", Child)
    with pytest.raises(RegistryError, match="unknown thing 'bsae'; did you mean 'base'"):
        registry.get("bsae")
    assert registry.create("base", alpha=5).alpha == 5
    with pytest.raises(UnknownSetting, match="thing base: unknown setting 'alfa'"):
        registry.create("base", alfa=5)

    @registry.register("decorated")
    class Decorated:
        pass

    assert registry.get("decorated") is Decorated


def test_backends_task_types_and_fleet_parts_share_the_rule():
    from edgellm.fleet.registry import CACHING_POLICIES, OFFLOADERS
    from edgellm.models import BACKENDS, check_backend
    from edgellm.tasks.registry import get_task_type

    assert {"simulated", "openai", "replay"} <= set(BACKENDS.names())
    with pytest.raises(UnknownSetting, match="did you mean 'seed'"):
        check_backend("simulated", {"model": "gpt-4o-mini", "sed": 1})
    with pytest.raises(RegistryError, match="did you mean 'LinUCB'"):
        OFFLOADERS.get("LinUBC")
    with pytest.raises(RegistryError, match="did you mean 'DemandKnapsack'"):
        CACHING_POLICIES.get("DemandKnapsak")
    assert get_task_type("qa").code == "QA" and get_task_type(2).code == "QA"
    with pytest.raises(ValueError, match="unknown task type"):
        get_task_type("translate it")


def test_the_replay_backend_takes_the_other_backends_settings_and_nothing_else():
    from edgellm.models import check_backend

    with pytest.raises(UnknownSetting, match="did you mean 'base_url'"):
        check_backend("replay", {"model": "m", "store": "none", "base_ur": "http://x"})
    with pytest.raises(ValueError, match="needs a response store"):  # settings were fine
        check_backend("replay", {"model": "m", "store": "none", "base_url": "http://x",
                                 "max_concurrency": 4, "dtype": "auto"})


@pytest.mark.parametrize("backend, params, message", [
    ("simulated", {"seed": "abc"}, "seed must be a whole number, got str 'abc'"),
    ("simulated", {"seed": None}, "seed must be a whole number, got null"),
    ("simulated", {"ttft_s": "fast"}, "ttft_s must be a number, got str 'fast'"),
    ("simulated", {"jitter": float("nan")}, "jitter must be a number, a finite one"),
    ("simulated", {"accuracy": {"multiple_choice": 1.5}},
     "accuracy of multiple_choice must be a share in (0, 1), got 1.5"),
    ("replay", {"max_tokens": "lots"}, "max_tokens must be a whole number, got str 'lots'"),
    ("replay", {"max_tokens": 0}, "max_tokens must be a whole number >= 1, got int 0"),
    ("replay", {"temperature": True}, "temperature must be a number, got bool True"),
    ("replay", {"stop": ["a", 1]}, "stop must be text or a list of texts"),
    ("openai", {"max_concurrency": 2.5}, "max_concurrency must be a whole number"),
    ("openai", {"api_key_env": 12345}, "api_key_env must be text, got a value not shown"),
    ("huggingface", {"logprobs": "yes"}, "logprobs must be true or false, got str 'yes'"),
    ("vllm", {"gpu_memory_utilization": 1.5}, "gpu_memory_utilization must be a number <= 1"),
    ("vllm", {"engine_args": "max_num_seqs=4"}, "engine_args must be a mapping"),
])
def test_a_backend_setting_of_the_wrong_kind_fails_before_the_run(backend, params, message):
    """Caught only when a test case ran (every case failing with a ValueError), or never
    (2.5 concurrent requests became 2): now check_backend names the setting."""
    with pytest.raises(SettingError, match=re.escape(message)) as err:
        check_backend(backend, {"model": "gpt-4o-mini", **params})
    assert err.value.name == next(iter(params)) and "12345" not in str(err.value)


def test_settings_of_the_right_kind_and_null_defaults_pass_the_kind_check():
    check_kinds(ChatBackend, {"model": "m", "seed": None, "stop": "\n", "temperature": 0,
                              "top_p": 1, "max_tokens": 8, "system_prompt": None}, "chat")
    check_kinds(SimulatedLLM, {"model": "m", "seed": 3, "ttft_s": 1, "accuracy": {}}, "sim")
