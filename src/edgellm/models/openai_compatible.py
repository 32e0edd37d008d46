"""The ``openai`` backend: any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp,
Ollama, ...) through the official ``openai`` client.

Every request is streamed with ``stream_options.include_usage``, and the arrival
time of each content chunk is its token time (seconds since the request was sent);
the token counts come from the server's usage chunk, or, where a server sends none,
from counting chunks (the record then says ``usage_estimated: true``). A batch runs
``max_concurrency`` requests at once. 429s, 5xx, timeouts and dropped connections are
retried with exponential backoff and jitter, ``max_retries`` times; so is a stream
that is not whole (``IncompleteStream``: no finish_reason, a usage counting fewer
tokens than arrived, or no usage from a server that sent it before). A request that
still fails comes back as an error, which the record carries and the metrics count
instead of scoring it, and which is never stored. After ``max_connection_failures``
consecutive failures to connect, the endpoint is taken for dead: the backend raises
``EndpointDown`` and the test case fails, instead of retrying every request.

The API key is read from the environment variable named by ``api_key_env`` and only
ever handed to the client: it is not a hyperparameter, and error messages that
reach the records are scrubbed of it.
"""

import math
import os
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from edgellm.models.chat import ChatBackend, Generation
from edgellm.models.setting_kinds import (
    FLAG, NUMBER, TEXT, WHOLE, above, at_least, nullable)
from edgellm.models.tokens import estimate_tokens

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "none"  # api_key_env for local servers that need no key
PLACEHOLDER_KEY = "EMPTY"  # what the client sends then (vLLM's convention)
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _openai():
    """The openai package, imported when first needed (it is an optional extra)."""
    try:
        import openai
    except ImportError:
        raise ValueError("the openai backend needs the openai package: "
                         "pip install 'edgellm[openai]'") from None
    return openai


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed request and how long to wait first.

    The wait before retry k (0-based) is drawn from [cap/2, cap] with cap =
    min(backoff_max, backoff_base * 2**k): exponential, jittered so that clients
    rate-limited together do not retry together, and never shorter than half the
    cap. A server's Retry-After, when longer, wins (up to ``backoff_max``)."""

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    @staticmethod
    def retryable(error):
        if isinstance(error, IncompleteStream):
            return True
        if isinstance(error, _openai().APIConnectionError):  # timeouts included
            return True
        status = getattr(error, "status_code", None)
        return status is not None and (status in RETRY_STATUSES or status >= 500)

    def delay(self, retry, retry_after=None, rng=random):
        cap = min(self.backoff_max, self.backoff_base * 2.0 ** retry)
        wait = cap / 2 + rng.uniform(0, cap / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait


class IncompleteStream(Exception):
    """A stream that ended without being whole: no finish_reason (cut, though the
    connection closed cleanly), a usage counting fewer completion tokens than
    content chunks arrived, or no usage where the server sent it on earlier streams.
    Retried as a dropped connection is; never a result."""


class EndpointDown(RuntimeError):
    """The endpoint refused ``max_connection_failures`` connections in a row: the
    backend stops calling it and the test case fails with this one line."""


def _connection_failure(error):
    """The cause of an error that never reached the server (refused, unresolvable,
    connect timeout), else None. By class name along the cause chain: the openai
    client wraps its HTTP library's errors, and that library differs by version."""
    seen = error
    while seen is not None:
        if type(seen).__name__ in ("ConnectError", "ConnectTimeout"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class ConnectionBreaker:
    """Counts consecutive connection failures across a backend's threads; opens
    (and stays open) at ``limit`` of them (0: never). Anything that reached the
    server, an HTTP error included, resets the count."""

    def __init__(self, limit, endpoint):
        self.limit, self.endpoint = limit, endpoint
        self.failures, self.last = 0, None
        self._lock = threading.Lock()

    def record(self, error):
        cause = None if error is None else _connection_failure(error)
        with self._lock:
            if self.is_open:
                return
            if cause is None:
                self.failures = 0
            else:
                self.failures += 1
                self.last = cause

    @property
    def is_open(self):
        return bool(self.limit) and self.failures >= self.limit

    def check(self):
        if self.is_open:
            cause = str(self.last).strip().splitlines()
            raise EndpointDown(
                f"{self.endpoint}: {self.failures} consecutive connection failures "
                f"(last: {type(self.last).__name__}: {cause[0] if cause else ''}); "
                f"stopped calling it (max_connection_failures: {self.limit})")


def _endpoint(url):
    """The URL without credentials or query, for messages: a key never shows."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _retry_after(error):
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None  # absent, or an HTTP date: the backoff alone decides
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class OpenAICompatibleLLM(ChatBackend):
    """Hyperparameters, besides ``ChatBackend``'s:

    - ``base_url``: the server's API root, e.g. ``http://localhost:8000/v1`` (default:
      the client's, ``OPENAI_BASE_URL`` or api.openai.com);
    - ``api_key_env``: the environment variable holding the key (default
      ``OPENAI_API_KEY``); ``none`` for local servers that need no key;
    - ``max_concurrency``: requests in flight at once (default 8);
    - ``max_retries`` (default 4), ``backoff_base`` (default 0.5 s), ``backoff_max``
      (default 30 s): see ``RetryPolicy``;
    - ``timeout``: seconds to wait to connect and then for each chunk (default 60);
    - ``max_connection_failures``: consecutive failures to connect after which the
      endpoint counts as dead and the test case fails (default 5; 0: never);
    - ``logprobs``: ask for token log-probabilities and record their mean;
    - ``tokenizer``: a local tokenizer folder of the served model, to count tokens when
      the server streams no usage (else its tokenize endpoint, where it has one, else an
      estimate, marked: edgellm.models.token_counts).

    Concurrency, retries, timeout, the URL and the tokenizer do not change outputs, so
    they are not part of the response store's key; ``logprobs`` is, since it adds to
    the record.
    """

    backend_name = "openai"
    SETTING_KINDS = {"base_url": TEXT, "api_key_env": nullable(TEXT),
                     "max_concurrency": at_least(WHOLE, 1), "max_retries": at_least(WHOLE, 0),
                     "timeout": above(NUMBER, 0), "backoff_base": at_least(NUMBER, 0),
                     "backoff_max": at_least(NUMBER, 0), "logprobs": FLAG}

    def __init__(self, model, base_url=None, api_key_env=DEFAULT_KEY_ENV, max_concurrency=8,
                 max_retries=4, timeout=60.0, backoff_base=0.5, backoff_max=30.0,
                 max_connection_failures=5, logprobs=False, tokenizer=None, **params):
        settings = self._connection_settings(dict(
            model=model, base_url=base_url, api_key_env=api_key_env,
            max_concurrency=max_concurrency, max_retries=max_retries, timeout=timeout,
            backoff_base=backoff_base, backoff_max=backoff_max,
            max_connection_failures=max_connection_failures, logprobs=logprobs,
            tokenizer=tokenizer, **params))
        super().__init__(model, **params)
        openai = _openai()
        self.base_url = settings["base_url"]
        self.max_concurrency = settings["max_concurrency"]
        self.timeout = settings["timeout"]
        self.logprobs = settings["logprobs"]
        self.retry = RetryPolicy(settings["max_retries"], settings["backoff_base"],
                                 settings["backoff_max"])
        key = self._api_key(settings["api_key_env"], self.base_url)
        # The key lives in the client, and here only to scrub it from error messages.
        self._secret = None if settings["api_key_env"] == NO_KEY else key
        # TTFT counts from the moment the request goes out, not from the call: the
        # client's first call spends ~70 ms on lazy set-up. The hook runs in the
        # calling thread, just before sending, and marks the time per thread.
        self._sent = threading.local()
        http_client = openai.DefaultHttpxClient(event_hooks={"request": [self._mark_sent]})
        # The client's own retries are off: ours are counted and recorded per request.
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0,
                                     timeout=self.timeout, http_client=http_client)
        self._breaker = ConnectionBreaker(settings["max_connection_failures"],
                                          _endpoint(self._client.base_url))
        # Set once a stream of this backend carried usage: from then on a stream
        # without it was cut after its finish chunk (we always ask include_usage).
        self._usage_promised = False
        # httpx comes with openai: token_counts is imported with it, not with this
        # module, which the fleet and the Ianvs modules import for NO_KEY alone.
        from edgellm.models.token_counts import TokenCounter
        self._counter = TokenCounter(
            self._client.base_url, settings["tokenizer"],
            headers={"Authorization": f"Bearer {key}"} if self._secret else None)

    # -- checks before the run ---------------------------------------------------

    @classmethod
    def check(cls, params):
        """Raise ValueError, one line, when these hyperparameters cannot run: the
        openai package or the API key missing, a setting out of range."""
        _openai()
        settings = cls._connection_settings(params)
        cls._api_key(settings["api_key_env"], settings["base_url"])

    @staticmethod
    def _connection_settings(params):
        if "api_key" in params:
            raise ValueError("do not put the API key in a YAML file; put it "
                             "in an environment variable and name that in api_key_env")
        if not params.get("model"):
            raise ValueError("hyperparameter 'model' is required "
                             "(the model name the server serves)")

        def number(name, default, kind, low, inclusive=True):
            value = params.get(name, default)
            try:
                value = kind(value)
            except (TypeError, ValueError):
                value = None
            if value is None or not math.isfinite(value) or \
                    (value < low if inclusive else value <= low):
                bound = f">= {low}" if inclusive else f"> {low}"
                raise ValueError(f"{name} must be a number {bound}, "
                                 f"got {params.get(name)!r}")
            return value

        base_url = params.get("base_url")
        if base_url is not None and not str(base_url).startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, "
                             f"got {base_url!r}")
        key_env = params.get("api_key_env", DEFAULT_KEY_ENV)
        key_env = NO_KEY if key_env is None or str(key_env).strip().lower() in (NO_KEY, "") \
            else str(key_env)
        if key_env != NO_KEY and not _ENV_NAME.fullmatch(key_env):
            # never echo it: a value that is not a variable name may be the key itself
            raise ValueError("api_key_env must be the name of an environment "
                             "variable (such as OPENAI_API_KEY) or 'none', not the key")
        return {"base_url": None if base_url is None else str(base_url),
                "api_key_env": key_env,
                "max_concurrency": number("max_concurrency", 8, int, 1),
                "max_retries": number("max_retries", 4, int, 0),
                "timeout": number("timeout", 60.0, float, 0, inclusive=False),
                "backoff_base": number("backoff_base", 0.5, float, 0),
                "backoff_max": number("backoff_max", 30.0, float, 0),
                "max_connection_failures": number("max_connection_failures", 5, int, 0),
                "logprobs": _flag(params.get("logprobs", False)),
                "tokenizer": _tokenizer_folder(params.get("tokenizer"))}

    @staticmethod
    def _api_key(key_env, base_url):
        if key_env == NO_KEY:
            return PLACEHOLDER_KEY
        key = os.environ.get(key_env, "").strip()
        if not key:
            raise ValueError(
                f"environment variable {key_env} is not set; it must hold "
                f"the API key for {base_url or 'the OpenAI API'} (for a local server that "
                f"needs no key, set api_key_env: none)")
        return key

    # -- requests --------------------------------------------------------------------

    def output_settings(self):
        return {"logprobs": True} if self.logprobs else {}

    def complete(self, messages):
        """One request, retried as ``self.retry`` says; failures come back recorded.
        Raises ``EndpointDown`` once the endpoint counts as dead."""
        openai = _openai()
        retry = 0
        while True:
            self._breaker.check()
            try:
                generation = self._stream(messages)
            except (openai.OpenAIError, ValueError, IncompleteStream) as error:
                # ValueError: a reply that is not the API's format (bad JSON, fields)
                self._breaker.record(error)
                self._breaker.check()
                if retry < self.retry.max_retries and self.retry.retryable(error):
                    time.sleep(self.retry.delay(retry, _retry_after(error)))
                    retry += 1
                    continue
                return Generation(error=self._describe(error, retry + 1),
                                  details={"attempts": retry + 1})
            self._breaker.record(None)
            generation.details["attempts"] = retry + 1
            return generation

    def complete_batch(self, messages_list, on_done):
        """Up to ``max_concurrency`` requests in flight. ``on_done`` runs in the calling
        thread, one call at a time, as requests finish: the store's SQLite connection
        stays in the thread that opened it."""
        workers = min(self.max_concurrency, len(messages_list))
        if workers <= 1:
            return super().complete_batch(messages_list, on_done)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-request")
        finished = False
        # A thread whose chunk has arrived waits for the GIL up to the switch interval
        # (5 ms by default) while others parse theirs: that wait would count as latency
        # (it nearly doubled the TTFT error at concurrency 8). Hand over faster while
        # the requests run.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, 0.0005))
        try:
            futures = {pool.submit(self.complete, m): i for i, m in enumerate(messages_list)}
            for future in as_completed(futures):
                on_done(futures[future], future.result())
            finished = True
        finally:
            # on an error (or Ctrl-C) drop the queued requests and do not wait for the
            # ones in flight: their answers would be discarded anyway
            pool.shutdown(wait=finished, cancel_futures=True)
            sys.setswitchinterval(switch)

    def _request(self, messages):
        request = {"model": self.model, "messages": messages, "stream": True,
                   "stream_options": {"include_usage": True},
                   "temperature": self.settings.temperature, "top_p": self.settings.top_p,
                   "max_tokens": self.settings.max_tokens}
        if self.settings.seed is not None:
            request["seed"] = self.settings.seed
        if self.settings.stop:
            request["stop"] = list(self.settings.stop)
        if self.logprobs:
            request["logprobs"] = True
        if self.settings.repetition_penalty != 1.0:
            # not in OpenAI's API; vLLM and llama.cpp servers read it from the body
            request["extra_body"] = {"repetition_penalty": self.settings.repetition_penalty}
        return request

    def _stream(self, messages):
        request = self._request(messages)
        parts, times, logprobs, usage, finish = [], [], [], None, None
        self._sent.at = None
        called = time.perf_counter()
        with self._client.chat.completions.create(**request) as stream:
            sent = self._sent.at or called
            for chunk in stream:
                now = time.perf_counter() - sent
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices[:1]:
                    content = choice.delta.content if choice.delta is not None else None
                    if content:
                        parts.append(content)
                        times.append(now)
                    finish = choice.finish_reason or finish
                    tokens = getattr(choice.logprobs, "content", None) or ()
                    logprobs += [t.logprob for t in tokens if t.logprob is not None]
        ended = time.perf_counter() - sent
        self._check_whole(finish, usage, len(times))
        text = "".join(parts)
        source = "server"
        if usage is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
        else:  # a server that ignores include_usage: the model's tokenizer, or estimates
            counted = self._counter.count(messages, text)
            if counted is not None:
                (prompt_tokens, completion_tokens), source = counted, self._counter.source
            else:
                prompt_tokens = estimate_tokens("\n".join(str(m.get("content") or "")
                                                          for m in messages))
                completion_tokens, source = len(times), "estimated"
        return Generation(text=text, prompt_tokens=int(prompt_tokens or 0),
                          completion_tokens=int(completion_tokens or 0), token_times=times,
                          e2e=times[-1] if times else ended,
                          mean_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
                          details={"usage_estimated": source == "estimated",
                                   "usage_source": source, "finish_reason": finish})

    def _check_whole(self, finish, usage, chunks):
        """Raise ``IncompleteStream`` unless the stream was whole (see there)."""
        if finish is None:
            raise IncompleteStream(f"the stream ended without a finish_reason after "
                                   f"{chunks} content chunks")
        if usage is None:
            if self._usage_promised:
                raise IncompleteStream("the stream carried no usage, which this server sent "
                                       "on earlier streams (include_usage)")
            return
        self._usage_promised = True
        if (usage.completion_tokens or 0) < chunks:
            raise IncompleteStream(f"the usage counts {usage.completion_tokens} completion "
                                   f"tokens for {chunks} content chunks")

    def _mark_sent(self, request):
        self._sent.at = time.perf_counter()

    def _describe(self, error, attempts):
        message = str(getattr(error, "message", None) or error).strip().splitlines()
        text = f"{type(error).__name__}: {message[0] if message else ''}"
        if self._secret:
            text = text.replace(self._secret, "***")
        text = text[:500]
        return f"{text} (after {attempts} attempt{'s' if attempts > 1 else ''})"

    def close(self):
        super().close()
        self._client.close()


def _tokenizer_folder(value):
    if value in (None, "", "none"):
        return None
    if not os.path.isdir(os.fspath(value)):
        raise ValueError(f"tokenizer {value}: no such folder (a local tokenizer folder of "
                         f"the served model)")
    return os.fspath(value)


def _flag(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
