"""The embedded default backend: a model profile, no weights, no network.

Outcomes are deterministic in (seed, model, item) and correlated across models
through a per-item difficulty (see profiles.yaml for the formulas), so the oracle
beats both models and a router that learns difficulty can beat a random one.
Answers are real strings: the gold option when correct, another option otherwise.
"""

import hashlib
import math
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache

import numpy as np
import yaml

from edgellm.models.response import estimate_tokens, make_response
from edgellm.tasks.multiple_choice import extract_choice, parse_options

PROFILES_PATH = os.path.join(os.path.dirname(__file__), "profiles.yaml")


@dataclass(frozen=True)
class ModelProfile:
    """What the simulated backend knows about a model; see profiles.yaml."""

    name: str
    tier: str
    accuracy: dict
    ttft_s: float
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    ref_prompt_tokens: int
    chars_per_token: float
    jitter: float
    network_rtt_s: float
    price_input_per_mtok: float
    price_output_per_mtok: float
    answer_template: str
    difficulty_scale: float
    subject_weight: float
    extra: dict = field(default_factory=dict)

    @property
    def ttft_overhead_s(self):
        return max(0.0, self.ttft_s - self.network_rtt_s
                   - self.ref_prompt_tokens / self.prefill_tokens_per_s)


@lru_cache(maxsize=None)
def _profile_table(path):
    with open(path, "rb") as handle:
        data = yaml.safe_load(handle)
    return data["defaults"], data["models"]


def load_profile(model, profiles_path=PROFILES_PATH, **overrides):
    """The profile of ``model``, with hyperparameter ``overrides`` applied."""
    defaults, models = _profile_table(profiles_path)
    if model not in models:
        raise ValueError(f"simulated backend has no profile for model {model!r} "
                         f"(known: {', '.join(models)}; add one to {profiles_path})")
    names = {f.name for f in fields(ModelProfile)}
    merged = {**defaults, **models[model], **overrides, "name": model}
    known = {k: v for k, v in merged.items() if k in names}
    known["extra"] = {k: v for k, v in merged.items() if k not in names}
    return ModelProfile(**known)


def hash64(text):
    """A stable 64-bit hash of a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def uniforms(keys, salt):
    """Deterministic U(0,1) per key: splitmix64 of (key xor salt), vectorised."""
    with np.errstate(over="ignore"):
        z = (keys ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _logit(u):
    return np.log(u) - np.log1p(-u)


# A fixed grid over the two difficulty components, for solving theta.
_GRID = (np.arange(256) + 0.5) / 256
_GRID_ITEM, _GRID_SUBJECT = (g.ravel() for g in np.meshgrid(_logit(_GRID), _logit(_GRID[::8])))


@lru_cache(maxsize=None)
def solve_ability(accuracy, scale, subject_weight):
    """theta such that E_b[sigmoid(theta - b)] = accuracy over the difficulty law."""
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"accuracy must be in (0, 1), got {accuracy}")
    b = scale * (math.sqrt(1 - subject_weight) * _GRID_ITEM
                 + math.sqrt(subject_weight) * _GRID_SUBJECT)
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(b - mid))) < accuracy:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def item_key(sample):
    """What identifies an item: its id when the processor gives one, else its text."""
    key = sample.get("id")
    return str(key) if key is not None else str(sample.get("query", ""))


class SimulatedLLM:
    """Answers from a profile on a modelled clock; ``generate_batch`` is vectorised."""

    simulated = True

    def __init__(self, model, tier=None, seed=0, node=None, profiles_path=None, **overrides):
        known = {f.name for f in fields(ModelProfile)}
        self.profile = load_profile(model, profiles_path or PROFILES_PATH,
                                    **{k: v for k, v in overrides.items() if k in known})
        self.model = model
        self.tier = tier or self.profile.tier
        self.node = node or self.tier
        self.seed = int(seed)
        self._salt = hash64(f"{self.seed}|{model}")

    def _ability(self, task_type):
        p = self.profile
        accuracy = p.accuracy.get(task_type, p.accuracy.get("multiple_choice"))
        return solve_ability(float(accuracy), p.difficulty_scale, p.subject_weight)

    def difficulty(self, samples):
        """Per-item difficulty b_i: depends on the item (and subject) only, not the model."""
        p = self.profile
        items = np.fromiter((hash64(item_key(s)) for s in samples), np.uint64, len(samples))
        subjects = np.fromiter((hash64(f"subject|{s.get('subject', '')}") for s in samples),
                               np.uint64, len(samples))
        b_item = _logit(uniforms(items, hash64("difficulty")))
        b_subject = _logit(uniforms(subjects, hash64("difficulty")))
        b = p.difficulty_scale * (math.sqrt(1 - p.subject_weight) * b_item
                                  + math.sqrt(p.subject_weight) * b_subject)
        return items, b

    def generate(self, sample):
        return self.generate_batch([sample])[0]

    def generate_batch(self, samples):
        if not samples:
            return []
        p = self.profile
        keys, b = self.difficulty(samples)
        types = [s.get("task_type", "multiple_choice") for s in samples]
        ability = {t: self._ability(t) for t in set(types)}
        abilities = np.fromiter((ability[t] for t in types), np.float64, len(types))
        correct = uniforms(keys, self._salt) < 1.0 / (1.0 + np.exp(b - abilities))
        wrong_pick = uniforms(keys, self._salt ^ 0x5A5A5A5A).tolist()
        j1 = np.exp(p.jitter * _unit_logistic(uniforms(keys, self._salt ^ 0x1111))).tolist()
        j2 = np.exp(p.jitter * _unit_logistic(uniforms(keys, self._salt ^ 0x2222))).tolist()

        rtt, overhead, prefill = p.network_rtt_s, p.ttft_overhead_s, p.prefill_tokens_per_s
        decode_gap = 1.0 / p.decode_tokens_per_s
        price_in, price_out = p.price_input_per_mtok / 1e6, p.price_output_per_mtok / 1e6
        cpt, template = p.chars_per_token, p.answer_template
        out = []
        for i, sample in enumerate(samples):
            query = sample.get("query", "")
            text = query if isinstance(query, str) else _messages_text(query)
            completion, prediction = self._answer(text, sample.get("gold"), bool(correct[i]),
                                                  wrong_pick[i], template)
            prompt_tokens = estimate_tokens(text, cpt)
            completion_tokens = max(1, estimate_tokens(completion, cpt))
            ttft = rtt + (overhead + prompt_tokens / prefill) * j1[i]
            itl = decode_gap * j2[i]
            out.append(make_response(
                completion, prediction, prompt_tokens, completion_tokens,
                ttft=ttft, itl=itl, e2e=ttft + (completion_tokens - 1) * itl,
                tier=self.tier, node=self.node, model=self.model, network_time=rtt,
                cost_usd=prompt_tokens * price_in + completion_tokens * price_out))
        return out

    @staticmethod
    def _answer(text, gold, correct, pick, template):
        """(completion, prediction): the chosen option written with the template."""
        options = parse_options(text)
        letters = "".join(options)
        gold_letter = extract_choice(str(gold), letters) if gold is not None and options else None
        if not options or gold_letter not in options:
            # Not a multiple-choice item we can answer from its options.
            completion = str(gold) if correct and gold is not None else "I am not sure."
            return completion, completion
        letter = gold_letter
        if not correct:
            others = [k for k in options if k != gold_letter]
            letter = others[min(int(pick * len(others)), len(others) - 1)]
        return template.format(letter=letter, option=options[letter]), letter


def _unit_logistic(u):
    """A unit-variance logistic variate: close enough to a normal for jitter."""
    return _logit(u) * (math.sqrt(3) / math.pi)


def _messages_text(messages):
    return "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m)
                     for m in messages)
