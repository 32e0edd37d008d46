"""``edgellm calibrate``: a node's figures for the fleet's clock, measured on its server.

Through the ``openai`` backend (which times the first token and every token after it)
against any OpenAI-compatible server:

- **prefill**: prompts of several lengths (taken in turn), two output tokens each; TTFT
  against the prompt's tokens and their square by least squares: the linear term is the
  prefill speed, the square attention's share (``prefill_s_per_token2``), the intercept
  the request's fixed cost before its prefill (``overhead_s``);
- **decode**: long answers from short and from long prompts; each request's
  (e2e - TTFT) / (tokens - 1) against its context: the speed with none, and the
  slowdown per token of context (``decode_s_per_context_token``);
- **concurrency**: k requests sent at once (k = 1, 2, 4 by default): each one's decode
  speed (its slowdown against one at a time: ``load_slowdown``) and the throughput of
  all (the speed-up the server allows); a server that gains nothing serves one request
  at a time (``slots: 1``, no ``load_slowdown``), one that gains serves ``slots`` at once;
- **load**: with the model's GGUF file, llama-cpp-python's server started on it a few
  times, from the spawn until it answers (the load time; live/llama_cpp_engine.py).

The result is written as a topology (fleet/topology.py reads it) with the spread of
every figure in a ``calibration:`` block the loader does not read.
"""

import itertools
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from edgellm.errors import ConfigError
from edgellm.live.llama_cpp_engine import LlamaServer, llama_cpp_available
from edgellm.models import create_backend
from edgellm.models.chat import timing_of

WORDS = ("the", "river", "station", "model", "answer", "green", "quickly", "seven", "north",
         "paper", "window", "under", "market", "silver", "garden", "question", "light",
         "table", "between", "winter", "number", "travel", "simple", "machine", "letter",
         "mountain", "across", "yellow", "careful", "dinner", "engine", "forest")


@dataclass
class Measurement:
    """One request: tokens, TTFT and e2e (seconds from sending), when it was sent."""

    prompt_tokens: int
    completion_tokens: int
    ttft: float
    e2e: float
    gaps: list
    sent: float

    @property
    def decode_tokens_per_s(self):
        if self.completion_tokens < 2 or self.e2e <= self.ttft:
            return None
        return (self.completion_tokens - 1) / (self.e2e - self.ttft)


def check_server(base_url, model, api_key=None, timeout_s=10.0):
    """Raise ``ConfigError`` (one line) unless ``base_url`` answers and serves ``model``."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers=headers,
                             timeout=timeout_s)
    except httpx.HTTPError as err:
        raise ConfigError(base_url, f"no server answers there ({type(err).__name__})") \
            from None
    if response.status_code != 200:
        raise ConfigError(base_url, f"GET /models answered HTTP {response.status_code}")
    try:
        served = [m["id"] for m in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(base_url, "GET /models is not an OpenAI model list") from None
    if model not in served:
        raise ConfigError("--model", f"unknown model {model!r} (the server serves: "
                                     f"{', '.join(served) or 'none'})")


class Prober:
    """Sends measured requests: ``one`` at a time or ``at_once``. Each prompt starts
    with its own number, so that no server reuses an earlier prompt's prefix cache."""

    def __init__(self, base_url, model, api_key_env="none", seed=0, tokenizer=None):
        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self.tokenizer = tokenizer  # the openai backend's setting
        self._backends = {}
        self._count = itertools.count()
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def _backend(self, max_tokens):
        with self._lock:
            if max_tokens not in self._backends:
                try:
                    self._backends[max_tokens] = create_backend(
                        "openai", model=self.model, base_url=self.base_url,
                        api_key_env=self.api_key_env, store="none", max_tokens=max_tokens,
                        temperature=0.0, max_retries=0, timeout=300,
                        tokenizer=self.tokenizer)
                except ValueError as err:  # the openai package or the key missing
                    raise ConfigError("edgellm calibrate", str(err)) from None
            return self._backends[max_tokens]

    def messages(self, words):
        with self._lock:
            text = " ".join(self._rng.choice(WORDS, size=max(1, words)))
            return [{"role": "user", "content": f"{next(self._count)} {text}"}]

    def send(self, messages, max_tokens):
        sent = time.perf_counter()
        generation = self._backend(max_tokens).complete(messages)
        if generation.error:
            raise ConfigError(self.base_url, f"a calibration request failed: "
                                             f"{generation.error}")
        ttft, gaps, _, e2e = timing_of(generation)
        return Measurement(generation.prompt_tokens, generation.completion_tokens, ttft,
                           e2e, gaps, sent)

    def one(self, words, max_tokens):
        return self.send(self.messages(words), max_tokens)

    def at_once(self, k, words, max_tokens):
        """``k`` requests started together (threads); their measurements."""
        prompts = [self.messages(words) for _ in range(k)]
        results = [None] * k
        errors = []
        start = threading.Barrier(k)

        def run(i):
            start.wait()
            try:
                results[i] = self.send(prompts[i], max_tokens)
            except ConfigError as err:
                errors.append(err)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(k)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results

    def close(self):
        for backend in self._backends.values():
            backend.close()


@dataclass
class Calibration:
    """What was measured, and the clock's figures drawn from it."""

    base_url: str
    model: str
    prefill: list = field(default_factory=list)        # Measurements, 2 output tokens
    decode: list = field(default_factory=list)         # Measurements, long answers
    decode_long: list = field(default_factory=list)    # the same after long prompts
    concurrency: dict = field(default_factory=dict)    # k -> list of Measurements
    load_s: list = field(default_factory=list)         # seconds, one per server start
    size_gb: float = None

    def prefill_fit(self):
        """(seconds per prompt token, overhead seconds, the per-token term's standard
        error, seconds per squared prompt token): TTFT against the prompt's tokens by
        least squares on relative errors (a short prompt counts as much as a long one),
        no term below zero. The squared term is attention's: llama.cpp's prefill of the
        tiny model takes 1.7 times longer per token at 1,500 tokens than at 30, and a
        line through both put the workload's prompts 35 % too slow (docs/llama-cpp.md)."""
        x = np.array([m.prompt_tokens for m in self.prefill], dtype=float)
        y = np.array([m.ttft for m in self.prefill], dtype=float)
        design = np.column_stack([np.ones_like(x), x, x ** 2])
        (overhead, slope, square), spread = _nonnegative_fit(design, y, 1.0 / np.maximum(y,
                                                                                     1e-6))
        # a prefill too fast to tell from the noise: a tiny positive slope (10M tokens/s)
        return max(float(slope), 1e-7), float(overhead), float(spread[1]), float(square)

    def decode_fit(self):
        """(tokens per second with no context, extra seconds per token per token of
        context): each long answer's time per token after the first against its mean
        context (prompt + tokens / 2), from short and long prompts."""
        rows = [(m.prompt_tokens + m.completion_tokens / 2, 1.0 / m.decode_tokens_per_s)
                for m in self.decode + self.decode_long if m.decode_tokens_per_s]
        x, y = np.array(rows, dtype=float).T
        if len(set(x.round())) < 2:  # one context length: no slope to tell
            return float(1.0 / np.median(y)), 0.0
        (base, per_context), _ = _nonnegative_fit(np.column_stack([np.ones_like(x), x]), y)
        return float(1.0 / max(base, 1e-9)), float(per_context)

    def decode_speeds(self, measurements=None):
        speeds = [m.decode_tokens_per_s for m in
                  (self.decode if measurements is None else measurements)]
        return [s for s in speeds if s]

    def throughput(self, k):
        """Completion tokens per second of k requests sent at once: the median over
        rounds (one slow round on a busy machine does not decide it)."""
        return statistics.median(
            sum(m.completion_tokens for m in batch) /
            (max(m.sent + m.e2e for m in batch) - min(m.sent for m in batch))
            for batch in self.concurrency[k])

    def speedup(self, k):
        return self.throughput(k) / self.throughput(min(self.concurrency))

    def slowdown(self, k):
        """Decode speed one at a time over the decode speed of each of k at once."""
        one = statistics.median(self.decode_speeds(_flat(self.concurrency[min(
            self.concurrency)])))
        return one / statistics.median(self.decode_speeds(_flat(self.concurrency[k])))

    def load_slowdown(self):
        """{k: the factor on each request's service time with k served at once}: a
        batching server's decode slowdown. A server serving one at a time (slots 1) has
        none: a request waiting for its turn costs it nothing (measured on llama.cpp's
        server: service times alike with 0 and with 4 waiting; docs/llama-cpp.md)."""
        if self.slots() == 1:
            return {}
        return {k: _finite(self.slowdown(k), 3) for k in sorted(self.concurrency) if k > 1}

    def slots(self):
        """1 for a server that gains nothing from concurrency (a 25 % margin: the
        machine's noise); else the concurrency with the best throughput."""
        levels = sorted(self.concurrency)
        if len(levels) < 2 or self.speedup(levels[-1]) < 1.25:
            return 1
        return max(levels, key=self.throughput)


def _flat(rounds):
    return [m for batch in rounds for m in batch]


def _nonnegative_fit(design, y, weights=None):
    """Least squares with every coefficient >= 0 (scipy's nnls), rows weighted by
    ``weights``; (coefficients, their standard errors)."""
    from scipy.optimize import nnls

    w = np.ones_like(y) if weights is None else weights
    a, b = design * w[:, None], y * w
    coefficients, _ = nnls(a, b)
    dof = max(1, len(y) - design.shape[1])
    sigma2 = float(np.sum((b - a @ coefficients) ** 2)) / dof
    covariance = np.linalg.pinv(a.T @ a) * sigma2
    return coefficients, np.sqrt(np.maximum(np.diag(covariance), 0.0))


def measure(base_url, model, requests=3, concurrency=(1, 2, 4), prompt_words=(8, 32, 96,
            192, 384), decode_tokens=64, api_key_env="none", model_file=None, load_runs=3,
            progress=None, seed=0):
    """Run the measurements (module docstring); ``requests`` per point."""
    say = progress or (lambda text: None)
    prober = Prober(base_url, model, api_key_env, seed)
    calibration = Calibration(base_url, model)
    try:
        for _ in range(2):  # warm-up: first requests pay for lazy set-up on both sides
            prober.one(8, 4)
        say("prefill")
        sizes = sorted(prompt_words)
        for _ in range(requests):  # sizes taken in turn, as the concurrency levels are
            for n, words in enumerate(sizes):
                try:
                    calibration.prefill.append(prober.one(words, 2))
                except ConfigError as err:
                    if n < 2:
                        raise
                    # longer than the server's context, most likely: the shorter ones do
                    say(f"prompts of {words} words failed, longer ones not tried: {err}")
                    sizes = sizes[:n]
                    break
        longest = sizes[-1]
        say("decode")
        calibration.decode = [prober.one(8, decode_tokens) for _ in range(requests)]
        # and after a long prompt: decoding slows as the context grows (attention)
        calibration.decode_long = [prober.one(max(8, longest // 2), decode_tokens)
                                   for _ in range(requests)]
        levels = sorted(set(concurrency))
        say(f"concurrency {', '.join(map(str, levels))}")
        calibration.concurrency = {k: [] for k in levels}
        for _ in range(requests):  # levels taken in turn: a machine's load drifting
            for k in levels:       # over the minutes moves all of them alike
                calibration.concurrency[k].append(prober.at_once(k, 8, decode_tokens // 2))
    finally:
        prober.close()
    if model_file:
        say("load")
        calibration.size_gb = os.path.getsize(model_file) / 1e9
        calibration.load_s = measure_load(model_file, model, load_runs)
    return calibration


def measure_load(model_file, alias, runs=3):
    """Seconds from spawning llama-cpp-python's server on ``model_file`` to its first
    answer, ``runs`` times."""
    problem = llama_cpp_available()
    if problem:
        raise ConfigError("--model-file", f"timing a load needs llama-cpp-python's server: "
                                          f"{problem}")
    if not os.path.isfile(model_file):
        raise ConfigError("--model-file", f"no such file: {model_file}")
    seconds = []
    for _ in range(runs):
        server = LlamaServer(model_file, alias).start()
        try:
            seconds.append(server.wait_ready())
        finally:
            server.stop()
    return seconds


def spread(values, digits=4):
    """median, p5-p95 and stdev of ``values``, for the calibration block."""
    values = [float(v) for v in values]
    if not values:
        return {}
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {"median": round(float(p50), digits), "p5": round(float(p5), digits),
            "p95": round(float(p95), digits),
            "stdev": round(statistics.stdev(values), digits) if len(values) > 1 else 0.0,
            "n": len(values)}


def _finite(value, digits=4):
    return round(float(value), digits) if value is not None and math.isfinite(value) else None


def topology_for(calibration, node_id, profile, memory_gb, quantization="gguf"):
    """The calibrated node and model as a topology (a mapping ``load_topology`` reads,
    once ``sizes_gb`` and ``load_s_per_gb`` are known), with a ``calibration`` block of
    spreads the loader does not read. The node is the reference device (speed 1)."""
    slope, overhead, slope_se, square = calibration.prefill_fit()
    decode = calibration.decode_speeds()
    decode_base, per_context = calibration.decode_fit()
    model = {"id": calibration.model, "profile": profile,
             "sizes_gb": {quantization: _finite(calibration.size_gb, 9)},
             "quantization": quantization,
             "load_s_per_gb": _finite(statistics.mean(calibration.load_s) /
                                      calibration.size_gb, 3) if calibration.load_s else None,
             "prefill_tokens_per_s": _finite(1.0 / slope, 1),
             "decode_tokens_per_s": _finite(decode_base, 2),
             "overhead_s": _finite(max(0.0, overhead), 4),
             "prefill_s_per_token2": float(f"{square:.4g}"),
             "decode_s_per_context_token": float(f"{per_context:.4g}"),
             "load_slowdown": calibration.load_slowdown(),
             "endpoint_model": calibration.model}
    node = {"id": node_id, "memory_gb": round(float(memory_gb), 2), "speed": 1.0,
            "slots": calibration.slots(), "link": {"bandwidth_mbps": 1000, "rtt_ms": 0},
            "models": [calibration.model]}
    levels = sorted(calibration.concurrency)
    block = {
        "base_url": calibration.base_url, "model": calibration.model,
        "prefill_tokens_per_s": {
            "fit": _finite(1.0 / slope, 1),
            "range_2se": [_finite(1.0 / (slope + 2 * slope_se), 1),
                          _finite(1.0 / (slope - 2 * slope_se), 1) if slope > 2 * slope_se
                          else None],
            "overhead_s": _finite(overhead), "requests": len(calibration.prefill),
            "prompt_tokens": sorted({m.prompt_tokens for m in calibration.prefill})},
        "decode_tokens_per_s": spread(decode, 2),
        "decode_tokens_per_s_after_long_prompt": dict(
            spread(calibration.decode_speeds(calibration.decode_long), 2),
            prompt_tokens=sorted({m.prompt_tokens for m in calibration.decode_long})),
        "inter_token_gap_s": spread([g for m in calibration.decode for g in m.gaps], 5),
        "concurrency": {k: {"throughput_tokens_per_s": _finite(calibration.throughput(k), 2),
                            "speedup": _finite(calibration.speedup(k), 3),
                            "decode_slowdown": _finite(calibration.slowdown(k), 3),
                            "ttft_s": spread([m.ttft for m in _flat(calibration.concurrency[k])])}
                        for k in levels},
        "load_s": spread(calibration.load_s, 3)}
    return {"name": f"calibrated-{node_id}",
            "reference_device": f"{node_id}, measured by edgellm calibrate",
            "nodes": [node], "models": [model],
            "cloud": {"profile": "gpt-4o-mini", "rtt_ms": 250},
            "calibration": block}


def topology_text(topology, calibration):
    """The topology as YAML, with a header saying what was and was not measured."""
    import yaml

    header = [f"# edgellm calibrate: {calibration.base_url}, model {calibration.model}, "
              f"{time.strftime('%Y-%m-%d %H:%M')}",
              "# speeds on this node (the reference device, speed 1); the link and the "
              "cloud are not measured: set them",
              "# calibration: the spread of each figure (the topology loader does not "
              "read it)"]
    if not calibration.load_s:
        header.append("# sizes_gb and load_s_per_gb: not measured (no --model-file): "
                      "fill them in before use")
    return "\n".join(header) + "\n" + yaml.safe_dump(topology, sort_keys=False,
                                                     allow_unicode=True)
