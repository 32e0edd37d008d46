"""What the real backends share: the chat messages a sample becomes, the settings
that change outputs, the measured timings of one request, and the response store.

A backend subclasses ``ChatBackend`` and implements ``complete(messages)`` (one
request, measured) and, where it can do better than one at a time,
``complete_batch(messages_list, on_done)`` (vLLM batches, API concurrency). The base
turns what was measured into the response record, looks responses up in the store
and writes each new one there as it arrives.
"""

import math
from dataclasses import asdict, dataclass, field

from edgellm.context import STORE_MODES, current_context
from edgellm.models.pricing import price_for
from edgellm.models.setting_kinds import (
    NUMBER, TEXT, TEXTS, WHOLE, above, at_least, at_most)
from edgellm.models.store import open_store
from edgellm.records import make_response, token_gap
from edgellm.tasks.extraction import extract_prediction
from edgellm.tasks.registry import prompt_for



@dataclass(frozen=True)
class SamplingSettings:
    """The settings that change outputs: part of the response store's key.
    Settings that do not (concurrency, batch size, device) are not here."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    repetition_penalty: float = 1.0
    seed: int = None
    stop: tuple = ()

    def as_dict(self):
        return {**asdict(self), "stop": list(self.stop)}


@dataclass
class Generation:
    """One request as the backend measured it. Times are seconds since the request
    was sent; ``token_times`` holds the arrival time of each output token (or of each
    streamed chunk, for APIs that stream several tokens per chunk)."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_times: list = field(default_factory=list)
    e2e: float = None
    error: str = None
    mean_logprob: float = None  # mean token log-probability, where the backend reports it
    # Backend-specific facts the response record carries as extra keys (an API
    # backend's attempts, or that it counted tokens itself); core keys win.
    details: dict = field(default_factory=dict)


def messages_for(sample, system_prompt=None):
    """The chat messages for a sample: its task type's prompt as one user message
    (chat-message queries are sent as they are), after an optional system prompt."""
    prompt = prompt_for(sample)
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def timing_of(generation):
    """(ttft, itl list, tpot, e2e) as vLLM's serving benchmark defines them: TTFT is
    the first token's arrival, ITL the gaps between arrivals, TPOT =
    (e2e - ttft) / (output tokens - 1), e2e the last token's arrival. A request with
    fewer than two output tokens has no TPOT (None): vLLM leaves it out, and a 0 would
    pull the mean gap down and Ianvs' Throughput (1 / mean gap) up without end."""
    times = generation.token_times
    e2e = generation.e2e if generation.e2e is not None else (times[-1] if times else None)
    if not times:
        return e2e, [], None, e2e
    ttft = times[0]
    gaps = [b - a for a, b in zip(times, times[1:])]
    n = generation.completion_tokens or len(times)
    tpot = (e2e - ttft) / (n - 1) if n > 1 and e2e is not None else None
    return ttft, gaps, tpot, e2e


class ChatBackend:
    """Base of the backends that run a real model (see the module docstring).

    Hyperparameters: ``model`` (what to load or call), ``model_name`` (its identity in
    the store; default ``model``, set it when the same weights sit at another path),
    the sampling settings, ``system_prompt``, ``store`` (a path; default
    ``<workspace>/responses.sqlite``, ``none`` to turn it off), ``store_mode``
    (record | replay | auto; default the run's, ``edgellm run --store-mode``, else auto), prices (``input_per_mtok``,
    ``output_per_mtok``, ``cost_per_hour``; default from prices.yaml)."""

    simulated = False
    backend_name = "chat"
    SETTING_KINDS = {  # checked before the first test case (edgellm.models.setting_kinds)
        "model": TEXT, "tier": TEXT, "node": TEXT, "model_name": TEXT, "system_prompt": TEXT,
        "temperature": at_least(NUMBER, 0), "top_p": at_most(above(NUMBER, 0), 1),
        "max_tokens": at_least(WHOLE, 1), "repetition_penalty": above(NUMBER, 0),
        "seed": WHOLE, "stop": TEXTS, "store": TEXT, "store_mode": TEXT,
        "input_per_mtok": at_least(NUMBER, 0), "output_per_mtok": at_least(NUMBER, 0),
        "cost_per_hour": at_least(NUMBER, 0)}

    def __init__(self, model, tier="edge", node=None, model_name=None, system_prompt=None,
                 temperature=0.0, top_p=1.0, max_tokens=256, repetition_penalty=1.0,
                 seed=None, stop=None, store=None, store_mode=None, input_per_mtok=None,
                 output_per_mtok=None, cost_per_hour=None):
        self.model = str(model)
        self.tier = tier
        self.node = node or tier
        self.identity = str(model_name or model)
        self.system_prompt = system_prompt
        stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
        self.settings = SamplingSettings(float(temperature), float(top_p), int(max_tokens),
                                         float(repetition_penalty),
                                         None if seed is None else int(seed), stop)
        self.price = price_for(self.identity, input_per_mtok=input_per_mtok,
                               output_per_mtok=output_per_mtok, cost_per_hour=cost_per_hour)
        self.store_mode = store_mode or current_context().store_mode or "auto"
        if self.store_mode not in STORE_MODES:
            raise ValueError(f"store_mode must be one of {', '.join(STORE_MODES)}, "
                             f"got {self.store_mode!r}")
        self.store_path = store
        self._store = None

    # -- what subclasses implement --------------------------------------------

    def output_settings(self):
        """Backend options that change outputs, added to the store key (e.g. a dtype)."""
        return {}

    def complete(self, messages):
        """Send one request; return its ``Generation``. Failures that should be
        recorded (after retries) come back as ``Generation(error=...)``."""
        raise NotImplementedError

    def complete_batch(self, messages_list, on_done):
        """Run many requests; call ``on_done(index, generation)`` as each finishes."""
        for i, messages in enumerate(messages_list):
            on_done(i, self.complete(messages))

    def close(self):
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- the response store ----------------------------------------------------

    def store_settings(self):
        return {**self.settings.as_dict(), **self.output_settings()}

    @property
    def store(self):
        # no `store` hyperparameter (None) means the default store; "none" turns it off
        if self._store is None and str(self.store_path or "").lower() != "none":
            self._store = open_store(self.store_path)
        return self._store

    # -- what the runner calls ---------------------------------------------------

    def generate(self, sample):
        return self.generate_batch([sample])[0]

    def generate_batch(self, samples):
        samples = list(samples)
        messages = [messages_for(s, self.system_prompt) for s in samples]
        responses = [None] * len(samples)
        store, settings = self.store, self.store_settings()
        missing = list(range(len(samples)))
        if store is not None and self.store_mode != "record":
            found = store.lookup(self.identity, settings, messages, samples)
            for i, record in enumerate(found):
                if record is not None:
                    responses[i] = self._replayed(samples[i], record)
            missing = [i for i, r in enumerate(responses) if r is None]
            if missing:
                store.warn_other_settings(self.identity, settings,
                                          [messages[i] for i in missing])
            if missing and self.store_mode == "replay":
                raise store.replay_miss(self.identity, settings,
                                        [messages[i] for i in missing])

        def on_done(j, generation):
            i = missing[j]
            response = self._response(samples[i], generation)
            if store is not None and not response["error"]:
                store.save(self.identity, settings, messages[i], response)
            responses[i] = response

        if missing:
            self.complete_batch([messages[i] for i in missing], on_done)
        return responses

    def _response(self, sample, generation):
        ttft, gaps, tpot, e2e = timing_of(generation)
        error = generation.error
        text = generation.text or ""
        response = make_response(
            text, None if error else extract_prediction(sample, text),
            int(generation.prompt_tokens or 0), int(generation.completion_tokens or 0),
            ttft=ttft, itl=tpot, e2e=e2e, tier=self.tier, node=self.node,
            model=self.identity, error=error,
            cost_usd=0.0 if error else self.price.cost(generation.prompt_tokens or 0,
                                                       generation.completion_tokens or 0, e2e),
            task_type=sample.get("task_type") or "multiple_choice")
        response["perf"]["itl"] = gaps
        response["perf"]["tpot"] = tpot
        if generation.mean_logprob is not None and math.isfinite(generation.mean_logprob):
            response["mean_logprob"] = generation.mean_logprob
        for key, value in generation.details.items():
            response.setdefault(key, value)
        return response

    def _replayed(self, sample, record):
        """A stored record as this run's response: its completion, token counts and
        original timings; the cost from today's prices (or the one an outcome matrix
        recorded), ``replayed: true``. ``record`` is the store's fresh copy, filled in.

        The stored prediction was extracted from the same completion for the same
        prompt (the key holds the messages), so it is kept; it is extracted again
        only for another task type or where none was stored. Extraction is most of
        a replay's cost (the issue asks for 50,000 responses/s)."""
        task_type = sample.get("task_type") or "multiple_choice"
        completion = record.get("completion")
        if completion is not None and (record.get("prediction") is None
                                       or record.get("task_type") != task_type):
            record["prediction"] = extract_prediction(sample, completion)
        usage = record.get("usage") or {}
        perf = record.get("perf") or {}
        cost = record.get("cost_usd") if record.get("cost_recorded") else \
            self.price.cost(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                            perf.get("e2e_latency"))
        if perf and token_gap(1.0, usage.get("completion_tokens")) is None:
            # recorded before a one-token answer's TPOT was None (it was stored as 0)
            perf.update(internal_token_latency=None, throughput=None, tpot=None)
        record.update(tier=self.tier, node=self.node, model=self.identity, replayed=True,
                      error=None, task_type=task_type, usage=usage, perf=perf, cost_usd=cost)
        return record
