"""``CascadeRouter`` (inference-then-mining): the edge model answers first, and the
router escalates an answer that failed, is malformed, has a low mean token
log-probability or a high verifier score."""

import json
import logging

from edgellm.routing.base import Router
from edgellm.routing.scoring import ScoringRouter
from edgellm.tasks.registry import get_task_type

LOG = logging.getLogger(__name__)


class CascadeRouter(Router):
    """Inference-then-mining: the edge model answers first and this router sees its
    response (edgellm.records.Response); True sends the query on to the cloud. It escalates
    when the edge answer

    - failed (``error`` set; ``escalate_errors``, default true);
    - is malformed for its task type (``escalate_malformed``, default true): no
      option letter (multiple choice) or label (classification) could be read, an
      empty answer (QA, translation, summary), no entity list (NER). Responses
      replayed from an outcome matrix carry no text and are never malformed;
    - has a mean token log-probability below ``logprob_threshold`` (default: off),
      where the backend reports one (vLLM, Hugging Face, OpenAI-compatible with
      logprobs); answers without one are not judged by it;
    - gets a verifier score >= ``verifier_threshold`` (default: the verifier's own
      threshold): ``verifier_path`` is a saved ScoringRouter (e.g. a TfidfRouter)
      trained on ``CascadeRouter.verifier_sample(response)`` of past edge answers
      with "edge wrong" labels (docs/routers.md).

    ``reasons(response)`` lists why it escalates; ``cleanup`` logs the counts."""

    REASONS = ("error", "malformed", "low_logprob", "verifier")
    FILE_SETTINGS = ("verifier_path",)

    def __init__(self, logprob_threshold=None, escalate_malformed=True, escalate_errors=True,
                 verifier_path=None, verifier_threshold=None, **unknown):
        super().__init__(**unknown)
        self.logprob_threshold = logprob_threshold
        self.escalate_malformed = escalate_malformed
        self.escalate_errors = escalate_errors
        self.verifier_path = verifier_path
        self.verifier_threshold = verifier_threshold
        self._verifier = None
        self.counts = dict.fromkeys(("routed", "escalated", *self.REASONS), 0)

    @staticmethod
    def verifier_sample(response):
        """The sample a verifier scores for an edge response: its answer text (the
        completion, else the prediction) and task type."""
        text = response.get("completion")
        if text is None:
            prediction = response.get("prediction")
            text = "" if prediction is None else (prediction if isinstance(prediction, str)
                                                  else json.dumps(prediction))
        return {"query": str(text), "task_type": response.get("task_type")}

    @staticmethod
    def is_malformed(response):
        """Whether an answer text was recorded but no answer could be read from it."""
        if response.get("completion") is None:  # no text recorded (outcome replays)
            return False
        prediction = response.get("prediction")
        if get_task_type(response.get("task_type") or "multiple_choice").code == "NER":
            return not isinstance(prediction, dict)
        return prediction is None or (isinstance(prediction, str) and not prediction.strip())

    def _check(self, response):
        if not isinstance(response, dict):
            raise ValueError(f"CascadeRouter expects the edge model's response dict, got "
                             f"{type(response).__name__}")
        if "query" in response and not ("completion" in response or "prediction" in response):
            raise ValueError("CascadeRouter got a query, not the edge's response: set "
                             "hard_example_mining_mode: inference-then-mining in testenv.yaml")

    def _verifier_scores(self, responses):
        if not self.verifier_path:
            return None
        if self._verifier is None:
            verifier = ScoringRouter.load(self.verifier_path)
            threshold = (verifier.threshold_ if self.verifier_threshold is None
                         else float(self.verifier_threshold))
            self._verifier = (verifier, threshold)
        verifier, threshold = self._verifier
        return verifier.score([self.verifier_sample(r) for r in responses]) >= threshold

    def reasons(self, response, verifier_flag=None):
        self._check(response)
        found = []
        if self.escalate_errors and response.get("error"):
            found.append("error")
        if self.escalate_malformed and not response.get("error") and self.is_malformed(response):
            found.append("malformed")
        logprob = response.get("mean_logprob")
        if self.logprob_threshold is not None and logprob is not None \
                and float(logprob) < float(self.logprob_threshold):
            found.append("low_logprob")
        if verifier_flag is None and self.verifier_path:
            verifier_flag = bool(self._verifier_scores([response])[0])
        if verifier_flag:
            found.append("verifier")
        return found

    def route_batch(self, responses):
        responses = list(responses)
        for r in responses:
            self._check(r)
        flags = self._verifier_scores(responses)
        decisions = []
        for i, response in enumerate(responses):
            found = self.reasons(response, None if flags is None else bool(flags[i]))
            self.counts["routed"] += 1
            self.counts["escalated"] += bool(found)
            for reason in found:
                self.counts[reason] += 1
            decisions.append(bool(found))
        return decisions

    def __call__(self, data=None):
        return self.route_batch([data])[0]

    def cleanup(self):
        LOG.info("CascadeRouter: %s", ", ".join(f"{k}={v}" for k, v in self.counts.items()))
