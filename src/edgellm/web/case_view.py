"""One test case's folder, as its page shows it: config.yaml, metrics.json, the first
results, the plots it has and, for a fleet case, its rounds (the round charts from
results.jsonl, the cache timeline from rounds.csv)."""

import itertools
import os

import orjson

from edgellm.rows import read_rows
from edgellm.web.cache_timeline import timeline_of_rounds
from edgellm.web.round_stats import RoundStats

ROUNDS_CSV = "rounds.csv"  # the fleet's round log (edgellm.fleet.rounds; pandas not needed)
SAMPLE = 20          # results shown
TEXT_LIMIT = 200     # characters of a query or answer shown in the sample
CONFIG_LIMIT = 200_000


def case_files(folder):
    """The plots (``*.png``) and whether the case has a round log."""
    names = sorted(os.listdir(folder))
    return [n for n in names if n.lower().endswith(".png")], ROUNDS_CSV in names


def case_view(folder):
    plots, has_rounds = case_files(folder)
    return {"config": _text(os.path.join(folder, "config.yaml")),
            "metrics": _json(os.path.join(folder, "metrics.json")),
            "error": _text(os.path.join(folder, "error.txt")),
            "results": results_sample(os.path.join(folder, "results.jsonl")),
            "plots": plots, "has_rounds": has_rounds}


def results_sample(path, limit=SAMPLE):
    """The first ``limit`` results: the answer that counted, shortened."""
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, "rb") as handle:
        for line in itertools.islice(handle, limit):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            answer = record.get("cloud") if record.get("is_hard") else record.get("edge")
            answer = answer or {}
            rows.append({"id": record.get("id", record.get("index")),
                         "tier": answer.get("tier") or ("cloud" if record.get("is_hard")
                                                        else "edge"),
                         "node": answer.get("node"), "model": answer.get("model"),
                         "task_type": answer.get("task_type"),
                         "gold": _short(record.get("gold")),
                         "prediction": _short(answer.get("prediction")),
                         "e2e_s": (answer.get("perf") or {}).get("e2e_latency"),
                         "error": _short(answer.get("error"))})
    return rows


def case_rounds(folder):
    """A fleet case's round rows and cache timeline (x: rounds); None without rounds."""
    log = os.path.join(folder, ROUNDS_CSV)
    if not os.path.isfile(log):
        return None
    stats = RoundStats(max_rounds=100_000)
    results = os.path.join(folder, "results.jsonl")
    if os.path.isfile(results):
        for _, record in read_rows(results):
            if isinstance(record, dict):  # a broken line is left out, not fatal
                answer = record.get("cloud") if record.get("is_hard") else record.get("edge")
                if answer:
                    stats.add(answer, record.get("gold"))
        stats.score_all()
    rows = [row for _, row in read_rows(log) if isinstance(row, dict)]
    return {"rows": stats.rows(), "cache": timeline_of_rounds(rows)}


def _text(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(CONFIG_LIMIT)


def _json(path):
    try:
        with open(path, "rb") as handle:
            return orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return None


def _short(value):
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "..."
