"""The ``huggingface`` backend: a transformers causal LM run on this machine.

Each request is rendered with the model's chat template, generated greedily when
temperature is 0, and timed token by token: a streamer notes the arrival of every
generated token, so TTFT, each inter-token gap, TPOT and end-to-end latency are
measured, not estimated. Requests run one after another (per-request timing needs
it; batching them would give every request of a batch the batch's latency).

torch and transformers are imported when the model is first used, so the library
imports without them (``pip install 'edgellm[huggingface]'``).
"""

import importlib.util
import math
import os
import re
import time

from edgellm.models.chat import ChatBackend, Generation
from edgellm.models.setting_kinds import FLAG, TEXT

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = ("1", "true", "yes", "on")


def model_source_problem(model):
    """Why ``model`` cannot be loaded offline-safely, or None: a local folder must hold
    a config.json; a name that is no local path must look like a hub id ("org/name"),
    and be in the Hugging Face cache when HF_HUB_OFFLINE is set."""
    model = str(model)
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            return f"model folder {model} has no config.json"
        return None
    if not _HUB_ID.match(model):
        return f"model folder not found: {model}"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        try:  # optional (comes with transformers, the huggingface extra)
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            return (f"model folder not found: {model} (and not in the Hugging Face cache; "
                    f"HF_HUB_OFFLINE is set)")
    return None


def device_problem(device):
    device = str(device)
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        return f"device must be one of {', '.join(DEVICES)} or cuda:N, got {device!r}"
    return None


def _torch():
    # torch and transformers are the huggingface extra, and take seconds to import:
    # imported when a model is used, never on the start-up path
    import torch

    return torch


def _transformers():
    import transformers  # see _torch

    return transformers


class TokenClock:
    """A generate() streamer (transformers' BaseStreamer interface: put/end) that
    notes when each generated token reaches the host, in seconds since ``start``.

    generate() first puts the prompt ids, then each step's new token (batch of one);
    the put happens after the token was copied to the CPU, so on a GPU the time is
    when the token really exists, not when its kernel was queued."""

    def __init__(self, start):
        self.start = start
        self.times = []
        self._prompt_seen = False

    def put(self, value):
        now = time.perf_counter()
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.extend([now - self.start] * max(1, int(value.numel())))

    def end(self):
        pass


class HuggingFaceLLM(ChatBackend):
    """A transformers causal LM with its chat template.

    Hyperparameters (besides ChatBackend's): ``model`` a local model folder (or a hub
    id already in the cache), ``device`` auto | cpu | cuda | cuda:N (auto: CUDA when
    present; not part of the store key), ``dtype`` auto | float32 | float16 | bfloat16
    (auto: the checkpoint's dtype on a GPU, float32 on the CPU; the option is part
    of the store key), ``logprobs`` (default true: report the mean log-probability
    of the generated tokens, from the raw logits)."""

    backend_name = "huggingface"
    SETTING_KINDS = {"device": TEXT, "dtype": TEXT, "logprobs": FLAG}

    def __init__(self, model, device="auto", dtype="auto", logprobs=True, **params):
        super().__init__(model, **params)
        problem = device_problem(device)
        if problem:
            raise ValueError(problem)
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.device_option = str(device)
        self.dtype_option = str(dtype)
        self.logprobs = bool(logprobs)
        self.load_seconds = None  # how long loading took, once loaded
        self._model = self._tokenizer = None
        self._device = self._dtype = None

    @staticmethod
    def check(params):
        # find_spec, not import: importing torch takes seconds, this runs before the job
        if any(importlib.util.find_spec(name) is None for name in ("torch", "transformers")):
            raise ValueError("needs torch and transformers: pip install 'edgellm[huggingface]'")
        problem = model_source_problem(params.get("model", ""))
        problem = problem or device_problem(params.get("device", "auto"))
        if problem:
            raise ValueError(problem)
        device = str(params.get("device", "auto"))
        if device.startswith("cuda") and not _torch().cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        if str(params.get("dtype", "auto")) not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, "
                             f"got {params.get('dtype')!r}")

    # -- settings --------------------------------------------------------------

    @property
    def device(self):
        if self._device is None:
            auto = "cuda" if _torch().cuda.is_available() else "cpu"
            self._device = auto if self.device_option == "auto" else self.device_option
        return self._device

    @property
    def dtype(self):
        """The dtype the weights are loaded in: the one asked for, or for ``auto`` the
        checkpoint's on a GPU and float32 on the CPU (half precision is slow there)."""
        if self._dtype is None:
            if self.dtype_option != "auto":
                self._dtype = self.dtype_option
            elif self.device == "cpu":
                self._dtype = "float32"
            else:
                config = _transformers().AutoConfig.from_pretrained(self.model)
                stored = getattr(config, "dtype", None)
                self._dtype = str(stored or "float32").replace("torch.", "")
        return self._dtype

    def output_settings(self):
        # The dtype option as given, not as resolved: resolving needs the model folder
        # and the device, and a run replayed elsewhere (no GPU, no weights) has neither.
        # logprobs as the openai backend files it: a record made without them has no
        # mean_logprob to replay.
        return {"dtype": self.dtype_option, **({"logprobs": True} if self.logprobs else {})}

    # -- the model -------------------------------------------------------------

    def loaded(self):
        """(model, tokenizer), loading them on first use."""
        if self._model is None:
            transformers = _transformers()
            started = time.perf_counter()
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.model)
            if not tokenizer.chat_template:
                raise ValueError(f"model {self.model} has no chat template "
                                 f"(chat_template in its tokenizer files)")
            model = transformers.AutoModelForCausalLM.from_pretrained(
                self.model, dtype=getattr(_torch(), self.dtype)).to(self.device).eval()
            self._model, self._tokenizer = model, tokenizer
            self.load_seconds = time.perf_counter() - started
        return self._model, self._tokenizer

    def close(self):
        if self._model is not None:
            on_gpu = self.device.startswith("cuda")
            self._model = self._tokenizer = None
            if on_gpu:  # hand the memory back before the next test case loads its model
                _torch().cuda.empty_cache()
        super().close()

    # -- one request -----------------------------------------------------------

    def generation_config(self, model, tokenizer):
        """generate() settings from ours alone. generate() fills every field left None
        from the model's generation_config.json (top_k, min_p, repetition_penalty...),
        so each sampling field is set to our value or a neutral one: the store key then
        describes everything that shaped the output, as vLLM's SamplingParams do."""
        s = self.settings
        sampling = s.temperature > 0
        config = _transformers().GenerationConfig(
            do_sample=sampling, num_beams=1, num_return_sequences=1,
            # neutral values; when greedy, those generate() does not warn about
            temperature=s.temperature if sampling else 1.0, top_p=s.top_p if sampling else 1.0,
            top_k=0 if sampling else 50, min_p=0.0 if sampling else None, typical_p=1.0,
            epsilon_cutoff=0.0, eta_cutoff=0.0, no_repeat_ngram_size=0,
            repetition_penalty=s.repetition_penalty, max_new_tokens=s.max_tokens,
            stop_strings=list(s.stop) or None,
            return_dict_in_generate=True, output_logits=self.logprobs)
        if model.generation_config.pad_token_id is None:  # else generate() says so each call
            pad = tokenizer.pad_token_id
            config.pad_token_id = tokenizer.eos_token_id if pad is None else pad
        return config

    def complete(self, messages):
        torch = _torch()
        model, tokenizer = self.loaded()
        config = self.generation_config(model, tokenizer)
        # stop strings are matched on decoded text: generate() needs the tokenizer then
        extra = {"tokenizer": tokenizer} if self.settings.stop else {}
        start = time.perf_counter()  # the request is "sent": templating counts, as in vLLM
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if self.settings.temperature > 0 and self.settings.seed is not None:
            torch.manual_seed(self.settings.seed)
        clock = TokenClock(start)
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=config, streamer=clock,
                                    **extra)
        e2e = time.perf_counter() - start
        generated = output.sequences[0, prompt_tokens:]
        text = tokenizer.decode(generated, skip_special_tokens=True)
        return Generation(text=_cut_at_stop(text, self.settings.stop),
                          prompt_tokens=prompt_tokens, completion_tokens=int(generated.numel()),
                          token_times=clock.times, e2e=e2e,
                          mean_logprob=_mean_logprob(output.logits, generated)
                          if self.logprobs else None)


def _mean_logprob(logits, generated):
    """Mean log-probability of the generated tokens under the raw (unprocessed)
    logits, as vLLM reports logprobs; None when there is nothing to average."""
    if not logits or generated.numel() == 0:
        return None
    torch = _torch()
    steps = torch.cat([step[:1] for step in logits[:generated.numel()]]).float()
    chosen = torch.log_softmax(steps, dim=-1).gather(1, generated[:len(steps), None])
    value = float(chosen.mean())
    return value if math.isfinite(value) else None


def _cut_at_stop(text, stops):
    """The text before the first stop string (excluded, as vLLM and OpenAI do)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]
