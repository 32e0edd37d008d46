"""A synthetic MMLU-shaped outcome matrix: which of a weak (edge) and a strong (cloud)
model answers each of 14,000 multiple-choice questions over MMLU's 57 subjects
correctly, with a question text that tells a router something, not everything,
about who gets it right. Routers train and are evaluated on it (the routing-curves
example job, benchmarks/routing_quality.py, the tests); no MMLU text is shipped.

    edgellm dataset synthesize OUT.csv --items 14000 --seed 0

writes it as a long outcome matrix, the layout ``edgellm import`` reads (one row per
item and model: item_id, query, subject, model, correct, prompt_tokens,
completion_tokens, e2e_latency, cost_usd). The same items and seed give the same
file, byte for byte.

The generative model
--------------------
Calibrated on RouteLLM's recorded MMLU outcomes (routellm/evals/mmlu/responses/, the
14,042 MMLU test questions answered by Mixtral-8x7B-Instruct-v0.1, the weak model,
and gpt-4-1106-preview, the strong one: the pair of the RouteLLM paper's MMLU
figures). mmlu_subjects.yaml beside this file holds, per subject, the question
count, both models' recorded accuracies, the median question length and 40
characteristic words, and says how they were derived (and one correction: the
recorded gpt-4 accuracy on high-school mathematics, 3 %, is a grading artefact).

- Items: the subjects' question counts scaled to ``items`` (largest remainders).
- Difficulty: item i of subject s has a latent difficulty z_i ~ N(0, 1). The weak
  model is right when sqrt(RHO) z_i + sqrt(1 - RHO) e_i < Phi^-1(weak_s), the strong
  one when sqrt(RHO) z_i + sqrt(1 - RHO) f_i < Phi^-1(strong_s), e and f independent
  N(0, 1) noise. So each model's accuracy on subject s is its recorded one (subject
  component), and within a subject the two share the item's difficulty (item
  component). RHO = 0.62 makes the expected share of questions only the weak model
  gets right 4.8 %, the recorded share outside high-school mathematics.
  Expected accuracies: weak 0.681, strong 0.815.
- Text: the question has about the subject's median word count (x lognormal noise,
  sigma 0.5, x exp(0.05 z_i)): a stem and four options. A word is a topic word with
  probability TOPIC_SHARE = 0.45, else a common English function word; a topic word
  comes from the item's subject vocabulary (Zipf-weighted) with probability 1 -
  TOPIC_NOISE, else from a random subject's: TOPIC_NOISE = 0.77 makes a TF-IDF linear
  classifier recover the subject of about 76 % of the questions, as it does for 77 % of
  RouteLLM's real ones. Difficulty shows through cue words (negations, qualifiers:
  HARD_CUES, and plain words: EASY_CUES): Poisson(CUE_RATE e^(CUE_STRENGTH z_i)) hard
  ones and Poisson(CUE_RATE e^(-CUE_STRENGTH z_i)) easy ones, CUE_RATE = 1,
  CUE_STRENGTH = 0.32. The cues are invented (the real questions' difficulty signal
  lies elsewhere); only their strength is calibrated: a TF-IDF + logistic-regression
  router trained on one half finds within subjects the same signal on this matrix as
  on the real questions: the AUC of its score against "the weak model is wrong",
  pooled within subjects, is 0.57 here (0.588, 0.565, 0.557 for seeds 0, 1, 2) and
  0.572 on RouteLLM's questions. Against the oracle label it is lower here (0.51)
  than there (0.543): the matrix errs on the side of less signal.
- Tokens, cost, latency (illustrative, not calibrated): prompt tokens = characters / 4;
  completion tokens 1 + Poisson(3); the cloud costs gpt-4-1106-preview's list price
  ($10 / $30 per million input / output tokens), the edge nothing; e2e latency: edge
  (0.03 s + 0.5 ms per prompt token + 25 ms per further output token) x lognormal
  (sigma 0.25), cloud (0.45 s + 0.2 ms per prompt token + 15 ms per further output
  token) x lognormal (sigma 0.4).

How much a router can learn (items=14000, seed=0; ``signal_summary`` recomputes it;
AUC of a score against the oracle label "strong right and weak wrong", and against
"weak wrong")::

    score                                             oracle label   weak wrong
    latent: P(weak wrong | subject, z)                    0.75          0.91
    subject only: P(weak wrong | subject)                 0.64          0.73
    text cues only, within subjects (hard - easy)         0.56          0.65

The latent row is about what a router that knew each item's difficulty would reach;
the cue row is the cue count itself, all a text router can draw from the cues; the
text carries the subject imperfectly on top. On this matrix (seed 0, 50/50 split of
the items with seed 0) a subject prior fitted on train reaches APGR 0.626 and
CPT(50 %) 33.2 % on test with the oracle label (0.616 and 34.7 % with "weak wrong"), a
TF-IDF + logistic-regression router about 0.59. ``bayes_gain`` scores each item
with the generator's own parameters, the ceiling of a router reading the subject and
the cue words: APGR 0.678, CPT(50 %) 28.2 % (benchmarks/routing_quality.py prints it).
For comparison, on RouteLLM's real matrix (same split, ``routing_quality.py
--routellm``, oracle label): the MetadataRouter's subject prior 0.670 (0.635 without
high-school mathematics), TF-IDF 0.642 (0.629); the paper's best router, trained on
other data, 0.603.
"""

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from edgellm.outcomes.matrix import long_matrix_csv
from edgellm.outcomes.outcome_set import OutcomeSet
from edgellm.yaml_file import load_yaml

PROFILE = os.path.join(os.path.dirname(__file__), "mmlu_subjects.yaml")
EDGE_MODEL = "synthetic/mixtral-8x7b-instruct"
CLOUD_MODEL = "synthetic/gpt-4-1106-preview"

RHO = 0.62
TOPIC_SHARE = 0.45
TOPIC_NOISE = 0.77
CUE_RATE = 1.0
CUE_STRENGTH = 0.32
LENGTH_SIGMA = 0.5
LENGTH_DIFFICULTY = 0.05
CLOUD_PRICE_PER_MTOK = (10.0, 30.0)  # gpt-4-1106-preview, input / output
# difficulty "gap" (not the default; the module docstring): the weak model's latent is
# GAP_SHARED z + GAP_WEIGHT g + own noise, g the weak model's own difficulty, shown by
# GAP_CUES words at Poisson(CUE_RATE e^(CUE_STRENGTH g)). Fixed before any router ran
# on it: about half of the weak model's variance from g, the rest shared or its own
DIFFICULTIES = ("shared", "gap")
GAP_SHARED = math.sqrt(0.3)
GAP_WEIGHT = math.sqrt(0.35)

FUNCTION_WORDS = ("the of a to and in is which that following for an be by with as are "
                  "this on what was from it has or at if would most its their his her "
                  "these all can one about when than into").split()
HARD_CUES = ("except not least necessarily primarily unless whereas although implies "
             "notwithstanding assuming contrary hypothetical inconsistent indirectly "
             "respectively ambiguous exception nonetheless").split()
EASY_CUES = ("simple basic common usually typical example called known main used define "
             "refers name best simply directly").split()
GAP_CUES = ("derive evaluate prove approximate deduce combine convert sequence steps "
            "remaining stepwise thereafter subsequently intermediate cumulative iterate "
            "reconcile recompute nested successive").split()
STARTERS = ("Which of the following", "What is", "Consider", "In", "According to",
            "Suppose", "The", "A", "Why")


@lru_cache(maxsize=None)
def subject_profile():
    return load_yaml(PROFILE, "subject profile")["subjects"]


def _normal_cdf(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _counts(items):
    """Questions per subject: MMLU's counts scaled to ``items`` (largest remainders)."""
    real = np.array([s["items"] for s in subject_profile().values()], dtype=np.float64)
    exact = real * items / real.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[:items - counts.sum()]] += 1
    return counts


@dataclass
class SyntheticMatrix:
    """The generated matrix, one entry per item; ``difficulty`` (z) and the cue word
    counts (``hard_cues``, ``easy_cues``; ``cues`` is hard minus easy) are kept to
    measure how much a router could learn (with difficulty "gap" also ``gap`` and
    ``gap_cues``)."""

    subjects: list
    queries: list
    weak_correct: np.ndarray
    strong_correct: np.ndarray
    difficulty: np.ndarray
    weak_p_wrong: np.ndarray  # P(weak wrong | subject, difficulty)
    cues: np.ndarray
    hard_cues: np.ndarray
    easy_cues: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray  # (items, 2): weak, strong
    latency: np.ndarray  # (items, 2)
    cost: np.ndarray  # (items, 2)
    seed: int
    difficulty_model: str = "shared"  # generate's difficulty: "shared" or "gap"
    gap: np.ndarray = None  # difficulty "gap": the weak model's own difficulty g
    gap_cues: np.ndarray = None  # ... and the count of GAP_CUES words showing it

    def __len__(self):
        return len(self.queries)

    def to_outcome_set(self):
        return OutcomeSet(
            ids=[str(i) for i in range(len(self))], queries=list(self.queries),
            subjects=list(self.subjects), task_types=["multiple_choice"] * len(self),
            edge_score=self.weak_correct.astype(np.float64),
            cloud_score=self.strong_correct.astype(np.float64),
            edge_cost=self.cost[:, 0], cloud_cost=self.cost[:, 1],
            edge_latency=self.latency[:, 0], cloud_latency=self.latency[:, 1],
            edge_model=EDGE_MODEL, cloud_model=CLOUD_MODEL,
            source=f"synthetic MMLU-shaped matrix ({len(self)} items, seed {self.seed})")

    def to_csv(self, subject=True):
        """The matrix as a long outcome-matrix CSV (two rows per item); ``subject``
        false: without the subject column (the text still carries it, imperfectly)."""
        rows = []
        for i, (query, name) in enumerate(zip(self.queries, self.subjects)):
            for tier, (model, correct) in enumerate(((EDGE_MODEL, self.weak_correct[i]),
                                                     (CLOUD_MODEL, self.strong_correct[i]))):
                rows.append({"item_id": i, "query": query,
                             **({"subject": name} if subject else {}), "model": model,
                             "correct": int(correct), "prompt_tokens": self.prompt_tokens[i],
                             "completion_tokens": self.completion_tokens[i, tier],
                             "e2e_latency": f"{self.latency[i, tier]:.4f}",
                             "cost_usd": f"{self.cost[i, tier]:.8f}"})
        return long_matrix_csv(rows)


def generate(items=14000, seed=0, difficulty="shared"):
    """The matrix of ``items`` questions drawn with ``seed`` (module docstring).
    ``difficulty``: "shared" (default: one difficulty both models share) or "gap"
    (the weak model also fails on a difficulty of its own, shown by other words); the
    default draws exactly what it always drew."""
    if items < 1:
        raise ValueError(f"items must be >= 1, got {items}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, "
                         f"got {difficulty!r}")
    rng = np.random.default_rng(seed)
    profile = subject_profile()
    names = list(profile)
    subject = np.repeat(np.arange(len(names)), _counts(items))
    normal = NormalDist()
    weak_cut = np.array([normal.inv_cdf(profile[s]["weak"]) for s in names])[subject]
    strong_cut = np.array([normal.inv_cdf(profile[s]["strong"]) for s in names])[subject]

    z = rng.standard_normal(items)
    shared, own = np.sqrt(RHO) * z, np.sqrt(1 - RHO)
    weak_noise = rng.standard_normal(items)
    weak_correct = shared + own * weak_noise < weak_cut
    strong_correct = shared + own * rng.standard_normal(items) < strong_cut
    weak_p_wrong = 1.0 - _normal_cdf((weak_cut - shared) / own)
    gap = gap_cues = None
    if difficulty == "gap":  # drawn apart, so that the default's draws stay as they were
        gap_rng = np.random.default_rng([seed, 1])
        gap = gap_rng.standard_normal(items)
        weak_latent = GAP_SHARED * z + GAP_WEIGHT * gap
        weak_own = math.sqrt(1.0 - GAP_SHARED ** 2 - GAP_WEIGHT ** 2)
        weak_correct = weak_latent + weak_own * weak_noise < weak_cut
        weak_p_wrong = 1.0 - _normal_cdf((weak_cut - weak_latent) / weak_own)
        gap_cues = gap_rng.poisson(CUE_RATE * np.exp(CUE_STRENGTH * gap))
        gap_words = gap_rng.integers(len(GAP_CUES), size=gap_cues.sum())

    queries, hard, easy = _queries(rng, names, subject, z,
                                   None if gap is None else (gap_cues, gap_words))
    prompt_tokens = np.array([len(q) // 4 for q in queries], dtype=np.int64)
    completion = 1 + rng.poisson(3.0, size=(items, 2))
    latency = np.column_stack([
        (0.03 + 0.0005 * prompt_tokens + 0.025 * (completion[:, 0] - 1))
        * rng.lognormal(0.0, 0.25, items),
        (0.45 + 0.0002 * prompt_tokens + 0.015 * (completion[:, 1] - 1))
        * rng.lognormal(0.0, 0.4, items)])
    price_in, price_out = CLOUD_PRICE_PER_MTOK
    cost = np.column_stack([np.zeros(items),
                            (prompt_tokens * price_in + completion[:, 1] * price_out) / 1e6])
    return SyntheticMatrix([names[s] for s in subject], queries, weak_correct, strong_correct,
                         z, weak_p_wrong, hard - easy, hard, easy, prompt_tokens, completion,
                         latency, cost, seed, difficulty, gap, gap_cues)


def _queries(rng, names, subject, z, gap_cues=None):
    """Question texts (stem + four options) and their hard and easy cue counts.
    Words are drawn as codes into one word list (subject vocabularies, then function
    words, hard cues, easy cues, gap cues) and turned into text once at the end.
    ``gap_cues``: (count per item, GAP_CUES indices) put into the stems too."""
    profile = subject_profile()
    n, vocab_size = len(subject), len(profile[names[0]]["vocab"])
    word_list = [w for s in names for w in profile[s]["vocab"]]
    function_base = len(word_list)
    hard_base = function_base + len(FUNCTION_WORDS)
    easy_base = hard_base + len(HARD_CUES)
    gap_base = easy_base + len(EASY_CUES)
    word_list += [*FUNCTION_WORDS, *HARD_CUES, *EASY_CUES, *GAP_CUES]

    median = np.array([profile[s]["words"] for s in names])[subject]
    length = np.maximum(8, np.rint(median * np.exp(LENGTH_SIGMA * rng.standard_normal(n)
                                                   + LENGTH_DIFFICULTY * z))).astype(np.int64)
    option_len = 1 + rng.poisson(np.maximum(length / 10.0, 0.5)[:, None], size=(n, 4))
    stem_len = np.maximum(3, length - option_len.sum(axis=1))
    segment_len = np.column_stack([stem_len, option_len]).ravel()  # 5 segments per item

    # content words for every slot of every segment
    total = int(segment_len.sum())
    segment = np.repeat(np.arange(5 * n), segment_len)
    topic = rng.random(total) < TOPIC_SHARE
    source = np.where(rng.random(total) < TOPIC_NOISE,
                      rng.integers(len(names), size=total), subject[segment // 5])
    zipf = 1.0 / np.arange(1, vocab_size + 1)
    rank = rng.choice(vocab_size, size=total, p=zipf / zipf.sum())
    codes = np.where(topic, source * vocab_size + rank,
                     function_base + rng.integers(len(FUNCTION_WORDS), size=total))

    # cue words go into the stem
    hard = rng.poisson(CUE_RATE * np.exp(CUE_STRENGTH * z))
    easy = rng.poisson(CUE_RATE * np.exp(-CUE_STRENGTH * z))
    codes = np.concatenate([codes, hard_base + rng.integers(len(HARD_CUES), size=hard.sum()),
                            easy_base + rng.integers(len(EASY_CUES), size=easy.sum())])
    segment = np.concatenate([segment, 5 * np.repeat(np.arange(n), hard),
                              5 * np.repeat(np.arange(n), easy)])
    if gap_cues is not None:
        counts, picks = gap_cues
        codes = np.concatenate([codes, gap_base + picks])
        segment = np.concatenate([segment, 5 * np.repeat(np.arange(n), counts)])
    order = np.argsort(segment + rng.random(len(codes)))  # shuffled within each segment
    words = np.array(word_list, dtype=object)[codes[order]].tolist()
    bounds = np.concatenate([[0], np.cumsum(np.bincount(segment, minlength=5 * n))]).tolist()

    starters = rng.integers(len(STARTERS), size=n).tolist()
    queries = []
    for i in range(n):
        b = bounds[5 * i:5 * i + 6]
        stem, a, b_, c, d = (" ".join(words[b[k]:b[k + 1]]) for k in range(5))
        queries.append(f"{STARTERS[starters[i]]} {stem}?\nA. {a}\nB. {b_}\nC. {c}\nD. {d}"
                       f"\nAnswer:")
    return queries, hard, easy


def bayes_gain(matrix):
    """The best score a text router could learn, for the ceiling of routing_quality.py:
    E[strong right - weak right | subject, hard and easy cue counts] under the
    generator's own parameters (each subject's two accuracies, RHO, the cue rates),
    integrating the difficulty z over its posterior given the cue counts (difficulty
    "gap": and the weak model's own difficulty g over its posterior given the gap cue
    count). The length signal (LENGTH_DIFFICULTY) is left out, so a router could beat
    it by a hair."""
    profile = subject_profile()
    gap = matrix.difficulty_model == "gap"
    z = np.linspace(-6.0, 6.0, 121 if gap else 601)

    def posterior(counts_and_signs):
        # Poisson likelihoods up to factors that do not depend on the latent
        log_post = -0.5 * z ** 2
        for count, sign in counts_and_signs:
            rate = CUE_RATE * np.exp(sign * CUE_STRENGTH * z)
            log_post = log_post + count * np.log(rate) - rate
        post = np.exp(log_post - log_post.max())
        return post / post.sum()

    normal = NormalDist()
    cut = {(s, m): normal.inv_cdf(profile[s][m]) for s in set(matrix.subjects)
           for m in ("weak", "strong")}
    strong = {s: _normal_cdf((cut[s, "strong"] - np.sqrt(RHO) * z) / np.sqrt(1 - RHO))
              for s in set(matrix.subjects)}
    if gap:  # P(weak right | z, g) on the grid, per subject
        own = math.sqrt(1.0 - GAP_SHARED ** 2 - GAP_WEIGHT ** 2)
        weak = {s: _normal_cdf((cut[s, "weak"] - GAP_SHARED * z[:, None]
                                - GAP_WEIGHT * z[None, :]) / own)
                for s in set(matrix.subjects)}
    else:
        weak = {s: _normal_cdf((cut[s, "weak"] - np.sqrt(RHO) * z) / np.sqrt(1 - RHO))
                for s in set(matrix.subjects)}
    gap_cues = matrix.gap_cues.tolist() if gap else [0] * len(matrix)
    gain, memo = np.empty(len(matrix)), {}
    for i, key in enumerate(zip(matrix.subjects, matrix.hard_cues.tolist(),
                                matrix.easy_cues.tolist(), gap_cues)):
        if key not in memo:
            subject, hard, easy, gap_count = key
            post = posterior([(hard, 1.0), (easy, -1.0)])
            weak_right = post @ weak[subject] @ posterior([(gap_count, 1.0)]) if gap \
                else post @ weak[subject]
            memo[key] = float(post @ strong[subject] - weak_right)
        gain[i] = memo[key]
    return gain


def _auc(score, label):
    """ROC AUC as the Mann-Whitney statistic (ties count one half)."""
    values, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # average ranks, 1-based
    positives = int(label.sum())
    negatives = len(label) - positives
    return float((ranks[label].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def signal_summary(matrix):
    """AUCs of the docstring's table: how well the latent difficulty, the subject and
    the text cues separate the oracle label and the weak model's errors."""
    oracle = matrix.strong_correct & ~matrix.weak_correct
    weak_wrong = ~matrix.weak_correct
    subjects = np.unique(np.array(matrix.subjects), return_inverse=True)[1]
    prior = (np.bincount(subjects, weights=weak_wrong) / np.bincount(subjects))[subjects]

    def within(score, label):  # AUC pooled over subjects: pairs within a subject only
        total = pairs = 0.0
        for s in range(subjects.max() + 1):
            mask = subjects == s
            positives = label[mask].sum()
            count = positives * (mask.sum() - positives)
            if count:
                total += _auc(score[mask], label[mask]) * count
                pairs += count
        return float(total / pairs)

    return {
        "latent": (_auc(matrix.weak_p_wrong, oracle), _auc(matrix.weak_p_wrong, weak_wrong)),
        "subject": (_auc(prior, oracle), _auc(prior, weak_wrong)),
        "text cues within subjects": (within(matrix.cues, oracle),
                                      within(matrix.cues, weak_wrong)),
    }
