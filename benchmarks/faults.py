"""Can the numbers be trusted under faults? (issue 14)

Runs the example's main job (examples/edge-llm-distribution/benchmarkingjob.yaml:
edge-only, cloud-only, random-router and oracle-router, 10 test cases over 160
multiple-choice items) with its edge and cloud models on ``backend: openai``, each
against a loopback OpenAI-compatible server (edgellm.testing.openai_server, in this
process; ``edgellm run`` in a child process, as a user runs it): once without faults,
then once per fault, the fault hitting a seeded share of the requests to both servers
(--rate, default 30 %):

    429 (Retry-After 0.1 s), 500, hang before the headers, stall mid-stream, reset
    mid-stream (connection dropped), malformed JSON, early end (the stream closes
    cleanly after 2 tokens without finish_reason), and a dead cloud endpoint (nothing
    listening: every cloud request, not a share).

Every run starts from an empty workspace and response store; within a run the later
cases replay what the earlier ones stored (as any run of this job does). Per fault it
prints, all read from that run's files and the servers' request logs:

- exit: `edgellm run`'s exit status; failed: test cases that failed (not ranked);
- calls: responses asked of a model (not replayed), in the cases' results.jsonl;
- requests: HTTP requests the servers received (every attempt; calls + retries);
- faulted: requests the servers answered with the fault;
- retries: the records' attempts beyond the first;
- Errors: the Errors metric, summed over the cases that computed it;
- accuracy: over the answered (case, item) pairs, against the no-fault run's
  accuracy on the same pairs, and how many answers differ from the no-fault run's;
- stored, incomplete: rows in the response store, and those that are not the
  server's whole answer. A stored row is complete when its completion is exactly
  the text the server streams for its messages (the loopback server's answer is a
  pure function of the messages: ``completion_for``) and its completion-token count
  is that answer's length. Must be 0.

Timings are kept short for loopback (say so where figures are quoted): client
timeout 0.5 s per chunk, backoff 0.02 s doubling to at most 0.2 s, max_retries 4,
max_connection_failures 5; servers: first token after 5 ms, 1 ms per token, 8 tokens,
hangs and stalls of 1.5 s.

    python benchmarks/faults.py [--rate 0.3] [--seed 0] [--only early,reset]

Exit status 0 when no stored row is incomplete in any run.
"""

import argparse
import glob
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing

import yaml

from edgellm.testing.openai_server import Fault, LoopbackOpenAIServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join("examples", "edge-llm-distribution")
ROUTING = os.path.join(EXAMPLE, "testalgorithms", "query-routing")
JOB = os.path.join(EXAMPLE, "benchmarkingjob.yaml")
ALGORITHMS = ("edge-only", "cloud-only", "random-router", "oracle-router")

CLIENT = {"api_key_env": "none", "timeout": 0.5, "backoff_base": 0.02, "backoff_max": 0.2,
          "max_retries": 4, "max_connection_failures": 5, "max_concurrency": 8}
SERVER = {"first_token_delay": 0.005, "token_delay": 0.001, "completion_tokens": 8,
          "hang_s": 1.5}
FAULTS = {  # name: (Fault kind, options)
    "429 Retry-After": (429, {"retry_after": 0.1}),
    "500": (500, {}),
    "hang before headers": ("timeout", {}),
    "stall mid-stream": ("stall", {}),
    "reset mid-stream": ("reset", {}),
    "malformed JSON": ("malformed", {}),
    "early end": ("early", {}),
    "dead cloud endpoint": (None, {}),
}


def write_job(folder, edge_url, cloud_url):
    """The example in ``folder`` with its edge and cloud models on the servers."""
    shutil.copytree(os.path.join(REPO, EXAMPLE), os.path.join(folder, EXAMPLE),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ALGORITHMS:
        path = os.path.join(folder, ROUTING, f"{name}.yaml")
        with open(path) as handle:
            algorithm = yaml.safe_load(handle)
        for module in algorithm["algorithm"]["modules"]:
            url = {"edgemodel": edge_url, "cloudmodel": cloud_url}.get(module["type"])
            if url is None:
                continue
            params = {k: v for hp in module["hyperparameters"] for k, v in hp.items()}
            params.pop("seed", None)  # the simulated backend's; greedy decoding here
            params.update({"backend": {"values": ["openai"]},
                           "base_url": {"values": [url]},
                           **{k: {"values": [v]} for k, v in CLIENT.items()}})
            module["hyperparameters"] = [{k: v} for k, v in params.items()]
        with open(path, "w") as handle:
            yaml.safe_dump(algorithm, handle, sort_keys=False)


def run_job(folder):
    """(exit status, wall seconds, stderr) of `edgellm run` on the job in ``folder``."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "edgellm.cli", "run", "-f", JOB,
                             "--no-progress"], cwd=folder, capture_output=True, text=True)
    return result.returncode, time.perf_counter() - start, result.stderr


def case_key(case_dir):
    """A test case's identity across runs: its algorithm and module settings, without
    the server addresses (they differ between runs)."""
    with open(os.path.join(case_dir, "config.yaml")) as handle:
        config = yaml.safe_load(handle)
    modules = [(m["type"], m["name"], sorted((k, str(v)) for k, v in m["hyperparameters"]
                                             .items() if k != "base_url"))
               for m in config["modules"]]
    return json.dumps([config["algorithm"]["name"], modules])


def read_run(folder):
    """Per test case (by case_key): its records, metrics (or None) and whether it
    failed."""
    cases = {}
    workspace = os.path.join(folder, "workspace", "query-routing")
    for case_dir in glob.glob(os.path.join(workspace, "*", "*")):
        if not os.path.exists(os.path.join(case_dir, "config.yaml")):
            continue
        records, metrics = [], None
        if os.path.exists(os.path.join(case_dir, "results.jsonl")):
            with open(os.path.join(case_dir, "results.jsonl")) as handle:
                records = [json.loads(line) for line in handle]
        if os.path.exists(os.path.join(case_dir, "metrics.json")):
            with open(os.path.join(case_dir, "metrics.json")) as handle:
                metrics = json.load(handle)
        failed = os.path.exists(os.path.join(case_dir, "error.txt"))
        cases[case_key(case_dir)] = (records, metrics, failed)
    return cases


def responses(records):
    for record in records:
        for side in ("edge", "cloud"):
            if record[side] is not None:
                yield side, record[side]


def incomplete_rows(folder, server):
    """(stored rows, rows that are not the server's whole answer) in the run's store."""
    path = os.path.join(folder, "workspace", "responses.sqlite")
    if not os.path.exists(path):
        return 0, 0
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT messages, response FROM responses").fetchall()
    bad = 0
    for messages, response in rows:
        tokens, _ = server.completion_for(json.loads(messages))
        response = json.loads(response)
        whole = (response.get("completion") == "".join(tokens)
                 and (response.get("usage") or {}).get("completion_tokens") == len(tokens))
        bad += not whole
    return len(rows), bad


def summarise(folder, servers, baseline=None):
    cases = read_run(folder)
    calls = retries = errors = 0
    for records, metrics, _ in cases.values():
        for _, response in responses(records):
            if not response.get("replayed"):
                calls += 1
                retries += response.get("attempts", 1) - 1
        if metrics is not None:
            errors += int(metrics.get("Errors") or 0)
    # accuracy on the answered (case, item) pairs, and the no-fault run's on the same
    right = base_right = answered = differ = 0
    for key, (records, _, _) in cases.items():
        base_records = baseline[key][0] if baseline and key in baseline else None
        for i, record in enumerate(records):
            res = record["cloud"] if record["is_hard"] else record["edge"]
            if res is None or res.get("error"):
                continue
            answered += 1
            right += res.get("prediction") == record["gold"]
            if base_records is not None:
                base = base_records[i]
                base_res = base["cloud"] if base["is_hard"] else base["edge"]
                base_right += base_res.get("prediction") == base["gold"]
                differ += base_res.get("completion") != res.get("completion")
    stored, incomplete = incomplete_rows(folder, servers[0])
    return {"cases": cases, "calls": calls, "retries": retries, "errors": errors,
            "answered": answered, "accuracy": 100 * right / answered if answered else None,
            "base_accuracy": 100 * base_right / answered if answered and baseline else None,
            "differ": differ, "stored": stored, "incomplete": incomplete,
            "failed": sum(1 for _, _, failed in cases.values() if failed)}


def dead_address():
    """An address where nothing listens (bound, never listening: refused, and ours)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.3,
                        help="share of requests a fault hits (default 0.3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated fault names (default: all)")
    args = parser.parse_args()
    names = [n for n in FAULTS if not args.only or n in args.only.split(",")]
    header = (f"{'fault':<22} {'exit':>4} {'failed':>6} {'calls':>6} {'requests':>8} "
              f"{'faulted':>7} {'retries':>7} {'Errors':>6} {'accuracy (no-fault)':>20} "
              f"{'differ':>6} {'stored':>6} {'incomplete':>10} {'wall':>7}")
    print(f"the example's main job (10 test cases x 160 items), edge and cloud on "
          f"backend openai, loopback servers; faults hit {100 * args.rate:.0f} % of requests"
          f" (seeded {args.seed})\n")
    print(header)
    any_incomplete = False
    baseline = None
    with LoopbackOpenAIServer(**SERVER) as edge, LoopbackOpenAIServer(**SERVER) as cloud, \
            tempfile.TemporaryDirectory() as tmp:
        for name in ["no fault", *names]:
            for server in (edge, cloud):
                server.clear()
            kind, options = FAULTS.get(name, (None, {}))
            if kind is not None:
                edge.inject(Fault(kind, times=None, share=args.rate, seed=args.seed,
                                  **options))
                cloud.inject(Fault(kind, times=None, share=args.rate, seed=args.seed + 1,
                                   **options))
            dead = None
            cloud_url = cloud.base_url
            if name == "dead cloud endpoint":
                dead, cloud_url = dead_address()
            folder = os.path.join(tmp, name.replace(" ", "-"))
            write_job(folder, edge.base_url, cloud_url)
            try:
                status, wall, stderr = run_job(folder)
            finally:
                if dead is not None:
                    dead.close()
            figures = summarise(folder, (edge, cloud), baseline)
            if name == "no fault":
                baseline = figures["cases"]
            requests = edge.request_count + cloud.request_count
            faulted = sum(1 for s in (edge, cloud) for r in s.requests if r.fault is not None)
            accuracy = "-" if figures["accuracy"] is None else f"{figures['accuracy']:.2f}"
            if figures["base_accuracy"] is not None:
                accuracy += f" ({figures['base_accuracy']:.2f})"
            print(f"{name:<22} {status:>4} {figures['failed']:>6} {figures['calls']:>6} "
                  f"{requests:>8} {faulted:>7} {figures['retries']:>7} "
                  f"{figures['errors']:>6} {accuracy:>20} {figures['differ']:>6} "
                  f"{figures['stored']:>6} {figures['incomplete']:>10} {wall:>6.1f}s",
                  flush=True)
            any_incomplete |= figures["incomplete"] > 0
            if figures["failed"]:
                first = next((line for line in stderr.splitlines()
                              if line.startswith("FAILED")), "")
                print(f"{'':<22} first failure: {first.split(': ', 1)[-1].split(' (traceback:')[0]}")
    return 1 if any_incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
