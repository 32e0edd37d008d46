"""benchmarks/sim_to_real.py --replay: the clock against a recorded run, without a
server. The records here are made by a one-at-a-time FIFO server written out in a few
lines, so the expected errors are known: none for a server that works as the clock
models it, some for one that does not."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "sim_to_real.py"
OVERHEAD, PREFILL, DECODE = 0.05, 1000.0, 100.0  # s, tokens/s, tokens/s
TOPOLOGY = {
    "name": "recorded", "nodes": [{"id": "n", "memory_gb": 8, "speed": 1.0, "slots": 1,
                                   "link": {"bandwidth_mbps": 1000, "rtt_ms": 0},
                                   "models": ["tiny"]}],
    "models": [{"id": "tiny", "profile": "Qwen/Qwen2.5-0.5B-Instruct",
                "sizes_gb": {"q8_0": 0.03}, "quantization": "q8_0", "load_s_per_gb": 1.0,
                "prefill_tokens_per_s": PREFILL, "decode_tokens_per_s": DECODE,
                "overhead_s": OVERHEAD}],
    "cloud": {"profile": "gpt-4o-mini", "rtt_ms": 250}}


def fifo_server(arrivals, tokens, front_overlaps):
    """(TTFT, e2e) per request of a one-at-a-time server: each costs OVERHEAD, then its
    prefill and decode. ``front_overlaps``: a waiting request pays OVERHEAD while it
    waits (the clock's model), else only once the request ahead has finished."""
    free, out = float("-inf"), []
    for arrival, (prompt, completion) in zip(arrivals, tokens):
        front = OVERHEAD if front_overlaps else 0.0
        start = max(arrival, free - front)
        prefill = OVERHEAD + prompt / PREFILL
        end = start + prefill + (completion - 1) / DECODE
        out.append((start - arrival + prefill, end - arrival))
        free = end
    return out


def record(path, front_overlaps, shares=(0.3, 0.85), n=400):
    rng = np.random.default_rng(0)
    tokens = list(zip(rng.integers(20, 200, n).tolist(), rng.integers(8, 48, n).tolist()))
    service = np.mean([OVERHEAD + p / PREFILL + (c - 1) / DECODE for p, c in tokens])
    rates = []
    for share in shares:
        gaps = rng.exponential(service / share, n)
        arrivals = np.cumsum(gaps) - gaps[0]
        timings = fifo_server(arrivals, tokens, front_overlaps)
        rates.append({"share": share, "rate": share / service,
                      "topology": yaml.safe_dump(TOPOLOGY), "load_average": 0.0,
                      "requests": [{"arrival_s": float(a), "prompt_tokens": p,
                                    "completion_tokens": c, "ttft": t, "e2e": e}
                                   for a, (p, c), (t, e) in zip(arrivals, tokens, timings)]})
    path.write_text(json.dumps({"machine": "made by the test", "rates": rates}))
    return path


def replay(path):
    return subprocess.run([sys.executable, str(BENCHMARK), "--replay", str(path)],
                          capture_output=True, text=True, timeout=120)


def clock_error(stdout):
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("clock error: p50 ")
    p50, p95 = (float(part.split()[-2]) for part in last[len("clock error: "):].split(","))
    return p50, p95


def test_a_server_working_as_the_clock_models_replays_without_error(tmp_path):
    done = replay(record(tmp_path / "run.json", front_overlaps=True))
    assert done.returncode == 0, done.stderr
    assert clock_error(done.stdout) == (0.0, 0.0)
    assert done.stdout.count("server busy") == 2
    assert "(+0.0 %)" in done.stdout  # the busy time, the slot's only


def test_a_server_that_holds_its_slot_for_the_fixed_cost_is_missed(tmp_path):
    """The clock pays a waiting request's fixed cost while it waits; a server that
    does not overlap it queues longer near saturation, and the replay shows it."""
    done = replay(record(tmp_path / "run.json", front_overlaps=False))
    assert done.returncode == 0, done.stderr
    p50, p95 = clock_error(done.stdout)
    assert p50 > 5.0 and p95 > 2.0


def _changed(good, change):
    record = json.loads(json.dumps(good))
    change(record)
    return record


def test_a_bad_record_is_one_line_and_exit_2(tmp_path):
    good = json.loads(record(tmp_path / "run.json", True, shares=(0.3,), n=20).read_text())
    def set_row(key, value):  # the fourth request of the first rate
        return lambda r: r["rates"][0]["requests"][3].__setitem__(key, value)

    cases = {  # file: (content, what its one line says)
        "missing.json": (None, "No such file"),
        "broken.json": ("{", "a record of sim_to_real --record: Expecting"),
        "a-list.json": ([], "expected a record of --record (a JSON object), got list"),
        "no-rates.json": ({"machine": "x"}, "key 'rates': missing"),
        "no-rate-run.json": ({"rates": []}, "key 'rates': empty list"),
        "no-requests.json": (_changed(good, lambda r: r["rates"][0].pop("requests")),
                             "key 'rates[0].requests': missing"),
        "share-text.json": (_changed(good, lambda r: r["rates"][0].update(share="30%")),
                            "key 'rates[0].share': expected int or float, got str"),
        "nan.json": (_changed(good, set_row("e2e", float("nan"))),
                     "key 'rates[0].requests[3].e2e': expected a finite number"),
        "empty-answer.json": (_changed(good, set_row("completion_tokens", 0)),
                              "key 'rates[0].requests[3].completion_tokens': expected a "
                              "whole number >= 1"),
        "ttft-text.json": (_changed(good, set_row("ttft", "fast")),
                           "key 'rates[0].requests[3].ttft': expected int or float, "
                           "got str"),
        "ttft-after-end.json": (_changed(good, set_row("ttft", 99.0)),
                                "key 'rates[0].requests[3]': needs 0 <= ttft <= e2e"),
        "bad-topology.json": (_changed(good, lambda r: r["rates"][0].update(
            topology=yaml.safe_dump(dict(TOPOLOGY, models=[dict(TOPOLOGY["models"][0],
                                                                overhead_s=-1)])))),
            "key 'rates[0].topology': key 'models[0].overhead_s'"),
        "not-yaml.json": (_changed(good, lambda r: r["rates"][0].update(topology="a: [")),
                          "key 'rates[0].topology': line 2: invalid YAML"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        done = replay(path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and done.stdout == "", (name, done.stdout, done.stderr)
        assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], \
            (name, lines)


def test_the_kept_records_replay(tmp_path):
    """The real runs kept in benchmarks/records (docs/llama-cpp.md's figures) replay
    through today's clock: every rate reported, a clock error line."""
    for name, rates in (("sim_to_real-run-0.json", 3), ("sim_to_real-run-E.json", 2)):
        done = replay(BENCHMARK.parent / "records" / name)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("\nrate ") == rates and done.stdout.count("server busy") == rates
        clock_error(done.stdout)
