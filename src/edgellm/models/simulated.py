"""The embedded default backend: a model profile, no weights, no network.

Outcomes are deterministic in (seed, model, item) and correlated across models
through a per-item difficulty (see profiles.yaml for the formulas), so the oracle
beats both models and a router that learns difficulty can beat a random one.
Answers are real strings: the gold option when correct, another option otherwise.
"""

import hashlib
import math
import os
import random
import re
from dataclasses import dataclass, field, fields
from functools import lru_cache

import numpy as np

from edgellm.errors import ConfigError
from edgellm.models.pricing import price_for
from edgellm.models.setting_kinds import MAPPING, NUMBER, TEXT, WHOLE, at_least
from edgellm.models.tokens import estimate_tokens
from edgellm.records import make_response
from edgellm.registry import SettingError, check_settings
from edgellm.tasks.extraction import extract_prediction
from edgellm.tasks.multiple_choice import extract_choice, option_letters, parse_options
from edgellm.tasks.references import parse_reference
from edgellm.tasks.registry import get_task_type, messages_text
from edgellm.yaml_file import load_yaml

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
    answer_template: str
    difficulty_scale: float
    subject_weight: float
    rewrite_good: float
    rewrite_poor: float
    extra: dict = field(default_factory=dict)

    @property
    def ttft_overhead_s(self):
        return max(0.0, self.ttft_s - self.network_rtt_s
                   - self.ref_prompt_tokens / self.prefill_tokens_per_s)


@lru_cache(maxsize=None)
def _profile_table(path):
    data = load_yaml(path, "profiles")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), dict)
                                             for k in ("defaults", "models")):
        raise ConfigError(path, "expected a mapping with 'defaults' and 'models' mappings "
                                "(see edgellm's models/profiles.yaml)")
    return data["defaults"], data["models"]


def load_profile(model, profiles_path=PROFILES_PATH, **overrides):
    """The profile of ``model``, with hyperparameter ``overrides`` applied."""
    defaults, models = _profile_table(profiles_path)
    if model not in models:
        raise ValueError(f"simulated backend has no profile for model {model!r} "
                         f"(known: {', '.join(models)}; add one to {profiles_path})")
    if not isinstance(models[model], dict):
        raise ConfigError(profiles_path, f"key 'models.{model}': expected a mapping")
    names = {f.name for f in fields(ModelProfile)}
    merged = {**defaults, **models[model], **overrides, "name": model}
    known = {k: v for k, v in merged.items() if k in names}
    known["extra"] = {k: v for k, v in merged.items() if k not in names}
    return ModelProfile(**known)


def hash64(text):
    """A stable 64-bit hash of a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def uniform_bits(keys, salt):
    """splitmix64 of (key xor salt), vectorised: 64 well-mixed bits per key."""
    with np.errstate(over="ignore"):
        z = (keys ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniforms(keys, salt):
    """Deterministic U(0,1) per key."""
    bits = uniform_bits(keys, salt)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


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


def item_hashes(samples):
    """64-bit hashes of the items' keys. Integer ids (line numbers, as our dataset
    processor gives) are mixed with numpy in one go; other keys are hashed one by one."""
    ids = [s.get("id") for s in samples]
    if all(type(i) is int and i >= 0 for i in ids):
        return uniform_bits(np.array(ids, dtype=np.uint64), hash64("item-id"))
    return np.fromiter((hash64(item_key(s)) for s in samples), np.uint64, len(samples))


_FIELD_KINDS = {float: NUMBER, int: WHOLE, str: TEXT, dict: MAPPING}


class SimulatedLLM:
    """Answers from a profile on a modelled clock; ``generate_batch`` is vectorised.

    Settings: ``model`` (a profile of profiles.yaml), ``seed``, ``profiles_path``, the
    prices (``input_per_mtok``, ``output_per_mtok``, ``cost_per_hour``) and any profile
    field (``accuracy``, ``ttft_s``, ``decode_tokens_per_s``...) to override."""

    simulated = True
    SETTING_KINDS = {  # checked before the first test case (edgellm.models.setting_kinds)
        "model": TEXT, "tier": TEXT, "seed": WHOLE, "node": TEXT, "profiles_path": TEXT,
        "input_per_mtok": at_least(NUMBER, 0), "output_per_mtok": at_least(NUMBER, 0),
        "cost_per_hour": at_least(NUMBER, 0),
        # a profile field overridden: of its field's kind
        **{f.name: _FIELD_KINDS[f.type] for f in fields(ModelProfile)
           if f.name not in ("name", "tier", "extra")}}

    def __init__(self, model, tier=None, seed=0, node=None, profiles_path=None,
                 input_per_mtok=None, output_per_mtok=None, cost_per_hour=None, **overrides):
        check_settings(type(self), overrides, owner="backend 'simulated'")
        self.profile = load_profile(model, profiles_path or PROFILES_PATH, **overrides)
        self.price = price_for(model, input_per_mtok=input_per_mtok,
                               output_per_mtok=output_per_mtok, cost_per_hour=cost_per_hour)
        self.model = model
        self.tier = tier or self.profile.tier
        self.node = node or self.tier
        self.seed = int(seed)
        self._salt = hash64(f"{self.seed}|{model}")
        self._config = (repr(self.profile), repr(self.price), self.tier, self.node, self.seed)
        template, cpt = self.profile.answer_template, self.profile.chars_per_token
        self._option_in_template = "{option}" in template
        self._letter_answers = {}  # fixed completions, when the template names no option text
        if not self._option_in_template:
            for letter in "ABCDEFGHIJ":
                text = template.format(letter=letter)
                self._letter_answers[letter] = (text, letter, max(1, estimate_tokens(text, cpt)))

    @classmethod
    def extra_settings(cls):
        """The profile fields a hyperparameter may override."""
        return [f.name for f in fields(ModelProfile) if f.name not in ("name", "tier", "extra")]

    @classmethod
    def check(cls, params):
        """Fail before the run when the model has no profile, the profiles file is not
        there or an accuracy is not a share in (0, 1)."""
        if "model" not in params:
            raise ValueError("the simulated backend needs a 'model' hyperparameter")
        path = params.get("profiles_path")
        if path and not os.path.isfile(path):
            raise SettingError("backend 'simulated'", "profiles_path",
                               f"file not found: {path} (paths resolve against the current "
                               "directory)")
        overrides = {k: v for k, v in params.items() if k in cls.extra_settings()}
        profile = load_profile(params["model"], path or PROFILES_PATH, **overrides)
        for task_type, accuracy in profile.accuracy.items():
            if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or \
                    not 0 < accuracy < 1:
                problem = f"must be a share in (0, 1), got {accuracy!r}"
                if "accuracy" in overrides:
                    raise SettingError("backend 'simulated'", "accuracy",
                                       f"accuracy of {task_type} {problem}")
                raise ConfigError(path or PROFILES_PATH, f"key 'models.{params['model']}."
                                                         f"accuracy.{task_type}': it {problem}")

    def _ability(self, task_type):
        p = self.profile
        accuracy = p.accuracy.get(task_type, p.accuracy.get("multiple_choice"))
        return solve_ability(float(accuracy), p.difficulty_scale, p.subject_weight)

    def difficulty(self, samples):
        """Per-item difficulty b_i: depends on the item (and subject) only, not the model.

        Items without a subject draw the subject component per item too: one shared
        draw for all of them would shift a whole dataset's accuracy off its profile."""
        p = self.profile
        items = item_hashes(samples)
        subject_hash = {}  # few subjects, many items
        for s in samples:
            subject = s.get("subject")
            if subject and subject not in subject_hash:
                subject_hash[subject] = hash64(f"subject|{subject}")
        second_draw = uniform_bits(items, hash64("no-subject"))
        subjects = np.fromiter((subject_hash[s["subject"]] if s.get("subject") else 0
                                for s in samples), np.uint64, len(samples))
        subjects = np.where(subjects == 0, second_draw, subjects)
        b_item = _logit(uniforms(items, hash64("difficulty")))
        b_subject = _logit(uniforms(subjects, hash64("difficulty")))
        b = p.difficulty_scale * (math.sqrt(1 - p.subject_weight) * b_item
                                  + math.sqrt(p.subject_weight) * b_subject)
        return items, b

    def generate(self, sample):
        return self.generate_batch([sample])[0]

    def generate_batch(self, samples):
        """Responses to ``samples``. Outcomes are deterministic, so responses are
        memoised per process: a sweep over routers (or the oracle's look-ahead)
        computes each (model, seed, item) once. Responses are shared: read-only."""
        memo = _RESPONSES.get(self._config)
        if memo is None:
            memo = _RESPONSES[self._config] = {}
        # everything a response depends on: the same id and text with another gold
        # answer (another dataset in the same process) is another item; a list of
        # answers (a QA gold) keys as a tuple
        keys = [(s.get("id"), q if isinstance(q := s.get("query", ""), str) else messages_text(q),
                 tuple(g) if isinstance(g := s.get("gold"), list) else g, s.get("subject"),
                 s.get("task_type")) for s in samples]
        get = memo.get
        found = [get(k) for k in keys]
        missing = [i for i, r in enumerate(found) if r is None]
        if missing:
            fresh = self._generate([samples[i] for i in missing], [keys[i][1] for i in missing])
            for i, response in zip(missing, fresh):
                found[i] = response
            room = _RESPONSES_MAX - sum(map(len, _RESPONSES.values()))
            for i in missing[:max(0, room)]:
                memo[keys[i]] = found[i]
        return found

    def _generate(self, samples, texts):
        p = self.profile
        n = len(samples)
        keys, b = self.difficulty(samples)
        names = [_task_name(s) for s in samples]
        ability = {name: self._ability(name) for name in set(names)}
        abilities = np.fromiter((ability[name] for name in names), np.float64, n)
        correct = (uniforms(keys, self._salt) < 1.0 / (1.0 + np.exp(b - abilities))).tolist()
        wrong_pick = uniforms(keys, self._salt ^ 0x5A5A5A5A).tolist()

        answer, answer_task = self._answer, self._answer_task
        answers = [answer(text, s.get("gold"), ok, pick) if name == "multiple_choice"
                   else answer_task(s, key, ok, pick)
                   for s, name, text, key, ok, pick in zip(samples, names, texts, keys.tolist(),
                                                           correct, wrong_pick)]

        # Timing, vectorised (formulas in profiles.yaml).
        prompt_tokens = _prompt_tokens(names, texts, p.chars_per_token)
        out_tokens = np.fromiter((a[2] for a in answers), np.float64, n)
        j1 = np.exp(p.jitter * _unit_logistic(uniforms(keys, self._salt ^ 0x1111)))
        j2 = np.exp(p.jitter * _unit_logistic(uniforms(keys, self._salt ^ 0x2222)))
        ttft = p.network_rtt_s + (p.ttft_overhead_s + prompt_tokens / p.prefill_tokens_per_s) * j1
        itl = j2 / p.decode_tokens_per_s
        e2e = ttft + (out_tokens - 1) * itl
        price = self.price
        cost = (prompt_tokens * (price.input_per_mtok / 1e6)
                + out_tokens * (price.output_per_mtok / 1e6) + e2e * (price.cost_per_hour / 3600))
        rtt, tier, node, model = p.network_rtt_s, self.tier, self.node, self.model
        return [make_response(c, pred, pt, k, ttft=t, itl=g, e2e=e, tier=tier, node=node,
                              model=model, network_time=rtt, cost_usd=usd,
                              task_type=name)
                for (c, pred, k), pt, t, g, e, usd, name in zip(
                    answers, prompt_tokens.astype(np.int64).tolist(), ttft.tolist(),
                    itl.tolist(), e2e.tolist(), cost.tolist(), names)]

    def _answer_task(self, sample, key, correct, pick):
        """(completion, prediction, completion tokens) for the five distribution-center
        task types: see profiles.yaml for what adequate and inadequate answers are."""
        task = get_task_type(sample["task_type"])
        query = _text(sample)
        reference = parse_reference(task.name, sample.get("gold"))
        rng = random.Random(key ^ self._salt)
        if task.code == "TC":
            others = [label for label in task.labels if label != reference]
            completion = reference if correct else others[int(pick * len(others))]
        elif task.code == "NER":
            completion = _ner_answer(query, reference, correct, rng)
        elif task.code == "QA":
            completion = reference[0] if correct else _wrong_answer(query)
        elif task.code == "TS":
            completion = _rewrite(reference, self.profile.rewrite_good if correct
                                  else self.profile.rewrite_poor, rng)
        else:
            completion = _rewrite(reference, self.profile.rewrite_good, rng) if correct \
                else _lead(query, 2)
        prediction = extract_prediction(sample, completion)
        return completion, prediction, max(1, estimate_tokens(completion,
                                                              self.profile.chars_per_token))

    def _answer(self, text, gold, correct, pick):
        """(completion, prediction, completion tokens): the gold option when correct,
        another of the item's options otherwise, written with the profile's template."""
        letters = option_letters(text)
        gold_letter = None
        if gold is not None and letters:
            gold_letter = gold if gold in letters and len(gold) == 1 else \
                extract_choice(str(gold), letters)
        if gold_letter is None or gold_letter not in letters:
            # Not a multiple-choice item we can answer from its options.
            completion = str(gold) if correct and gold is not None else "I am not sure."
            return completion, completion, max(1, estimate_tokens(completion,
                                                                  self.profile.chars_per_token))
        letter = gold_letter
        if not correct:
            others = letters.replace(gold_letter, "")
            letter = others[min(int(pick * len(others)), len(others) - 1)]
        if self._option_in_template:
            completion = self.profile.answer_template.format(
                letter=letter, option=parse_options(text).get(letter, ""))
            return completion, letter, max(1, estimate_tokens(
                completion, self.profile.chars_per_token))
        return self._letter_answers[letter]


# Simulated responses, memoised per process (see generate_batch): backend
# configuration -> {item key: response}; bounded in all so runs over 10^5 items do
# not hold a second copy of everything.
_RESPONSES = {}
_RESPONSES_MAX = 1 << 16


_FILLERS = ("the", "also", "very", "then", "some", "it", "was", "and")


def _rewrite(text, rate, rng):
    """``text`` with a share ``rate`` of its words deleted or replaced by fillers."""
    words = []
    for word in text.split():
        u = rng.random()
        if u >= rate:
            words.append(word)
        elif u < rate / 2:
            words.append(_FILLERS[int(u * 1e6) % len(_FILLERS)])
    return " ".join(words) or text


def _lead(article, sentences):
    """The first sentences of an article: the classic lazy summary."""
    parts = re.split(r"(?<=[.!?])\s+", article.strip())
    return " ".join(parts[:sentences])


def _wrong_answer(question):
    """A plausible wrong short answer: the question's last content words."""
    words = [w.strip("?.,!\"'") for w in question.split()]
    return " ".join(w for w in words[-2:] if w) or "unknown"


def _ner_answer(query, reference, correct, rng):
    """Entity lines for an NER item: all of them, or half with one type confused."""
    if isinstance(reference, dict):
        entities = [tuple(e) for e in reference["entities"]]
    else:
        # heavy (seqeval, about 1.4 s to import): only NER items read BIO tags
        from seqeval.metrics.sequence_labeling import get_entities
        tokens = query.split()
        entities = [(" ".join(tokens[start:end + 1]), kind)
                    for kind, start, end in get_entities(list(reference))]
    if not correct:
        entities = entities[::2]
        if entities:
            span, kind = entities[0]
            others = [t for t in ("PER", "LOC", "ORG", "MISC") if t != kind]
            entities[0] = (span, others[int(rng.random() * len(others))])
    return "\n".join(f"{kind}: {span}" for span, kind in entities) or "NONE"


def _task_name(sample):
    """The sample's task type name; samples without one are multiple choice."""
    return sample.get("task_type") or "multiple_choice"


def _text(sample):
    query = sample.get("query", "")
    return query if isinstance(query, str) else messages_text(query)


def _prompt_tokens(names, texts, chars_per_token):
    """estimate_tokens() of each rendered prompt (what a real model would be sent).
    An ASCII prompt's count follows from its length, the query's plus the template's,
    so no prompt is rendered unless it holds other characters."""
    tasks = {name: get_task_type(name) for name in set(names)}
    overhead = {name: len(t.prompt.replace("{query}", "")) for name, t in tasks.items()}
    extra = next(iter(overhead.values())) if len(overhead) == 1 else \
        np.fromiter((overhead[name] for name in names), np.float64, len(names))
    lengths = np.fromiter(map(len, texts), np.float64, len(texts)) + extra
    tokens = np.maximum(1.0, np.ceil(lengths / chars_per_token))
    if not (all(t.prompt.isascii() for t in tasks.values()) and all(map(str.isascii, texts))):
        for i, (name, text) in enumerate(zip(names, texts)):
            rendered = tasks[name].render(text)
            if not rendered.isascii():
                tokens[i] = estimate_tokens(rendered, chars_per_token)
    return tokens


def _unit_logistic(u):
    """A unit-variance logistic variate: close enough to a normal for jitter."""
    return _logit(u) * (math.sqrt(3) / math.pi)
