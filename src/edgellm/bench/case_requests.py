"""What a test case's requests came to, per model (edge, cloud): answered from the
response store, called, failed; and the rule that makes a case whose requests failed
a failed case (``edgellm run --max-failed-share``).

A case whose every request failed (an endpoint down, a wrong model name) has no
figures worth ranking: Accuracy is empty and Edge Ratio and Cost describe requests
that never got an answer. So, by default, a model all of whose requests in a case
failed fails the case; ``max_failed_share`` makes the rule stricter.
"""

from dataclasses import dataclass

# (model, index of its response in a joint-inference result [hard, res, edge, cloud])
SIDES = (("edge", 2), ("cloud", 3))


class FailedRequests(RuntimeError):
    """Too many of a model's requests failed for the case to count."""


@dataclass
class ModelRequests:
    """One model's responses in one case. ``replayed``: from the response store;
    ``called``: asked of the model in this run; ``failed``: with an error (of either)."""

    side: str
    simulated: bool = False
    replayed: int = 0
    called: int = 0
    failed: int = 0
    estimated: int = 0  # token counts estimated (no usage from the server, no tokenizer)
    first_error: str = None

    @property
    def total(self):
        return self.replayed + self.called

    def describe(self):
        if self.simulated:
            return f"{self.side} model simulated"
        failed = f" ({self.failed} failed)" if self.failed else ""
        estimated = f"; {self.estimated} with estimated token counts" \
            if self.estimated else ""
        return (f"{self.side} model {self.called} called{failed}, {self.replayed} "
                f"replayed from the response store{estimated}")


def count_requests(results, is_simulated):
    """{side: ModelRequests} of the models that answered in ``results``;
    ``is_simulated(side)`` says whether that side's model is simulated (asked only for
    models that answered: asking may build the backend)."""
    counts = {}
    for side, index in SIDES:
        count = ModelRequests(side)
        for result in results:
            response = result[index]
            if not isinstance(response, dict):
                continue
            if response.get("replayed"):
                count.replayed += 1
            else:
                count.called += 1
            if response.get("usage_estimated"):
                count.estimated += 1
            if response.get("error"):
                count.failed += 1
                if count.first_error is None:
                    count.first_error = (str(response["error"]).splitlines() or [""])[0]
        if count.total:
            count.simulated = bool(is_simulated(side))
            counts[side] = count
    return counts


def check_failed_share(counts, max_failed_share=None):
    """Raise ``FailedRequests`` when, for a model, more than ``max_failed_share`` of
    its requests failed (None: when all of them did)."""
    for count in counts.values():
        if not count.failed:
            continue
        if max_failed_share is None:
            too_many, rule = count.failed == count.total, ""
        else:
            too_many = count.failed > max_failed_share * count.total
            rule = f", more than --max-failed-share {max_failed_share:g} allows"
        if too_many:
            raise FailedRequests(f"{count.side} model: {count.failed} of {count.total} "
                                 f"requests failed{rule} (first: {count.first_error})")
