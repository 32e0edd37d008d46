"""Does the openai backend's concurrency pay, and are its timings right? (issue 4)

Starts the loopback OpenAI-compatible server (edgellm.testing.openai_server) in its
own process, with a fixed first-token delay and per-token delay, and sends it the
same 200 multiple-choice requests through the openai backend at concurrency 1 and
at concurrency 8. Targets: concurrency 8 finishes at least 6x faster, with
identical completions and token counts; the measured TTFT stays within 10 % of
the server's first-token delay (and TPOT near its token delay). The delays (120 ms
to the first token, 6 ms per token, 4 tokens: "The answer is X.") keep the whole
run near half a minute while the first-token delay stays long against the 5-10 ms
that the Python client and server themselves add on a small, busy machine.

    python benchmarks/concurrency.py [--requests 200] [--concurrency 8]

Exit status 0 when every target is met.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np


def start_server(first_token_delay, token_delay, tokens):
    """The server in a child process (its threads must not share our GIL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgellm.testing.openai_server", "--port", "0",
         "--first-token-delay", str(first_token_delay), "--token-delay", str(token_delay),
         "--completion-tokens", str(tokens)],
        stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # "OpenAI-compatible server at <url> (...)"
    if " at " not in line:
        process.kill()
        raise SystemExit(f"the loopback server did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split()[0]


def samples(n):
    return [{"id": i, "task_type": "multiple_choice", "gold": "ABCD"[i % 4],
             "query": f"Question: which option is number {i}?\nA. {i}\nB. {i + 1}\n"
                      f"C. {i + 2}\nD. {i + 3}"} for i in range(n)]


def run(base_url, items, concurrency):
    from edgellm.models.openai_compatible import OpenAICompatibleLLM

    llm = OpenAICompatibleLLM("loopback", base_url=base_url, api_key_env="none",
                              store="none", max_concurrency=concurrency, tier="cloud")
    try:
        start = time.perf_counter()
        responses = llm.generate_batch(items)
        return time.perf_counter() - start, responses
    finally:
        llm.close()


def describe(name, wall, responses, first_token_delay, token_delay):
    errors = sum(1 for r in responses if r["error"])
    ttft = np.array([r["perf"]["time_to_first_token"] for r in responses if not r["error"]])
    tpot = np.array([r["perf"]["tpot"] for r in responses if not r["error"]])
    off = (ttft.mean() - first_token_delay) / first_token_delay
    print(f"  {name}: {wall:6.2f} s, {len(responses) / wall:6.1f} req/s, errors {errors}; "
          f"TTFT mean {1e3 * ttft.mean():.1f} ms ({100 * off:+.1f} % of "
          f"{1e3 * first_token_delay:.0f} ms), p50 {1e3 * np.percentile(ttft, 50):.1f}, "
          f"p99 {1e3 * np.percentile(ttft, 99):.1f}; TPOT mean {1e3 * tpot.mean():.2f} ms "
          f"(server {1e3 * token_delay:.0f} ms)")
    return off


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--first-token-delay", type=float, default=0.12)
    parser.add_argument("--token-delay", type=float, default=0.006)
    parser.add_argument("--tokens", type=int, default=4)
    args = parser.parse_args()
    items = samples(args.requests)
    process, base_url = start_server(args.first_token_delay, args.token_delay, args.tokens)
    try:
        run(base_url, items[:4], 2)  # warm the server's and client's first-call paths
        wall_1, seq = run(base_url, items, 1)
        wall_n, par = run(base_url, items, args.concurrency)
    finally:
        process.terminate()
        process.wait()
    print(f"{args.requests} requests to the loopback server at {base_url} "
          f"(first token {1e3 * args.first_token_delay:.0f} ms, then "
          f"{1e3 * args.token_delay:.0f} ms per token, {args.tokens} tokens); "
          f"{os.cpu_count()} CPUs")
    off_1 = describe("concurrency 1", wall_1, seq, args.first_token_delay, args.token_delay)
    off_n = describe(f"concurrency {args.concurrency}", wall_n, par,
                     args.first_token_delay, args.token_delay)
    same_text = [r["completion"] for r in seq] == [r["completion"] for r in par]
    same_usage = [r["usage"] for r in seq] == [r["usage"] for r in par]
    speedup = wall_1 / wall_n
    ttft_ok = abs(off_1) <= 0.10 and abs(off_n) <= 0.10
    print(f"speedup {speedup:.2f}x (target >= 6x); identical completions: {same_text}; "
          f"identical token counts: {same_usage}; mean TTFT within 10 %: {ttft_ok}")
    return 0 if speedup >= 6 and same_text and same_usage and ttft_ok else 1


if __name__ == "__main__":
    sys.exit(main())
