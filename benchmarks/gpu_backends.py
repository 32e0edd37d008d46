"""What do the local backends measure on a GPU? (issue 4)

Runs the same multiple-choice requests (the example's MCQ set) through the
``huggingface`` backend on CUDA (one request at a time, timed token by token) and
the ``vllm`` backend (the whole batch at once, continuous batching, streamed), and
prints per-request TTFT (mean, p50, p99), TPOT, ITL and end-to-end latency (vLLM's
serving-benchmark definitions, docs/metrics.md), plus request and output-token
throughput over the wall time of the batch. The first request, which loads the
model, is run before timing starts; the load time is printed on its own.

Without --model it builds the tests' tiny random model: its figures are the
backends' own overhead, not a real model's speed. Point --model at a real model
folder (e.g. Qwen2.5-1.5B-Instruct) for real figures. Without a CUDA GPU it says so
and exits (--cpu runs the huggingface backend on the CPU instead).

    python benchmarks/gpu_backends.py [--model PATH] [--requests 64] [--max-tokens 128]
                                      [--backends huggingface,vllm] [--cpu]
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MCQ = os.path.join(REPO, "examples", "edge-llm-distribution", "dataset", "mcq", "test_data",
                   "data.jsonl")


def samples(n):
    with open(MCQ, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle if line.strip()]
    return [{"id": i, "query": lines[i % len(lines)]["query"], "gold": "",
             "task_type": "multiple_choice"} for i in range(n)]


def tiny_model(folder):
    from edgellm.testing.tiny_model import build_tiny_model
    return build_tiny_model(folder)


def measure(backend, messages_list):
    """Generations of one timed batch (after one untimed warm-up request)."""
    backend.complete(messages_list[0])  # loads the model / starts the engine
    generations = [None] * len(messages_list)
    started = time.perf_counter()
    backend.complete_batch(messages_list, generations.__setitem__)
    return generations, time.perf_counter() - started


def report(name, backend, generations, wall):
    from edgellm.models.chat import timing_of

    ok = [g for g in generations if g is not None and not g.error]
    timings = [timing_of(g) for g in ok]
    ttft = np.array([t[0] for t in timings])
    tpot = np.array([t[2] for t in timings if t[2]])
    itl = np.array([gap for t in timings for gap in t[1]])
    e2e = np.array([t[3] for t in timings])
    tokens = sum(g.completion_tokens for g in ok)
    ms = 1000.0
    print(f"\n{name}: {len(ok)}/{len(generations)} requests answered, "
          f"load {backend.load_seconds:.1f} s, batch wall {wall:.2f} s")
    print(f"  TTFT  mean {ttft.mean() * ms:8.1f} ms   p50 {np.percentile(ttft, 50) * ms:8.1f} ms"
          f"   p99 {np.percentile(ttft, 99) * ms:8.1f} ms")
    if tpot.size:
        print(f"  TPOT  mean {tpot.mean() * ms:8.2f} ms   "
              f"ITL p50 {np.percentile(itl, 50) * ms:6.2f} ms   "
              f"ITL p99 {np.percentile(itl, 99) * ms:6.2f} ms")
    print(f"  E2E   mean {e2e.mean() * ms:8.1f} ms   p99 {np.percentile(e2e, 99) * ms:8.1f} ms")
    print(f"  throughput {len(ok) / wall:8.2f} req/s   {tokens / wall:10.1f} output tok/s   "
          f"({tokens} tokens, {sum(g.prompt_tokens for g in ok)} prompt tokens)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the tests' tiny model)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--backends", default="huggingface,vllm")
    parser.add_argument("--cpu", action="store_true",
                        help="no GPU needed: the huggingface backend on the CPU")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    try:
        import torch
    except ImportError:
        raise SystemExit("torch is not installed: pip install 'edgellm[huggingface]'")
    if args.cpu:
        backends = [b for b in backends if b == "huggingface"]
    elif not torch.cuda.is_available():
        print("no CUDA GPU here: skipping (the huggingface-on-CUDA and vllm figures need "
              "one; --cpu runs the huggingface backend on the CPU)")
        return 0
    if "vllm" in backends and importlib.util.find_spec("vllm") is None:
        print("vllm is not installed: skipping it (pip install 'edgellm[vllm]')")
        backends.remove("vllm")

    from edgellm.models.chat import messages_for
    from edgellm.models.huggingface import HuggingFaceLLM
    from edgellm.models.vllm_backend import VLLMBackend

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or tiny_model(scratch)
        device = "cpu" if args.cpu else "cuda"
        tiny = "" if args.model else " (tiny random model: overhead, not speed)"
        where = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        print(f"model {model}{tiny}, {args.requests} requests, max {args.max_tokens} "
              f"tokens, greedy, {where}")
        messages_list = [messages_for(s) for s in samples(args.requests)]
        common = {"store": "none", "max_tokens": args.max_tokens}
        for name in backends:
            if name == "huggingface":
                backend = HuggingFaceLLM(model=model, device=device, **common)
            else:
                backend = VLLMBackend(model=model, gpu_memory_utilization=0.5, **common)
            try:
                generations, wall = measure(backend, messages_list)
                report(f"{name} ({device})" if name == "huggingface" else name,
                       backend, generations, wall)
            finally:
                backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
