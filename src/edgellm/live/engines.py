"""What answers on an edge node: the agent's engine.

An engine loads a model file (``load``: returns the seconds it took) and answers one
task (``answer``: the answer record, the measured seconds to the first token and to the
last, and the seconds of computing that stand outside the modelled time). Engines:

- ``simulated`` (the embedded default): answers from the model profiles (the
  simulated backend, with the catalog's quality) and takes the time the fleet's clock
  model says (prefill and decode at the catalog's speeds times the node's, loading at
  ``load_s_per_gb``), times ``time_scale``, so that a demo or a test runs fast;
- ``openai``: any OpenAI-compatible server on the node (llama.cpp, vLLM, Ollama),
  through the ``openai`` backend (it measures TTFT and every token);
- ``huggingface``: the ``huggingface`` backend in the agent's process, on the model
  folder the center sent (a ``.tar`` of the folder, unpacked on install);
- ``llama_cpp``: llama-cpp-python's OpenAI-compatible server run by the agent on the
  GGUF file the center sent (live/llama_cpp_engine.py), answering through ``openai``.
"""

import asyncio
import os
import tarfile
import time

from edgellm.live.warm_up import answer as answer_every_type
from edgellm.models import create_backend
from edgellm.models.simulated import SimulatedLLM
from edgellm.registry import Registry

ENGINES = ("simulated", "openai", "huggingface", "llama_cpp")
# engines whose code needs an optional extra: imported when a node runs one
_EXTRA_ENGINES = Registry("engine")
_EXTRA_ENGINES.register("llama_cpp", "edgellm.live.llama_cpp_engine:LlamaCppEngine")


async def sleep_at_least(seconds):
    """``asyncio.sleep`` that never ends early. uvloop's timers count from the loop's
    cached time, so on a busy loop a sleep of a millisecond can end at once (measured:
    0.07 ms for 0.9 ms asked); at a time scale of 0.05 the modelled times are that short."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(left)


class SimulatedEngine:
    """``zero_time``: answer at once (no modelled prefill, decode or load): what a
    dispatch benchmark measures is then the center's and the agent's own cost."""

    simulated = True

    def __init__(self, node, topology, time_scale=1.0, seed=0, zero_time=False):
        self.node, self.topology = node, topology
        self.time_scale, self.seed = float(time_scale), int(seed)
        self.zero_time = bool(zero_time)
        self._llms = {}
        self.warm = False              # True once a model has answered every task type
        self.serving = 0               # requests in service now (the agent's slots)

    async def load(self, model_id, path):
        # A model is ready once its answerer has answered every task type once: the
        # scorers' libraries (seqeval brings scikit-learn and SciPy: seconds of imports)
        # and its per-type state (4-6 ms a type) load then, not while a task waits (a
        # node that reported READY models while still importing answered its first
        # tasks seconds late; one warmed under other type names, milliseconds late).
        await asyncio.to_thread(answer_every_type, self._llm(model_id))
        self.warm = True  # answers are microseconds from now on: no thread for them
        model = self.topology.model(model_id)
        seconds = 0.0 if self.zero_time else \
            model.size_gb * model.load_s_per_gb / self.node.speed * self.time_scale
        await sleep_at_least(seconds)
        return seconds

    def unload(self, model_id):
        self._llms.pop(model_id, None)

    def close(self):
        self._llms.clear()

    def _llm(self, model_id):
        llm = self._llms.get(model_id)
        if llm is None:
            model = self.topology.model(model_id)
            llm = self._llms[model_id] = SimulatedLLM(model.profile, tier="edge",
                                                      node=self.node.id, seed=self.seed,
                                                      accuracy=model.quality)
        return llm

    async def answer(self, model_id, sample, prompt_tokens, waited_s=0.0):
        """(answer, ttft_s, e2e_s, compute_s): the times measured after the answer was
        made up (``compute_s``, real work the fleet's clock does not model).
        ``waited_s``: real seconds the task waited for a slot, in which its fixed cost
        (``overhead_s``) was paid, as the fleet's clock has it."""
        model = self.topology.model(model_id)
        made = time.monotonic()
        if self.warm:  # microseconds: not worth a thread
            answer = self._llm(model_id).generate_batch([sample])[0]
        else:  # off the event loop: heartbeats go on while a scorer's library loads
            answer = (await asyncio.to_thread(self._llm(model_id).generate_batch,
                                              [sample]))[0]
        compute = time.monotonic() - made
        tokens = answer["usage"]["completion_tokens"]
        speed, scale = self.node.speed, 0.0 if self.zero_time else self.time_scale
        # slowed as the fleet's clock slows it: by the requests served with this one
        slow = model.slowdown(self.serving + 1) if model.load_slowdown else 1.0
        paid = min(model.overhead_s / speed * scale, waited_s)
        prefill = max(0.0, model.prefill_s(prompt_tokens, speed) * scale * slow - paid)
        decode = (max(tokens, 1) - 1) * model.token_s(prompt_tokens, tokens, speed) * scale \
            * slow
        start = time.monotonic()
        self.serving += 1
        try:
            if prefill:
                await sleep_at_least(prefill)
            ttft = time.monotonic() - start
            if decode:
                await sleep_at_least(decode)
        finally:
            self.serving -= 1
        return _answer(answer), ttft, time.monotonic() - start, compute


class BackendEngine:
    """A real backend of edgellm.models (``openai`` or ``huggingface``) run in a thread:
    its own measurements (TTFT, end to end) are the engine's."""

    simulated = False

    def __init__(self, node, topology, backend, models_dir=None, **settings):
        self.node, self.topology = node, topology
        self.backend, self.models_dir, self.settings = backend, models_dir, settings
        self._llms = {}

    async def load(self, model_id, path):
        started = time.monotonic()
        model = self.topology.model(model_id)
        if self.backend == "huggingface":
            folder = _unpacked(path, os.path.join(self.models_dir, model_id))
            llm = create_backend("huggingface", model=folder, model_name=model_id,
                                 tier="edge", node=self.node.id, store="none", **self.settings)
            await asyncio.to_thread(llm.loaded)
        else:
            llm = create_backend("openai", model=model.endpoint_model or model.profile,
                                 tier="edge", node=self.node.id, store="none",
                                 **self.settings)
        self._llms[model_id] = llm
        return time.monotonic() - started

    def unload(self, model_id):
        llm = self._llms.pop(model_id, None)
        if llm is not None:
            llm.close()

    def close(self):
        for model_id in list(self._llms):
            self.unload(model_id)

    async def answer(self, model_id, sample, prompt_tokens, waited_s=0.0):
        response = await asyncio.to_thread(self._llms[model_id].generate, sample)
        perf = response["perf"]
        answer = _answer(response)
        if response.get("error"):
            answer["error"] = response["error"]
        return (answer, perf.get("time_to_first_token") or 0.0,
                perf.get("e2e_latency") or 0.0, 0.0)


def make_engine(name, node, topology, time_scale=1.0, seed=0, models_dir=None, **settings):
    if name == "simulated":
        return SimulatedEngine(node, topology, time_scale, seed, **settings)
    if name in ("openai", "huggingface"):
        return BackendEngine(node, topology, name, models_dir, **settings)
    if name in _EXTRA_ENGINES:
        return _EXTRA_ENGINES.get(name)(node, topology, models_dir, **settings)
    raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")


def _answer(response):
    """What the node sends back of an answer (the center adds tier, node and times)."""
    keep = ("completion", "prediction", "usage", "task_type", "mean_logprob")
    return {k: response[k] for k in keep if k in response}


def _unpacked(path, folder):
    """A model folder from a file the center sent: a ``.tar`` is unpacked (members
    that would land outside the folder are refused), a folder is used as it is."""
    if os.path.isdir(path):
        return path
    if not tarfile.is_tarfile(path):
        raise ValueError(f"{path}: the huggingface engine needs a .tar of a model folder")
    with tarfile.open(path) as archive:
        archive.extractall(folder, filter="data")
    return folder

