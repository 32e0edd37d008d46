"""Scoring, per task type, with the libraries the field uses.

Corpus scores (``score_task``), on 0-100 scales:
- MC: accuracy of the option letter.
- TC: accuracy and macro-F1 over the six labels (scikit-learn).
- NER: entity-level precision, recall, F1 (seqeval, conlleval rules) over BIO tags;
  for references given as entity lists, exact (span, type) matching.
- QA: exact match and token F1 with SQuAD's normalisation, max over acceptable answers.
- TS: corpus BLEU and chrF (sacrebleu, default 13a tokenisation of the English side).
- SG: ROUGE-1/2/L F1 (rouge-score with its Porter stemming), averaged over items.

``item_score`` puts one item on 0-1 (routers and the oracle compare items with it).
Libraries are imported only when their task type is scored (inside the functions that
use them): seqeval, scikit-learn and rouge-score each take over a second to import.
"""

import collections
import functools
import re
import string

from edgellm.tasks.multiple_choice import extract_choice
from edgellm.tasks.registry import get_task_type

# -- QA: SQuAD v1.1's official answer normalisation ------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    """Lower case, no punctuation, no articles, single spaces (as SQuAD evaluates)."""
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def qa_exact(prediction, answers):
    pred = normalize_answer(prediction or "")
    return float(any(pred == normalize_answer(a) for a in answers))


def qa_f1(prediction, answers):
    """Token F1 against the best-matching acceptable answer."""
    pred_tokens = normalize_answer(prediction or "").split()
    best = 0.0
    for answer in answers:
        gold_tokens = normalize_answer(answer).split()
        if not pred_tokens or not gold_tokens:
            best = max(best, float(pred_tokens == gold_tokens))
            continue
        common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
        if common:
            precision, recall = common / len(pred_tokens), common / len(gold_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


# -- NER -------------------------------------------------------------------------

def tags_of(prediction, length):
    """The predicted BIO tags, padded or cut to the reference's length."""
    tags = list(prediction.get("tags", [])) if isinstance(prediction, dict) else \
        list(prediction or [])
    return (tags + ["O"] * length)[:length]


def spans(tags):
    """{(start, end, TYPE)} entities of a BIO sequence (as seqeval reads them)."""
    from seqeval.metrics.sequence_labeling import get_entities  # heavy: module docstring
    return {(start, end, kind) for kind, start, end in get_entities(list(tags))}


def entity_prf(predicted, gold):
    """Precision, recall, F1 of exact entity matches between two sets."""
    hits = len(set(predicted) & set(gold))
    precision = hits / len(predicted) if predicted else float(not gold)
    recall = hits / len(gold) if gold else float(not predicted)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# -- corpus scores ---------------------------------------------------------------

def _mc(predictions, references):
    right = [extract_choice(str(p), "ABCDEFGHIJ") == r if p is not None else False
             for p, r in zip(predictions, references)]
    return {"accuracy": 100.0 * sum(right) / len(right)}


def _tc(predictions, references):
    from sklearn.metrics import accuracy_score, f1_score  # heavy: module docstring

    labels = get_task_type("TC").labels
    predicted = [p if p in labels else "<none>" for p in predictions]
    return {"accuracy": 100.0 * accuracy_score(references, predicted),
            "macro_f1": 100.0 * f1_score(references, predicted, labels=list(labels),
                                         average="macro", zero_division=0)}


def _entity_sets(prediction, reference):
    """(predicted, gold) entities of one item: BIO spans, or (span text, TYPE) pairs
    when the reference is a free-form entity list."""
    if isinstance(reference, dict):
        found = prediction.get("entities", []) if isinstance(prediction, dict) else []
        return {tuple(e) for e in found}, {tuple(e) for e in reference["entities"]}
    return spans(tags_of(prediction, len(reference))), spans(reference)


def _ner(predictions, references):
    if all(isinstance(r, list) for r in references):  # BIO references: seqeval itself
        # heavy: module docstring
        from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

        gold = [list(r) for r in references]
        predicted = [tags_of(p, len(r)) for p, r in zip(predictions, references)]
        precision, recall, f1, _ = precision_recall_fscore_support(
            gold, predicted, average="micro", zero_division=0)
        return {"precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * f1}
    hits = n_predicted = n_gold = 0  # micro average, as seqeval averages
    for p, r in zip(predictions, references):
        predicted, gold = _entity_sets(p, r)
        hits, n_predicted, n_gold = hits + len(predicted & gold), n_predicted + len(predicted), \
            n_gold + len(gold)
    precision = hits / n_predicted if n_predicted else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * f1}


def _qa(predictions, references):
    n = len(references)
    return {"exact_match": 100.0 * sum(map(qa_exact, predictions, references)) / n,
            "f1": 100.0 * sum(map(qa_f1, predictions, references)) / n}


def _ts(predictions, references, keys=("bleu", "chrf")):
    import sacrebleu  # heavy: module docstring

    hypotheses = [p or "" for p in predictions]
    scorers = {"bleu": sacrebleu.corpus_bleu, "chrf": sacrebleu.corpus_chrf}
    return {k: scorers[k](hypotheses, [list(references)]).score for k in keys}


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    # heavy (rouge-score and nltk, about 2 s to import): module docstring
    from rouge_score import rouge_scorer, tokenize
    from rouge_score.tokenizers import Tokenizer

    class CachedStemTokenizer(Tokenizer):
        """rouge-score's own tokenisation with Porter stemming, each word stemmed once
        (stemming dominated the cost of scoring summaries)."""

        def __init__(self):
            from nltk.stem import porter  # heavy: as rouge-score above
            self._stem = functools.lru_cache(maxsize=1 << 16)(porter.PorterStemmer().stem)

        def tokenize(self, text):
            return tokenize.tokenize(text, self)

        def stem(self, word):
            return self._stem(word)

    return rouge_scorer.RougeScorer(["rouge1", "rouge2"], tokenizer=CachedStemTokenizer())


def lcs_length(a, b):
    """Length of the longest common subsequence of two token lists, bit-parallel
    (Hyyro 2004): the same number as rouge-score's O(len(a) * len(b)) table, which
    was most of the cost of scoring summaries."""
    masks = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = (v + u) | (v - u)
    return len(a) - bin(v & full).count("1")


@functools.lru_cache(maxsize=1 << 15)
def rouge_f1(reference, prediction):
    """(ROUGE-1, ROUGE-2, ROUGE-L) F1 of one summary, as rouge-score computes them
    with use_stemmer=True. The same pair recurs across metrics, test cases and the
    oracle, so it is scored once."""
    scorer = _rouge_scorer()
    scores = scorer.score(reference, prediction)
    target, predicted = scorer._tokenizer.tokenize(reference), scorer._tokenizer.tokenize(prediction)
    if not target or not predicted:
        rouge_l = 0.0
    else:
        lcs = lcs_length(target, predicted)
        precision, recall = lcs / len(predicted), lcs / len(target)
        rouge_l = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return scores["rouge1"].fmeasure, scores["rouge2"].fmeasure, rouge_l


def _sg(predictions, references):
    totals = [0.0, 0.0, 0.0]
    for p, r in zip(predictions, references):
        for k, value in enumerate(rouge_f1(r, p or "")):
            totals[k] += value
    n = len(references)
    return {"rouge1": 100.0 * totals[0] / n, "rouge2": 100.0 * totals[1] / n,
            "rougeL": 100.0 * totals[2] / n}


@functools.lru_cache(maxsize=1 << 15)
def _sentence_chrf(prediction, reference):
    import sacrebleu  # heavy: module docstring
    return sacrebleu.sentence_chrf(prediction, [reference]).score / 100.0


CORPUS_SCORERS = {"MC": _mc, "TC": _tc, "NER": _ner, "QA": _qa, "TS": _ts, "SG": _sg}
# The score that stands for a task type in the headline Accuracy (task_types.yaml
# names it by its metric; this is the key in the dict above).
PRIMARY = {"MC": "accuracy", "TC": "accuracy", "NER": "f1", "QA": "f1", "TS": "bleu",
           "SG": "rougeL"}


def score_task(task_type, predictions, references, keys=None):
    """Corpus scores (0-100) of one task type's items; empty dict without items.
    ``keys`` limits the work to some scores (chrF, for one, costs as much as BLEU)."""
    if not references:
        return {}
    code = get_task_type(task_type).code
    if code == "TS" and keys is not None:
        return _ts(list(predictions), list(references), tuple(keys))
    return CORPUS_SCORERS[code](list(predictions), list(references))


# -- one item --------------------------------------------------------------------

def item_score(task_type, prediction, reference):
    """One item's quality on 0-1: exactness for MC/TC, entity F1 for NER, token F1
    for QA, chrF for TS, ROUGE-L F1 for SG."""
    code = get_task_type(task_type).code
    if prediction is None:
        return 0.0
    if code == "MC":
        return float(extract_choice(str(prediction), "ABCDEFGHIJ") == reference)
    if code == "TC":
        return float(prediction == reference)
    if code == "NER":
        return entity_prf(*_entity_sets(prediction, reference))[2]
    if code == "QA":
        return qa_f1(prediction, reference)
    if code == "TS":
        return _sentence_chrf(prediction, reference)
    return rouge_f1(reference, prediction)[2]


_LETTERS = "ABCDEFGHIJ"  # up to MMLU-Pro's ten options


def is_correct(prediction, gold):
    """Whether a multiple-choice prediction picks the gold option: the fast path of
    MC accuracy over 10^5 items (other task types go through ``item_score``)."""
    if prediction is None:
        return False
    if type(prediction) is str and type(gold) is str and len(prediction) == len(gold) == 1:
        return prediction == gold and prediction in _LETTERS  # bare letters, the usual case
    choice = extract_choice(str(gold), _LETTERS)
    return choice is not None and extract_choice(str(prediction), _LETTERS) == choice
