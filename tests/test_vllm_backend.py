"""The vllm backend: its clear refusal without vLLM or a GPU, its request loop against
a stand-in for vLLM's engine API, and (on a CUDA machine with vllm) the real thing."""

import dataclasses
import enum
import importlib.util
import sys
import time
import types

import pytest
import yaml

from conftest import EXAMPLE, JOB
from edgellm.cli import main
from edgellm.models import check_backend
from edgellm.models.vllm_backend import NEEDS, VLLMBackend
from edgellm.registry import SettingError
from tiny_model import tiny_model  # noqa: F401  (session fixture)

MESSAGES = [{"role": "user", "content": "Question: Solve for x: 3x - 7 = 11.\nA. 18\nB. 4"}]


def _vllm_usable():
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch
    return torch.cuda.is_available()


# -- without vLLM or a GPU ---------------------------------------------------------

@pytest.mark.skipif(_vllm_usable(), reason="vLLM and a GPU are present here")
def test_check_says_what_is_missing():
    with pytest.raises(ValueError) as err:
        check_backend("vllm", {"model": "/some/model"})
    assert str(err.value) == f"backend 'vllm': {NEEDS}"


@pytest.mark.skipif(_vllm_usable(), reason="vLLM and a GPU are present here")
def test_job_with_vllm_stops_before_any_case(example, capsys):
    routing = f"{EXAMPLE}/testalgorithms/query-routing"
    algorithm = yaml.safe_load(open(f"{routing}/edge-only.yaml"))
    for module in algorithm["algorithm"]["modules"]:
        if module["type"] == "edgemodel":
            module["hyperparameters"] = [{"backend": {"values": ["vllm"]}},
                                         {"model": {"values": ["./models/qwen"]}}]
    yaml.safe_dump(algorithm, open(f"{routing}/vllm-edge.yaml", "w"))
    job = yaml.safe_load(open(JOB))
    job["benchmarkingjob"]["test_object"]["algorithms"] = [
        {"name": "vllm-edge", "url": f"./{routing}/vllm-edge.yaml"}]
    yaml.safe_dump(job, open(f"{EXAMPLE}/vllm-job.yaml", "w"))

    assert main(["run", "-f", f"{EXAMPLE}/vllm-job.yaml", "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "vllm-edge.yaml" in err and f"backend 'vllm': {NEEDS}" in err
    assert "Traceback" not in err
    assert not (example / "workspace" / "query-routing" / "vllm-edge").exists()


# -- the request loop, against a stand-in for vLLM's engine --------------------------

class RequestOutputKind(enum.Enum):  # vllm.sampling_params.RequestOutputKind
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclasses.dataclass(kw_only=True)
class SamplingParams:
    """vllm.SamplingParams' fields that the backend may set (unknown names fail)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 16
    repetition_penalty: float = 1.0
    seed: int = None
    stop: list = None
    logprobs: int = None
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE


class VLLMClientError(Exception):  # vllm.exceptions in vLLM 0.34: not a ValueError
    pass


class VLLMValidationError(VLLMClientError):
    pass


@dataclasses.dataclass
class TokensPrompt:  # vllm.inputs.TokensPrompt: the engine takes nothing else here
    prompt_token_ids: list


class FakeEngine:
    """vLLM's LLMEngine API as the backend uses it (add_request, step,
    has_unfinished_requests, abort_request, model_config), streaming DELTA outputs:
    every step gives each running request one new token, the prompt's tokens replayed
    after its first three (the user's words, so outputs depend on the prompt), and the
    running cumulative logprob. It refuses what vLLM 0.34 refuses as 0.34 does (a
    VLLMValidationError): a prompt longer than max_model_len, and (``refuse``) any
    prompt holding that token id."""

    def __init__(self, tokenizer, max_model_len, fail_at_step=None, refuse=None):
        self.tokenizer, self.max_model_len = tokenizer, max_model_len
        self.model_config = types.SimpleNamespace(max_model_len=max_model_len)
        self.fail_at_step, self.refuse = fail_at_step, refuse
        self.running, self.aborted, self.steps, self.refused = {}, [], 0, 0
        self.engine_core = types.SimpleNamespace(shutdown=self._shutdown)
        self.shut_down = False

    def _shutdown(self):
        self.shut_down = True

    def add_request(self, request_id, prompt, params):
        assert params.output_kind is RequestOutputKind.DELTA
        assert isinstance(prompt, TokensPrompt), "raw prompt dicts are deprecated"
        ids = prompt.prompt_token_ids
        if len(ids) > self.max_model_len or self.refuse in ids:
            self.refused += 1
            raise VLLMValidationError(f"The decoder prompt (length {len(ids)}) is longer "
                                      f"than the maximum model length of "
                                      f"{self.max_model_len}." if self.refuse not in ids
                                      else "The prompt holds a refused token.",
                                      )
        internal = f"{request_id}-0a1b"  # recent vLLM returns the id it really used
        self.running[internal] = (ids[3:], params, [])
        return internal

    def has_unfinished_requests(self):
        return bool(self.running)

    def abort_request(self, request_ids):
        self.aborted.extend(request_ids)
        self.running.clear()

    def step(self):
        self.steps += 1
        if self.steps == self.fail_at_step:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        time.sleep(0.002)  # a decode step takes time
        outputs = []
        for request_id, (source, params, emitted) in list(self.running.items()):
            token = source[len(emitted) % len(source)]
            emitted.append(token)
            finished = len(emitted) == params.max_tokens
            if finished:
                del self.running[request_id]
            outputs.append(types.SimpleNamespace(
                request_id=request_id, finished=finished,
                outputs=[types.SimpleNamespace(
                    text=self.tokenizer.decode([token]), token_ids=[token],
                    cumulative_logprob=-0.5 * len(emitted)
                    if params.logprobs is not None else None)]))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model):
    """A stand-in ``vllm`` module: LLM (with FakeEngine), SamplingParams,
    sampling_params.RequestOutputKind, distributed.cleanup_dist_env_and_memory."""
    from transformers import AutoTokenizer

    made, cleanups = [], []

    class LLM:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self._tokenizer = AutoTokenizer.from_pretrained(kwargs["model"])
            self.llm_engine = FakeEngine(self._tokenizer, kwargs.get("max_model_len", 2048))
            made.append(self)

        def get_tokenizer(self):
            return self._tokenizer

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.RequestOutputKind = RequestOutputKind
    distributed = types.ModuleType("vllm.distributed")
    distributed.cleanup_dist_env_and_memory = lambda: cleanups.append(True)
    exceptions = types.ModuleType("vllm.exceptions")
    exceptions.VLLMClientError, exceptions.VLLMValidationError = \
        VLLMClientError, VLLMValidationError
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = TokensPrompt
    vllm.exceptions, vllm.inputs = exceptions, inputs
    for name, module in [("vllm", vllm), ("vllm.sampling_params", sampling),
                         ("vllm.distributed", distributed), ("vllm.exceptions", exceptions),
                         ("vllm.inputs", inputs)]:
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(made=made, cleanups=cleanups)


def test_batch_is_streamed_and_timed_per_request(fake_vllm, tiny_model):
    backend = VLLMBackend(model=tiny_model, store="none", max_tokens=5, max_model_len=64,
                          engine_args={"max_num_seqs": 8})
    long_question = [{"role": "user", "content": "word " * 200}]
    batch = [MESSAGES, [{"role": "user", "content": "Translate: hello"}], long_question]
    done = []
    backend.complete_batch(batch, lambda i, g: done.append((i, g)))

    llm = fake_vllm.made[0]
    assert llm.kwargs == {"model": tiny_model, "dtype": "auto", "gpu_memory_utilization": 0.9,
                          "tensor_parallel_size": 1, "enforce_eager": False,
                          "max_model_len": 64, "max_num_seqs": 8}
    tokenizer = llm.get_tokenizer()
    assert sorted(i for i, _ in done) == [0, 1, 2]
    by_index = dict(done)
    # checked against the engine's max_model_len before it is sent: never reaches vLLM
    assert "longer than the model's context (max_model_len 64)" in by_index[2].error
    assert llm.llm_engine.refused == 0
    for i in (0, 1):
        generation = by_index[i]
        ids = tokenizer.apply_chat_template(batch[i], add_generation_prompt=True,
                                            return_dict=False)
        assert generation.error is None
        assert generation.prompt_tokens == len(ids)
        assert generation.completion_tokens == 5 == len(generation.token_times)
        assert generation.text == "".join(tokenizer.decode([t]) for t in ids[3:8])
        times = generation.token_times
        assert 0 < times[0] < times[-1] <= generation.e2e
        assert all(b > a for a, b in zip(times, times[1:]))  # one step per token
        assert generation.mean_logprob == pytest.approx(-0.5)
    assert by_index[0].text != by_index[1].text
    assert not llm.llm_engine.running

    backend.close()
    assert llm.llm_engine.shut_down and fake_vllm.cleanups and backend._llm is None


def test_sampling_settings_reach_vllm(fake_vllm, tiny_model):
    backend = VLLMBackend(model=tiny_model, store="none", temperature=0.7, top_p=0.9,
                          max_tokens=3, seed=4, stop=["\n\n"], repetition_penalty=1.1,
                          logprobs=False, dtype="bfloat16", quantization="awq")
    params = backend.sampling_params()
    assert (params.temperature, params.top_p, params.max_tokens, params.seed, params.stop,
            params.repetition_penalty, params.logprobs) == (0.7, 0.9, 3, 4, ["\n\n"], 1.1, None)
    assert backend.store_settings() == {
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 3, "repetition_penalty": 1.1,
        "seed": 4, "stop": ["\n\n"], "dtype": "bfloat16", "quantization": "awq"}
    assert VLLMBackend(model=tiny_model).output_settings() == {"dtype": "auto",
                                                               "logprobs": True}
    assert backend.complete(MESSAGES).mean_logprob is None

    response = backend.generate({"query": "Question: 2+2?\nA. 4\nB. 5",
                                 "task_type": "multiple_choice", "gold": "A", "id": 0})
    assert response["usage"]["completion_tokens"] == 3
    assert len(response["perf"]["itl"]) == 2 and response["perf"]["time_to_first_token"] > 0


def test_engine_failure_aborts_what_is_in_flight(fake_vllm, tiny_model):
    backend = VLLMBackend(model=tiny_model, store="none", max_tokens=5)
    backend.engine().llm_engine.fail_at_step = 3
    with pytest.raises(RuntimeError, match="illegal memory access"):
        backend.complete_batch([MESSAGES, MESSAGES], lambda i, g: None)
    assert len(fake_vllm.made[0].llm_engine.aborted) == 2


def test_a_request_vllm_refuses_fails_alone(fake_vllm, tiny_model):
    """vLLM 0.34 refuses a request with VLLMValidationError, a VLLMClientError and no
    longer a ValueError: that request is recorded with its error, the batch goes on."""
    backend = VLLMBackend(model=tiny_model, store="none", max_tokens=4)
    tokenizer = backend.engine().get_tokenizer()
    marker = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("Translate")[0])
    backend.engine().llm_engine.refuse = marker
    batch = [MESSAGES, [{"role": "user", "content": "Translate: hello"}], MESSAGES]
    done = {}
    backend.complete_batch(batch, done.__setitem__)
    assert sorted(done) == [0, 1, 2]
    assert done[1].error == "VLLMValidationError: The prompt holds a refused token."
    assert done[0].error is None and done[2].error is None and done[0].text == done[2].text
    assert backend.engine().llm_engine.refused == 1


@pytest.mark.parametrize("setting, value, message", [
    ("temperature", 2.5, "temperature must be a number from 0 to 2"),
    ("temperature", -0.1, "temperature must be a number >= 0"),  # every backend's check
    ("repetition_penalty", 0, "repetition_penalty must be a number > 0"),
    ("top_p", 0, "top_p must be a number > 0"),
    ("max_tokens", 0, "max_tokens must be a whole number >= 1"),
])
def test_settings_vllm_refuses_fail_before_the_run(setting, value, message):
    """Checked before vLLM or a GPU is even looked for: a bad setting is one line about
    that setting on any machine (the runner names its file and key)."""
    with pytest.raises(SettingError) as err:
        check_backend("vllm", {"model": "/some/model", setting: value})
    assert err.value.name == setting and message in str(err.value)


def test_job_with_a_temperature_vllm_refuses_stops_before_any_case(example, capsys):
    routing = f"{EXAMPLE}/testalgorithms/query-routing"
    algorithm = yaml.safe_load(open(f"{routing}/edge-only.yaml"))
    for module in algorithm["algorithm"]["modules"]:
        if module["type"] == "edgemodel":
            module["hyperparameters"] = [{"backend": {"values": ["vllm"]}},
                                         {"model": {"values": ["./models/qwen"]}},
                                         {"temperature": {"values": [3.0]}}]
    yaml.safe_dump(algorithm, open(f"{routing}/vllm-edge.yaml", "w"))
    job = yaml.safe_load(open(JOB))
    job["benchmarkingjob"]["test_object"]["algorithms"] = [
        {"name": "vllm-edge", "url": f"./{routing}/vllm-edge.yaml"}]
    yaml.safe_dump(job, open(f"{EXAMPLE}/vllm-job.yaml", "w"))
    assert main(["run", "-f", f"{EXAMPLE}/vllm-job.yaml", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "vllm-edge.yaml: key 'algorithm.modules[1].hyperparameters[2].temperature'" in err
    assert "temperature must be a number from 0 to 2" in err


# -- the real vLLM, on a CUDA GPU ----------------------------------------------------

@pytest.fixture(scope="module")
def real_vllm():
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")


def test_real_vllm_on_the_tiny_model(real_vllm, tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    backend = VLLMBackend(model=tiny_model, store="none", max_tokens=8, max_model_len=512,
                          gpu_memory_utilization=0.3, enforce_eager=True)
    try:
        batch = [MESSAGES, [{"role": "user", "content": "Translate: hello"}]] * 2
        done = {}
        backend.complete_batch(batch, done.__setitem__)
        assert sorted(done) == [0, 1, 2, 3]
        for i, generation in done.items():
            ids = tokenizer.apply_chat_template(batch[i], add_generation_prompt=True,
                                                return_dict=False)
            assert generation.error is None
            assert generation.prompt_tokens == len(ids)
            assert 1 <= generation.completion_tokens == len(generation.token_times) <= 8
            times = generation.token_times
            assert 0 < times[0] <= times[-1] <= generation.e2e
            assert all(b >= a for a, b in zip(times, times[1:]))
            assert generation.mean_logprob is not None and generation.mean_logprob <= 0
        assert done[0].text == done[2].text and done[1].text == done[3].text  # greedy
    finally:
        backend.close()
