"""How much does the harness itself cost? Whole `edgellm run` processes, timed.

Builds an MMLU-sized job (14,042 four-option items over 57 subjects, the four
baseline routers, simulated models that answer instantly, Ianvs' nine metrics)
and one EdgeOnly case over 10x the items (140,420), runs each as a separate
`edgellm run` process (default `--jobs auto`: with simulated models, test cases run
in one worker process per core) and prints wall seconds, items/s and peak memory
(max RSS of the largest process). Then checks that cost grows linearly with the number of items.

Every timed process starts as an installed package does: with its bytecode compiled
(pip compiles it at install; an editable install writes it on its first run). Where
PYTHONDONTWRITEBYTECODE is set, as on this project's machines, nothing would ever
write it and every process would compile ~25 modules again (~0.1 s), so the
benchmark compiles the package and the example once before timing.

For scale (figures from the issue, measured with real Ianvs on a 2-core machine):
the four-case job takes about 9.7 s, the 140,420-item case about 29 s and 1.4 GB.
Targets for edgellm: <= 1.0 s, <= 3 s and < 400 MB.

    python benchmarks/harness.py [--items 14042] [--repeat 3]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "edge-llm-distribution")
ROUTING = os.path.join(EXAMPLE, "testalgorithms", "query-routing")
METRICS = ["accuracy", "edge_ratio", "time_to_first_token", "throughput",
           "internal_token_latency", "cloud_prompt_tokens", "cloud_completion_tokens",
           "edge_prompt_tokens", "edge_completion_tokens"]
METRIC_NAMES = ["Accuracy", "Edge Ratio", "Time to First Token", "Throughput",
                "Internal Token Latency", "Cloud Prompt Tokens", "Cloud Completion Tokens",
                "Edge Prompt Tokens", "Edge Completion Tokens"]
WORDS = ("energy system value cell market river theorem protein empire circuit "
         "equation policy climate enzyme signal contract orbit molecule dynasty "
         "algorithm").split()


def write_dataset(folder, n, seed=0):
    """n synthetic MMLU-style items in Ianvs' LLM format (metadata.json + data.jsonl)."""
    rng = random.Random(seed)
    test = os.path.join(folder, "test_data")
    os.makedirs(test, exist_ok=True)
    with open(os.path.join(test, "metadata.json"), "w") as handle:
        json.dump({"dataset": "synthetic-mmlu", "description": "harness data",
                   "level_1_dim": "single-modal", "level_2_dim": "text",
                   "level_3_dim": "knowledge Q&A", "level_4_dim": "general"}, handle)
    with open(os.path.join(test, "data.jsonl"), "w") as handle:
        for i in range(n):
            stem = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60)))
            options = "\n".join(f"{k}. {' '.join(rng.choice(WORDS) for _ in range(3))}"
                                for k in "ABCD")
            handle.write(json.dumps({
                "query": f"Question: {stem} #{i}?\n{options}", "response": rng.choice("ABCD"),
                "explanation": "", "level_1_dim": "single-modal", "level_2_dim": "text",
                "level_3_dim": "knowledge Q&A", "level_4_dim": f"subject_{i % 57}"}) + "\n")
    train = os.path.join(folder, "train_data")
    os.makedirs(train, exist_ok=True)
    open(os.path.join(train, "data.jsonl"), "w").close()
    return os.path.join(test, "metadata.json"), os.path.join(train, "data.jsonl")


def write_job(folder, data_folder, routers):
    metadata, train = os.path.join(data_folder, "test_data", "metadata.json"), \
        os.path.join(data_folder, "train_data", "data.jsonl")
    os.makedirs(folder, exist_ok=True)
    testenv = os.path.join(folder, "testenv.yaml")
    with open(testenv, "w") as handle:
        json.dump({"testenv": {
            "dataset": {"train_data": train, "test_data_info": metadata},
            "metrics": [{"name": n, "url": os.path.join(EXAMPLE, "testenv", f"{f}.py")}
                        for n, f in zip(METRIC_NAMES, METRICS)]}}, handle)
    algorithms = []
    for router in routers:
        path = os.path.join(folder, f"{router}.yaml")
        module = lambda t, n, f, **hp: {"type": t, "name": n, "url": os.path.join(ROUTING, f),
                                        "hyperparameters": [{k: {"values": [v]}}
                                                            for k, v in hp.items()]}
        with open(path, "w") as handle:
            json.dump({"algorithm": {"paradigm_type": "jointinference", "modules": [
                module("dataset_processor", "SampleProcessor", "data_processor.py"),
                module("edgemodel", "EdgeModel", "edge_model.py", backend="simulated",
                       model="Qwen/Qwen2.5-1.5B-Instruct"),
                module("cloudmodel", "CloudModel", "cloud_model.py", backend="simulated",
                       model="gpt-4o-mini"),
                module("hard_example_mining", router, "query_routers.py",
                       **({"seed": 0} if router == "RandomRouter" else {}))]}}, handle)
        algorithms.append({"name": router.lower(), "url": path})
    job = os.path.join(folder, "job.yaml")
    with open(job, "w") as handle:  # JSON is YAML
        json.dump({"benchmarkingjob": {
            "name": "harness", "workspace": os.path.join(folder, "workspace"),
            "testenv": testenv, "test_object": {"type": "algorithms", "algorithms": algorithms},
            "rank": {"sort_by": [{"Accuracy": "descend"}],
                     "visualization": {"mode": "selected_only", "method": "print_table"},
                     "selected_dataitem": {"paradigms": ["all"], "modules": ["all"],
                                           "hyperparameters": ["all"], "metrics": ["all"]},
                     "save_mode": "selected_and_all"}}}, handle)
    return job


def compile_bytecode():
    """Compile edgellm's and the example's modules once (see the module docstring)."""
    import compileall

    import edgellm

    for folder in (os.path.dirname(edgellm.__file__), EXAMPLE):
        compileall.compile_dir(folder, quiet=1)


def run_process(job, jobs="auto"):
    """Wall seconds and peak RSS (MB) of one whole `edgellm run` process (with
    several worker processes, of the largest of them)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "edgellm.cli", "run", "-f", job,
                             "--jobs", str(jobs)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"edgellm run -f {job} failed")
    # wait4's ru_maxrss already covers the process's reaped workers (Linux)
    return wall, usage.ru_maxrss / 1024


def measure(name, job, items, repeat, jobs="auto"):
    runs = [run_process(job, jobs) for _ in range(repeat)]
    wall = min(r[0] for r in runs)  # least-disturbed run
    peak = max(r[1] for r in runs)
    print(f"{name:<38} {items:>9,} {wall:>8.2f} s {items / wall:>12,.0f} {peak:>9.0f} MB",
          flush=True)
    return wall, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=14042)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, mid, big = args.items, args.items * 5, args.items * 10
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        small_data, mid_data, big_data = (os.path.join(tmp, d) for d in ("small", "mid", "big"))
        write_dataset(small_data, n)
        write_dataset(mid_data, mid)
        write_dataset(big_data, big)
        four = write_job(os.path.join(tmp, "four"), small_data,
                         ["EdgeOnly", "CloudOnly", "RandomRouter", "OracleRouter"])
        one_small = write_job(os.path.join(tmp, "one-small"), small_data, ["EdgeOnly"])
        one_mid = write_job(os.path.join(tmp, "one-mid"), mid_data, ["EdgeOnly"])
        one_big = write_job(os.path.join(tmp, "one-big"), big_data, ["EdgeOnly"])
        print(f"{'job (whole process, best of %d)' % args.repeat:<38} {'items':>9} "
              f"{'wall':>10} {'items/s':>12} {'peak RSS':>12}")
        t4, m4 = measure("4 routers x MMLU-sized set", four, 4 * n, args.repeat)
        t4j, _ = measure("same, --jobs 1 (one process)", four, 4 * n, args.repeat, jobs=1)
        t1, _ = measure("EdgeOnly x MMLU-sized set", one_small, n, args.repeat)
        t5, _ = measure("EdgeOnly x 5x set", one_mid, mid, args.repeat)
        t10, m10 = measure("EdgeOnly x 10x set", one_big, big, args.repeat)
    # Linear cost: the time per extra item stays the same from 1x to 5x and 5x to 10x
    # (the 1x run also carries the fixed start-up).
    first, second = (t5 - t1) / (mid - n) * 1e6, (t10 - t5) / (big - mid) * 1e6
    print(f"\nlinearity: {first:.1f} us per extra item from {n:,} to {mid:,}, "
          f"{second:.1f} us from {mid:,} to {big:,} (ratio {second / first:.2f}; "
          f"1.00 = perfectly linear); fixed start-up ~{t1 - n * first / 1e6:.2f} s")
    print("\ntargets (issue 2)              measured     target    vs real Ianvs")
    print(f"  four-case job (--jobs auto)   {t4:6.2f} s    <= 1.0 s   {9.7 / t4:5.1f}x faster")
    print(f"  four-case job, one process    {t4j:6.2f} s               {9.7 / t4j:5.1f}x faster")
    print(f"  {big:,}-item case          {t10:6.2f} s    <= 3.0 s   {29 / t10:5.1f}x faster")
    print(f"  {big:,}-item peak memory   {m10:6.0f} MB   < 400 MB   "
          f"{1400 / m10:5.1f}x smaller")


if __name__ == "__main__":
    main()
