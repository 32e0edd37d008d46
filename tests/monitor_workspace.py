"""A small workspace for the monitor's tests: one job with three ranked cases (a
simulated one whose algorithm has a hostile name, a real one, a fleet case with
rounds), as ``edgellm run`` lays them out, written in milliseconds."""

import json
import os

import yaml

HOSTILE = "<img src=x onerror=alert(1)>"
SELECTED = ["algorithm", "Accuracy", "Edge Ratio", "paradigm", "hard_example_mining"]
EXTRA = ["Errors", "edgemodel-backend", "edgemodel-model"]


def _case(folder, backend, records, metrics, rounds=None):
    os.makedirs(folder)
    config = {"modules": [
        {"type": "edgemodel", "name": "EdgeModel", "hyperparameters": {
            "backend": backend, "model": "Qwen/Qwen2.5-1.5B-Instruct"}},
        {"type": "cloudmodel", "name": "CloudModel", "hyperparameters": {
            "backend": "simulated", "model": "gpt-4o-mini"}}]}
    with open(os.path.join(folder, "config.yaml"), "w") as handle:
        yaml.safe_dump(config, handle)
    with open(os.path.join(folder, "metrics.json"), "w") as handle:
        json.dump(metrics, handle)
    with open(os.path.join(folder, "results.jsonl"), "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    with open(os.path.join(folder, "latency_per_round.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")  # a plot the page links (its bytes are not drawn)
    if rounds:
        with open(os.path.join(folder, "rounds.csv"), "w") as handle:
            handle.write(rounds)


def _record(i, round_number=None, node="orin-nano", tier="edge", gold="A"):
    answer = {"prediction": "A" if i % 2 == 0 else "B", "tier": tier, "node": node,
              "model": "qwen2.5-1.5b", "task_type": "multiple_choice",
              "perf": {"e2e_latency": 0.5 + i / 10}, "error": None}
    if round_number is not None:
        answer["round"] = round_number
    return {"index": i, "id": i, "gold": gold, "is_hard": tier == "cloud",
            "edge": answer if tier == "edge" else None, "cloud": answer if tier == "cloud"
            else None}


ROUNDS = ("round,node,tasks,queue_len,e2e_mean_s,e2e_p95_s,ttft_mean_s,cache,caching_round\n"
          "0,orin-nano,2,1,0.55,0.6,0.1,qwen2.5-1.5b,0\n0,cloud,1,0,0.7,0.7,0.2,,0\n"
          "1,orin-nano,2,1,0.75,0.8,0.1,qwen2.5-1.5b;llama-3.2-3b,1\n1,cloud,0,0,,,,,0\n")


def write_workspace(root, simulated_column=False):
    """``root``/job-a with its rank files and case folders; returns the workspace."""
    job = os.path.join(root, "job-a")
    cases = [
        (HOSTILE, "simulated", "61.5", [_record(i) for i in range(4)], None),
        ("real-model", "openai", "88.25", [_record(i) for i in range(4)], None),
        ("fleet", "simulated", "72.0", [_record(0, 0), _record(1, 0),
                                        _record(2, 0, "cloud", "cloud"),
                                        _record(3, 1), _record(4, 1)], ROUNDS),
    ]
    header = ["rank", *SELECTED, *EXTRA] + (["simulated"] if simulated_column else []) + \
        ["time", "url"]
    lines = [",".join(header)]
    for rank, (name, backend, accuracy, records, rounds) in enumerate(cases, 1):
        folder = os.path.join(job, "algo", f"case-{rank}")
        _case(folder, backend, records, {"Accuracy": float(accuracy)}, rounds)
        cells = [str(rank), f'"{name}"', accuracy, "50.0", "jointinference", "RandomRouter",
                 "0", backend, "Qwen/Qwen2.5-1.5B-Instruct"]
        if simulated_column:
            cells.append("True" if backend == "simulated" else "False")
        lines.append(",".join(cells + ["2026-01-01 00:00:00", folder]))
    os.makedirs(os.path.join(job, "rank"))
    with open(os.path.join(job, "rank", "all_rank.csv"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    selected = [",".join(["rank", *SELECTED, "time", "url"])]
    with open(os.path.join(job, "rank", "selected_rank.csv"), "w") as handle:
        handle.write("\n".join(selected) + "\n")
    return root
