"""Token counts for servers that stream no usage (llama-cpp-python ignores
``stream_options.include_usage``): counted with the model's own tokenizer where the
backend can reach it, else estimated, and said so.

- ``tokenizer``: a local tokenizer folder (a Hugging Face ``save_pretrained`` folder):
  the prompt counted on the chat template the model applies, the completion as its text;
- the server's own tokenize endpoint: llama.cpp's ``POST /tokenize`` (with
  ``POST /apply-template`` for the chat template where the server has it) or
  llama-cpp-python's ``POST /extras/tokenize/count``; without a template endpoint the
  prompt is counted on the messages' text, which leaves out the template's own few
  tokens per message;
- neither: ``count`` returns None and the backend estimates (characters for the
  prompt, streamed chunks for the completion), marked ``usage_estimated``.
"""

import logging
import threading

import httpx

log = logging.getLogger(__name__)

SOURCES = ("server", "tokenizer", "tokenize-endpoint", "estimated")


class TokenCounter:
    def __init__(self, base_url=None, tokenizer=None, headers=None, timeout=10.0):
        self.tokenizer_path = tokenizer
        self.root = _root(base_url) if base_url else None
        self.headers = dict(headers or {})
        self.timeout = float(timeout)
        self._tokenizer = None
        self._endpoint = None      # "llama.cpp" | "llama-cpp-python" | False (none found)
        self._lock = threading.Lock()  # requests run in threads: one probe, one load

    @property
    def source(self):
        """What ``count`` counts with: "tokenizer", "tokenize-endpoint" or None."""
        if self.tokenizer_path:
            return "tokenizer"
        if self._probe():
            return "tokenize-endpoint"
        return None

    def count(self, messages, completion):
        """(prompt tokens, completion tokens) by the model's tokenizer, or None."""
        if self.tokenizer_path:
            tokenizer = self._local()
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                tokenize=True)
            if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
            return len(ids), len(tokenizer.encode(completion, add_special_tokens=False))
        kind = self._probe()
        if not kind:
            return None
        try:
            if kind == "llama.cpp":
                prompt = self._template(messages)
                return (self._llama_cpp(prompt, special=True),
                        self._llama_cpp(completion, special=False))
            return (self._llama_cpp_python(_text(messages)),
                    self._llama_cpp_python(completion))
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as err:
            log.warning("token counts of %s: its tokenize endpoint failed (%s); estimating",
                        self.root, type(err).__name__)
            self._endpoint = False
            return None

    # -- the server's endpoints ------------------------------------------------------

    def _probe(self):
        with self._lock:
            if self._endpoint is None:
                self._endpoint = self._find_endpoint()
        return self._endpoint

    def _find_endpoint(self):
        if self.root:
            for kind, path, body in (("llama.cpp", "/tokenize", {"content": "probe"}),
                                     ("llama-cpp-python", "/extras/tokenize/count",
                                      {"input": "probe"})):
                try:
                    response = httpx.post(self.root + path, json=body, headers=self.headers,
                                          timeout=self.timeout)
                except httpx.HTTPError:
                    return False  # the server is not there: the request itself will say so
                if response.status_code == 200:
                    return kind
        return False

    def _post(self, path, body):
        response = httpx.post(self.root + path, json=body, headers=self.headers,
                              timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def _template(self, messages):
        try:
            return self._post("/apply-template", {"messages": messages})["prompt"]
        except (httpx.HTTPError, KeyError, ValueError):
            return _text(messages)  # an older server: the messages' text alone

    def _llama_cpp(self, text, special):
        return len(self._post("/tokenize", {"content": text, "add_special": special})["tokens"])

    def _llama_cpp_python(self, text):
        return int(self._post("/extras/tokenize/count", {"input": text})["count"])

    def _local(self):
        with self._lock:
            return self._load_local()

    def _load_local(self):
        if self._tokenizer is None:
            # heavy (transformers, about a second to import): only with a tokenizer setting
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path,
                                                            local_files_only=True)
        return self._tokenizer


def _root(base_url):
    """The server's root: its OpenAI API lives under /v1, its tokenize routes beside it."""
    url = str(base_url).rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def _text(messages):
    return "\n".join(str(m.get("content") or "") for m in messages)
