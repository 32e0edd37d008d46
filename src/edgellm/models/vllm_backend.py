"""The ``vllm`` backend: vLLM's engine in this process, on a CUDA GPU.

A batch of requests is handed to the engine at once, so vLLM schedules them with
continuous batching as a server would. The engine is driven step by step with
streamed (DELTA) outputs rather than through ``LLM.generate``/``LLM.chat``, which
return only final outputs: each step's new tokens are timed as they reach this
process, so every request gets measured TTFT, inter-token gaps and end-to-end
latency. All requests of a batch are sent at the same moment, so a request's TTFT
includes its wait for the others' prefill, as in vLLM's serving benchmark at an
unlimited request rate.

vLLM is imported when the engine is first needed (``pip install 'edgellm[vllm]'`` on
a GPU machine); ``check`` says clearly when it or the GPU is missing, and refuses the
sampling settings vLLM would refuse, before the first test case. Written against vLLM
0.34 (its V1 engine): prompts go in as its ``TokensPrompt``; a request vLLM refuses (a
prompt longer than the model's context, checked here first) is recorded as that
request's error, whatever exception class the vLLM release raises for it.
"""

import gc
import importlib.util
import itertools
import time
from dataclasses import dataclass, field

from edgellm.models.chat import ChatBackend, Generation
from edgellm.models.huggingface import model_source_problem
from edgellm.models.setting_kinds import (
    FLAG, MAPPING, NUMBER, TEXT, WHOLE, above, at_least, at_most)
from edgellm.registry import SettingError

# the runner prefixes check() messages with "backend 'vllm': "
NEEDS = "needs the vllm package and a CUDA GPU: pip install 'edgellm[vllm]' on a GPU machine"
DTYPES = ("auto", "float16", "bfloat16", "float32", "half", "float")
_REQUEST_IDS = itertools.count()


def _cuda_available():
    try:  # torch and vllm: the vllm extra (GPU machines only), imported when used
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@dataclass
class _Request:
    """One request in flight: what has arrived of it so far."""

    index: int
    start: float
    prompt_tokens: int
    pieces: list = field(default_factory=list)
    times: list = field(default_factory=list)
    cumulative_logprob: float = None

    def generation(self, now):
        n = len(self.times)
        return Generation(
            text="".join(self.pieces), prompt_tokens=self.prompt_tokens, completion_tokens=n,
            token_times=self.times, e2e=now - self.start,
            mean_logprob=self.cumulative_logprob / n
            if n and self.cumulative_logprob is not None else None)


def _request_errors():
    """The exceptions vLLM raises for one bad request (not an engine failure): its
    ``VLLMValidationError``, which vLLM 0.34 derives from ``VLLMClientError`` and no
    longer from ``ValueError``, and ``ValueError`` for older releases."""
    try:
        from vllm import exceptions  # the vllm extra: see _cuda_available
    except ImportError:
        return (ValueError,)
    return (ValueError, *(getattr(exceptions, name) for name in
                          ("VLLMClientError", "VLLMValidationError")
                          if isinstance(getattr(exceptions, name, None), type)))


def _tokens_prompt(ids):
    """A prompt of token ids as vLLM's input type (a raw dict is deprecated)."""
    from vllm.inputs import TokensPrompt  # the vllm extra: see _cuda_available

    return TokensPrompt(prompt_token_ids=ids)


def _max_model_len(llm, engine_args):
    """The context length the engine runs with (its model config), else the one asked."""
    engine = llm.llm_engine
    config = getattr(engine, "model_config", None) or \
        getattr(getattr(engine, "vllm_config", None), "model_config", None)
    value = getattr(config, "max_model_len", None) or engine_args.get("max_model_len")
    return int(value) if value else None


def sampling_problem(params):
    """(setting, problem) for the first sampling setting vLLM would refuse, or None:
    vLLM raises for these when the request is made, a failed case midway."""
    def number(name, default):
        value = params.get(name, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            return float("nan")
    rules = (("temperature", 0.0, lambda v: 0.0 <= v <= 2.0, "a number from 0 to 2"),
             ("top_p", 1.0, lambda v: 0.0 < v <= 1.0, "a number above 0 and at most 1"),
             ("repetition_penalty", 1.0, lambda v: v > 0.0, "a number above 0"),
             ("max_tokens", 256, lambda v: v >= 1 and v == int(v), "a whole number >= 1"))
    for name, default, valid, what in rules:
        if not valid(number(name, default)):
            return name, f"{name} must be {what} for vLLM, got {params.get(name)!r}"
    return None


def prompt_ids(tokenizer, messages):
    """The chat-template token ids of ``messages`` (what vLLM's ``LLM.chat`` sends)."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding by default
        ids = ids["input_ids"]
    return [int(i) for i in ids]


class VLLMBackend(ChatBackend):
    """A model served by vLLM in this process.

    Hyperparameters (besides ChatBackend's): ``model`` a local model folder (or a hub
    id in the cache), ``dtype`` (vLLM's: auto, bfloat16, float16, float32; part of
    the store key), ``quantization`` (e.g. awq, gptq, fp8; part of the store key),
    ``gpu_memory_utilization`` (default 0.9), ``max_model_len``,
    ``tensor_parallel_size`` (default 1), ``enforce_eager`` (default false),
    ``engine_args`` (a mapping of further ``vllm.LLM`` arguments, e.g.
    ``{max_num_seqs: 64}``), ``logprobs`` (default true: report the mean
    log-probability of the generated tokens)."""

    backend_name = "vllm"
    SETTING_KINDS = {"dtype": TEXT, "quantization": TEXT,
                     "gpu_memory_utilization": at_most(above(NUMBER, 0), 1),
                     "max_model_len": at_least(WHOLE, 1),
                     "tensor_parallel_size": at_least(WHOLE, 1), "enforce_eager": FLAG,
                     "engine_args": MAPPING, "logprobs": FLAG}

    def __init__(self, model, dtype="auto", quantization=None, gpu_memory_utilization=0.9,
                 max_model_len=None, tensor_parallel_size=1, enforce_eager=False,
                 engine_args=None, logprobs=True, **params):
        super().__init__(model, **params)
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.dtype = str(dtype)
        self.quantization = quantization
        self.engine_args = {
            "model": self.model, "dtype": self.dtype,
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "tensor_parallel_size": int(tensor_parallel_size),
            "enforce_eager": bool(enforce_eager),
            **({"quantization": quantization} if quantization else {}),
            **({"max_model_len": int(max_model_len)} if max_model_len else {}),
            **dict(engine_args or {})}
        self.logprobs = bool(logprobs)
        self.load_seconds = None  # how long starting the engine took, once started
        self._llm = None

    @staticmethod
    def check(params):
        problem = sampling_problem(params)
        if problem:
            raise SettingError("backend 'vllm'", *problem)
        if importlib.util.find_spec("vllm") is None or not _cuda_available():
            raise ValueError(NEEDS)
        problem = model_source_problem(params.get("model", ""))
        if problem:
            raise ValueError(problem)
        if str(params.get("dtype", "auto")) not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, "
                             f"got {params.get('dtype')!r}")

    def output_settings(self):
        # logprobs as the openai backend files it: a record made without them has no
        # mean_logprob to replay.
        return {"dtype": self.dtype, **({"quantization": self.quantization}
                                        if self.quantization else {}),
                **({"logprobs": True} if self.logprobs else {})}

    # -- the engine ------------------------------------------------------------

    def engine(self):
        """The ``vllm.LLM``, started on first use."""
        if self._llm is None:
            from vllm import LLM  # the vllm extra: see _cuda_available

            started = time.perf_counter()
            self._llm = LLM(**self.engine_args)
            self.load_seconds = time.perf_counter() - started
        return self._llm

    def close(self):
        if self._llm is not None:
            llm, self._llm = self._llm, None
            # vLLM keeps the GPU memory until its engine process and distributed
            # state are torn down; the next test case may start another engine.
            shutdown = getattr(getattr(llm.llm_engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm
            gc.collect()
            try:
                from vllm.distributed import cleanup_dist_env_and_memory  # see above
            except ImportError:
                pass
            else:
                cleanup_dist_env_and_memory()
        super().close()

    def sampling_params(self):
        from vllm import SamplingParams  # the vllm extra: see _cuda_available
        from vllm.sampling_params import RequestOutputKind

        s = self.settings
        return SamplingParams(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
            repetition_penalty=s.repetition_penalty, seed=s.seed, stop=list(s.stop) or None,
            logprobs=0 if self.logprobs else None,  # 0: the sampled token's only
            output_kind=RequestOutputKind.DELTA)

    # -- requests ----------------------------------------------------------------

    def complete(self, messages):
        done = {}
        self.complete_batch([messages], done.__setitem__)
        return done[0]

    def complete_batch(self, messages_list, on_done):
        llm = self.engine()
        engine, tokenizer = llm.llm_engine, llm.get_tokenizer()
        params = self.sampling_params()
        max_len, refused = _max_model_len(llm, self.engine_args), _request_errors()
        in_flight, aliases = {}, {}
        try:
            for index, messages in enumerate(messages_list):
                ids = prompt_ids(tokenizer, messages)
                if max_len is not None and len(ids) > max_len:  # as vLLM would refuse it
                    on_done(index, Generation(prompt_tokens=len(ids), error=(
                        f"the prompt ({len(ids)} tokens) is longer than the model's "
                        f"context (max_model_len {max_len})")))
                    continue
                request_id = f"edgellm-{next(_REQUEST_IDS)}"
                request = _Request(index, time.perf_counter(), len(ids))
                try:
                    used = engine.add_request(request_id, _tokens_prompt(ids), params)
                except refused as err:  # this request only: the others go on
                    on_done(index, Generation(prompt_tokens=len(ids),
                                              error=f"{type(err).__name__}: {err}"))
                    continue
                in_flight[request_id] = request
                if isinstance(used, str):  # recent vLLM returns the id it really used
                    aliases[used] = request_id
            while in_flight:
                outputs = engine.step()
                now = time.perf_counter()
                for output in outputs:
                    request_id = aliases.get(output.request_id, output.request_id)
                    request = in_flight.get(request_id)
                    if request is None:
                        continue
                    completion = output.outputs[0]
                    request.times.extend([now - request.start] * len(completion.token_ids))
                    request.pieces.append(completion.text)
                    if completion.cumulative_logprob is not None:
                        request.cumulative_logprob = completion.cumulative_logprob
                    if output.finished:
                        del in_flight[request_id]
                        on_done(request.index, request.generation(now))
                if not outputs and not engine.has_unfinished_requests():
                    raise RuntimeError(f"vLLM finished without answering "
                                       f"{len(in_flight)} request(s)")
        finally:
            if in_flight:  # an error midway: leave no request running in the engine
                engine.abort_request(list(in_flight))
