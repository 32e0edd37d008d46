"""Which model was on which node, when: spans of residence and transfer marks.

A span is ``{"id", "node", "model", "start", "end"}`` (``end`` None while the model is
still there); a mark is ``{"time", "node", "model", "kind"}`` with kind ``start``,
``done`` or ``failed``. Live, the times are wall-clock seconds and the spans follow
the nodes' heartbeats (a node that stops reporting closes its spans); after a run,
they are round numbers read from rounds.csv's ``cache`` column. Both are bounded.
"""

import collections
import itertools

TRANSFER_MARKS = {"transfer_start": "start", "transfer_done": "done",
                  "transfer_failed": "failed"}


class CacheTimeline:
    def __init__(self, limit=5000):
        self.spans = collections.deque(maxlen=limit)
        self.marks = collections.deque(maxlen=limit)
        self._open = {}      # (node, model) -> its open span
        self._ids = itertools.count(1)

    def update(self, node, models, now):
        """``node`` holds ``models`` at ``now``; returns the spans that changed."""
        held = set(models)
        changed = []
        for key in [k for k in self._open if k[0] == node and k[1] not in held]:
            span = self._open.pop(key)
            span["end"] = now
            changed.append(span)
        for model in sorted(held):
            if (node, model) not in self._open:
                span = {"id": next(self._ids), "node": node, "model": model, "start": now,
                        "end": None}
                self._open[(node, model)] = span
                self.spans.append(span)
                changed.append(span)
        return changed

    def mark(self, event):
        """A transfer event of the center's log as a mark; None for other events."""
        kind = TRANSFER_MARKS.get(event.get("kind"))
        if kind is None:
            return None
        mark = {"time": event["time"], "node": event.get("node"), "model": event.get("model"),
                "kind": kind}
        self.marks.append(mark)
        return mark

    def view(self):
        return {"spans": list(self.spans), "marks": list(self.marks)}


def timeline_of_rounds(rows):
    """The timeline of a finished fleet run from its round log (rounds.csv's rows, as
    dicts: round, node, cache "a;b"): spans in rounds, a ``done`` mark where a model
    arrived on a node after the first round."""
    timeline = CacheTimeline(limit=None)
    by_round = {}
    for row in rows:
        if row.get("node") != "cloud":
            by_round.setdefault(float(row["round"]), []).append(row)
    first = min(by_round, default=0.0)
    for number in sorted(by_round):
        for row in by_round[number]:
            models = [m for m in (row.get("cache") or "").split(";") if m]
            for span in timeline.update(str(row["node"]), models, number):
                if span["end"] is None and number > first:
                    timeline.marks.append({"time": number, "node": str(row["node"]),
                                           "model": span["model"], "kind": "done"})
    return timeline.view()
