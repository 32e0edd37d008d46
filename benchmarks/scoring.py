"""How long does scoring a mixed result set take? (issue 3: 10,000 items in < 5 s)

Builds 10,000 mixed items (2,000 per task type) from the shipped five-task dataset,
answered by the simulated gpt-4o-mini (so predictions are realistic: right, partly
right and wrong), then times, in a fresh process each, the headline Accuracy and the
five per-type metrics over all of them, library imports included.

    python benchmarks/scoring.py [--items 10000]
"""

import argparse
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = os.path.join(REPO, "examples", "edge-llm-distribution", "dataset", "five-tasks",
                       "tasks.csv")
METRICS = ["Accuracy", "TC Accuracy", "NER F1", "QA F1", "TS BLEU", "SG ROUGE-L"]

CHILD = r"""
import pickle, sys, time
start = time.perf_counter()
import rouge_score.rouge_scorer, sacrebleu, seqeval.metrics, sklearn.metrics  # cold imports
from edgellm.metrics.joint_inference import METRICS
y_true, y_pred = pickle.load(open(sys.argv[1], "rb"))
loaded = time.perf_counter()
values = {name: METRICS[name](y_true, y_pred) for name in sys.argv[2:]}
done = time.perf_counter()
print(pickle.dumps((loaded - start, done - loaded, values)).hex())
"""


def build(n_items, path):
    import pickle

    from edgellm.models.simulated import SimulatedLLM
    from edgellm.tasks.datasets import read_items

    items, _ = read_items(DATASET)
    by_type = {}
    for item in items:
        by_type.setdefault(item.task_type, []).append(item)
    samples = []
    for task, pool in by_type.items():
        for k in range(n_items // len(by_type)):
            item = pool[k % len(pool)]
            samples.append({"id": f"{task}-{k}", "task_type": task, "query": item.text,
                            "gold": item.reference})
    responses = SimulatedLLM("gpt-4o-mini").generate_batch(samples)
    with open(path, "wb") as handle:
        pickle.dump(([s["gold"] for s in samples], [[False, r, r, None] for r in responses]),
                    handle)
    return len(samples)


def main():
    import pickle
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "results.pkl")
        n = build(args.items, path)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, path, *METRICS], check=True,
                             capture_output=True, text=True).stdout
        wall = time.perf_counter() - start
    imports, scoring, values = pickle.loads(bytes.fromhex(out.strip()))
    print(f"{n:,} mixed items (5 task types), metrics: {', '.join(METRICS)}")
    for name, value in values.items():
        print(f"  {name:<12} {value:8.2f}")
    print(f"scoring {scoring:.2f} s ({n / scoring:,.0f} items/s; target < 5 s); "
          f"library imports and loading {imports:.2f} s; whole process {wall:.2f} s")


if __name__ == "__main__":
    main()
