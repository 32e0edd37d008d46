"""A small OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

It speaks the parts of the API our ``openai`` backend uses, in the real wire format:
``POST /v1/chat/completions`` (streamed as server-sent events, with the final usage
chunk when ``stream_options.include_usage`` is set, or as one JSON body) and
``GET /v1/models``. Its timing is fixed, so measurements can be checked against it:
the first content token leaves ``first_token_delay`` seconds after the request
arrived and each next one ``token_delay`` later. Its answers are a pure function
of the messages (same messages, same tokens, in any order and at any concurrency);
a multiple-choice prompt is answered "The answer is X." with X one of its options.
Faults can be injected (``Fault``): HTTP errors (429 with Retry-After, 500, ...), a
hang before the headers, and, mid-stream, a stall, a dropped connection, malformed
JSON, a clean early end without finish_reason, a usage that undercounts or none;
for the first N requests, a seeded share of them, or those whose prompt contains
some text. Every request is logged, so tests can count attempts and their spacing.

From the command line, for manual use (Ctrl-C stops it)::

    python -m edgellm.testing.openai_server --port 8000 --token-delay 0.02
"""

import argparse
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass

from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from edgellm.tasks.multiple_choice import option_letters

_WORDS = ("alpha", "bravo", "delta", "echo", "golf", "hotel", "kilo", "lima", "mike",
          "oscar", "papa", "romeo", "sierra", "tango", "victor", "yankee")
_ERROR_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


# Faults of a streamed answer, after ``Fault.after`` content tokens went out:
STREAM_FAULTS = {
    "stall": "sends nothing more until hang_s passes, then ends",
    "reset": "drops the connection",
    "malformed": "sends an event that is not JSON",
    "early": "ends cleanly: no finish_reason, usage or [DONE]",
    "undercount": "finishes, with a usage of fewer completion tokens than it sent",
    "no_usage": "finishes without the usage chunk that include_usage asked for",
}
FAULT_KINDS = ("timeout", *STREAM_FAULTS)


@dataclass
class Fault:
    """What the server does instead of answering: an HTTP error ``kind`` (429, 500,
    503, ...), ``"timeout"`` (a hang before the headers: nothing until ``hang_s``
    passes, then a 504), or one of ``STREAM_FAULTS`` (streamed requests only). It
    hits ``times`` requests (None: any number) whose prompt contains ``match``
    (None: any), each with probability ``share`` (None: every one), drawn from a
    generator seeded with ``seed``."""

    kind: object
    times: int = 1
    match: str = None
    retry_after: float = None  # seconds, sent as a Retry-After header with an error
    message: str = None  # the error message (default: says it was injected)
    share: float = None
    seed: int = 0
    after: int = 2  # content tokens sent before a stream fault

    def __post_init__(self):
        if self.kind not in FAULT_KINDS and \
                not (isinstance(self.kind, int) and 400 <= self.kind <= 599):
            raise ValueError(f"a fault is an HTTP error status or one of "
                             f"{', '.join(FAULT_KINDS)}, not {self.kind!r}")
        if self.share is not None and not 0.0 <= self.share <= 1.0:
            raise ValueError(f"a fault's share must be between 0 and 1, not {self.share!r}")
        self._rng = random.Random(self.seed)

    def takes(self, prompt, stream):
        """Whether this fault hits a request (called once per request, under the
        server's lock); counts it down when it does."""
        if (self.times is not None and self.times <= 0) or \
                (self.match is not None and self.match not in prompt) or \
                (self.kind in STREAM_FAULTS and not stream):
            return False
        if self.share is not None and self._rng.random() >= self.share:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class RequestRecord:
    """One chat request as the server saw it (``arrived``: time.perf_counter())."""

    arrived: float
    prompt: str
    fault: object = None
    stream: bool = True


def prompt_text(messages):
    """The text of chat messages (string contents and text parts), one per line."""
    parts = []
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(parts)


class _QuietHandler(WSGIRequestHandler):
    def setup(self):
        super().setup()
        # Each SSE chunk is several small writes; without this, Nagle's algorithm and
        # delayed ACKs hold them back up to 40 ms and the timings mean nothing.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, *args, **kwargs):  # one line per request would drown test output
        pass


class LoopbackOpenAIServer:
    """The server (see the module docstring). Use as a context manager, or call
    ``start()`` and ``stop()``; ``base_url`` is what the OpenAI client needs.

    ``api_key``: when set, requests must carry it as a bearer token (401 otherwise).
    ``send_usage=False`` ignores ``include_usage``, like servers that never report it;
    ``tokenize_endpoint=True`` then answers llama-cpp-python's ``POST
    /extras/tokenize/count`` with its own count (whitespace-separated words, as its usage
    counts prompts; a completion's words are its chunks).
    """

    def __init__(self, first_token_delay=0.05, token_delay=0.01, completion_tokens=8,
                 host="127.0.0.1", port=0, api_key=None, send_usage=True, hang_s=30.0,
                 tokenize_endpoint=False,
                 models=("loopback",)):
        self.first_token_delay = float(first_token_delay)
        self.token_delay = float(token_delay)
        self.completion_tokens = int(completion_tokens)
        self.host, self.port = host, int(port)
        self.api_key = api_key
        self.send_usage = send_usage
        self.tokenize_endpoint = bool(tokenize_endpoint)
        self.hang_s = float(hang_s)
        self.models = list(models)
        self.requests = []  # RequestRecord per chat request, in arrival order
        self.max_in_flight = 0  # the most chat requests it was answering at once
        self._in_flight = 0
        self._faults = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = self._thread = None
        self.app = self._make_app()

    # -- lifecycle ---------------------------------------------------------------

    def start(self):
        self._stopping.clear()
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        # a short poll interval: stop() waits for the serving loop to notice
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="loopback-openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers that are sleeping or stalling
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}/v1"

    # -- faults and the request log ---------------------------------------------

    def inject(self, *faults):
        """Add faults; a request takes the first one that matches and has times left."""
        with self._lock:
            self._faults.extend(faults)

    def fail_first(self, n, kind=429, **options):
        self.inject(Fault(kind, times=n, **options))

    def clear(self):
        """Forget the faults, the request log and ``max_in_flight``."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.max_in_flight = 0

    @property
    def request_count(self):
        with self._lock:
            return len(self.requests)

    def _admit(self, prompt, stream):
        with self._lock:
            fault = next((f for f in self._faults if f.takes(prompt, stream)), None)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self.requests.append(RequestRecord(time.perf_counter(), prompt,
                                               fault.kind if fault else None, stream))
            return self.requests[-1], fault

    # -- answers -------------------------------------------------------------------

    def completion_for(self, messages, max_tokens=None):
        """(tokens, logprobs): the answer to ``messages``, a pure function of them.
        Joined, the tokens are the completion text; each is one streamed chunk."""
        text = prompt_text(messages)
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        n = self.completion_tokens if max_tokens is None else min(self.completion_tokens,
                                                                   int(max_tokens))
        letters = option_letters(text)
        tokens = ["The", " answer", " is", f" {rng.choice(letters)}."] if letters else []
        tokens += [f" {rng.choice(_WORDS)}" for _ in range(max(0, n - len(tokens)))]
        tokens = tokens[:n]
        if tokens and not letters:
            tokens[0] = tokens[0].lstrip()
        return tokens, [-round(rng.uniform(0.01, 2.0), 4) for _ in tokens]

    @staticmethod
    def prompt_tokens(messages):
        """The usage's prompt token count: whitespace-separated words."""
        return len(prompt_text(messages).split())

    # -- the HTTP side ------------------------------------------------------------

    def _make_app(self):
        app = Flask("edgellm-loopback-openai")

        @app.get("/v1/models")
        def models():
            return jsonify({"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "edgellm"}
                for m in self.models]})

        @app.post("/v1/chat/completions")
        def chat_completions():
            return self._chat(request.get_json(silent=True), request.headers)

        @app.post("/extras/tokenize/count")
        def tokenize_count():
            if not self.tokenize_endpoint:
                return _error(404, "Not Found", "not_found")
            body = request.get_json(silent=True) or {}
            return jsonify({"count": len(str(body.get("input", "")).split())})

        return app

    def _chat(self, body, headers):
        if self.api_key is not None and \
                headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is required and must be a list.", "invalid_request")
        stream = bool(body.get("stream"))
        record, fault = self._admit(prompt_text(body["messages"]), stream)
        try:
            if fault is not None and fault.kind not in STREAM_FAULTS:
                response = self._fault(fault)
            else:
                # the connection, for a fault that drops it mid-stream
                response = self._answer(record, body, fault,
                                        request.environ.get("werkzeug.socket"))
        except BaseException:
            self._leave()
            raise
        if not response.is_streamed:
            self._leave()  # a stream leaves when its last event is out
        return response

    def _leave(self):
        with self._lock:
            self._in_flight -= 1

    def _fault(self, fault):
        if fault.kind == "timeout":
            self._stopping.wait(self.hang_s)
            return _error(504, "The server stalled (injected timeout).", "timeout")
        response = _error(fault.kind, fault.message or f"Injected fault: HTTP {fault.kind}.",
                          "injected")
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response

    def _answer(self, record, body, fault=None, connection=None):
        messages = body["messages"]
        tokens, logprobs = self.completion_for(messages, body.get("max_tokens"))
        if not body.get("logprobs"):
            logprobs = None
        prompt_tokens = self.prompt_tokens(messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                 "total_tokens": prompt_tokens + len(tokens)}
        finish = "length" if body.get("max_tokens") is not None and \
            len(tokens) >= int(body["max_tokens"]) else "stop"
        base = {"id": f"chatcmpl-{id(record):x}", "created": int(time.time()),
                "model": str(body.get("model") or self.models[0]),
                "system_fingerprint": "edgellm-loopback"}
        if not record.stream:
            self._sleep_until(record.arrived + self.first_token_delay
                              + max(0, len(tokens) - 1) * self.token_delay)
            choice = {"index": 0, "message": {"role": "assistant", "content": "".join(tokens)},
                      "logprobs": _logprobs(tokens, logprobs) if logprobs else None,
                      "finish_reason": finish}
            return jsonify({**base, "object": "chat.completion", "choices": [choice],
                            "usage": usage})
        include_usage = self.send_usage and \
            bool((body.get("stream_options") or {}).get("include_usage"))
        return Response(self._events(record, base, tokens, logprobs, finish,
                                     usage if include_usage else None, fault, connection),
                        mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})

    def _events(self, record, base, tokens, logprobs, finish, usage, fault=None,
                connection=None):
        def chunk(delta, finish_reason=None, token_logprobs=None):
            choice = {"index": 0, "delta": delta, "logprobs": token_logprobs,
                      "finish_reason": finish_reason}
            data = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            if usage is not None:
                data["usage"] = None  # as OpenAI does: null on all but the last chunk
            return _event(data)

        try:
            yield chunk({"role": "assistant", "content": ""})  # at once, as OpenAI does
            kind = fault.kind if fault is not None else None
            breaks = kind in ("stall", "reset", "malformed", "early")
            for i, token in enumerate([*tokens, None]):
                if breaks and i == min(fault.after, len(tokens)):
                    yield from self._break_stream(kind, connection)
                    return
                if token is None:
                    break
                if not self._sleep_until(record.arrived + self.first_token_delay
                                         + i * self.token_delay):
                    return
                yield chunk({"content": token}, None,
                            _logprobs([token], logprobs[i:i + 1]) if logprobs else None)
            yield chunk({}, finish)
            if usage is not None and kind != "no_usage":
                if kind == "undercount":
                    usage = {**usage, "completion_tokens": max(0, len(tokens) - 1),
                             "total_tokens": usage["total_tokens"] - 1}
                yield _event({**base, "object": "chat.completion.chunk", "choices": [],
                              "usage": usage})
            yield "data: [DONE]\n\n"
        finally:
            self._leave()

    def _break_stream(self, kind, connection):
        """The events of a stream that breaks (``STREAM_FAULTS``); the caller ends it."""
        if kind == "malformed":
            yield "data: {not json\n\n"
        elif kind == "stall":
            self._stopping.wait(self.hang_s)
        elif kind == "reset" and connection is not None:
            # no lingering: the client sees the connection dropped mid-body; the
            # server's next write fails quietly (a dropped connection to werkzeug)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
            connection.shutdown(socket.SHUT_RDWR)
        # "early": nothing; ending the generator ends the body cleanly

    def _sleep_until(self, deadline):
        """Sleep until ``deadline`` (perf_counter time); False if the server stops."""
        delay = deadline - time.perf_counter()
        return not (delay > 0 and self._stopping.wait(delay))


def _event(data):
    return f"data: {json.dumps(data)}\n\n"


def _logprobs(tokens, logprobs):
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                         "top_logprobs": []} for t, lp in zip(tokens, logprobs)],
            "refusal": None}


def _error(status, message, code):
    response = jsonify({"error": {"message": message,
                                  "type": _ERROR_TYPES.get(status, "server_error"
                                                           if status >= 500
                                                           else "invalid_request_error"),
                                  "param": None, "code": code}})
    response.status_code = status
    return response


def _fault_kind(text):
    kind = text if text in FAULT_KINDS else None
    if kind is None:
        try:
            kind = int(text)
        except ValueError:
            kind = text
    try:
        return Fault(kind).kind
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m edgellm.testing.openai_server",
        description="A small OpenAI-compatible chat server with fixed timings and "
                    "deterministic answers, for trying the openai backend offline.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--first-token-delay", type=float, default=0.05, metavar="S")
    parser.add_argument("--token-delay", type=float, default=0.01, metavar="S")
    parser.add_argument("--completion-tokens", type=int, default=8, metavar="N")
    parser.add_argument("--model", action="append", dest="models",
                        help="a name /v1/models lists (repeatable); any name is served")
    parser.add_argument("--api-key-env", metavar="NAME",
                        help="require the key held by this environment variable")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer the first N requests with --fail-status")
    parser.add_argument("--fail-status", default=429, type=_fault_kind,
                        help=f"an HTTP error status or one of {', '.join(FAULT_KINDS)} "
                             "(default 429)")
    parser.add_argument("--fail-share", type=float, default=0.0, metavar="P",
                        help="answer a seeded share P of all requests with --fail-status")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_share <= 1.0:
        parser.error(f"--fail-share: expected a share between 0 and 1, got {args.fail_share}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"--api-key-env: environment variable {args.api_key_env} is not set")
    server = LoopbackOpenAIServer(args.first_token_delay, args.token_delay,
                                  args.completion_tokens, host=args.host, port=args.port,
                                  api_key=api_key, models=args.models or ("loopback",))
    if args.fail_first:
        server.fail_first(args.fail_first, args.fail_status)
    if args.fail_share:
        server.inject(Fault(args.fail_status, times=None, share=args.fail_share))
    with server:
        print(f"OpenAI-compatible server at {server.base_url} (Ctrl-C stops it)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
