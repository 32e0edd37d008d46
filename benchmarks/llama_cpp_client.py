"""The ``openai`` backend against a real llama.cpp server: the real-client check.

Builds the tiny GGUF model (edgellm.testing.tiny_gguf, the size sim_to_real.py uses),
starts llama-cpp-python's server on it and sends the same requests through the
``openai`` backend one at a time and four at once, recording them in a response store.
Prints: how tokens were counted (llama-cpp-python streams no usage: its tokenize
endpoint) and how the counts compare with the server's own usage for the same request;
TTFT and inter-token gaps per request; the throughput of four at once against one at a
time (the speed-up the server allows); and the store replaying the run.

    python benchmarks/llama_cpp_client.py [--requests 16] [--max-tokens 32]
"""

import argparse
import os
import sys
import tempfile
import time

import httpx
import numpy as np

from edgellm.live.llama_cpp_engine import LlamaServer, llama_cpp_available
from edgellm.models import create_backend
from edgellm.models.chat import messages_for
from edgellm.testing.tiny_gguf import build_tiny_gguf

SIZE = dict(vocab_size=2048, hidden_size=512, layers=8, heads=8, kv_heads=4)


def samples(n, offset):
    return [{"id": offset + i, "task_type": "question_answering",
             "query": f"request {offset + i}: the river station is north of the market "
                      f"and the garden, between the forest and the mountain"}
            for i in range(n)]


def run(base_url, items, max_tokens, concurrency, store, mode="record"):
    backend = create_backend("openai", model="tiny", base_url=base_url, api_key_env="none",
                             store=store, store_mode=mode, max_tokens=max_tokens,
                             max_concurrency=concurrency)
    try:
        started = time.perf_counter()
        answered = backend.generate_batch(items)
        return answered, time.perf_counter() - started
    finally:
        backend.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    problem = llama_cpp_available()
    if problem:
        print(f"llama_cpp_client: needs llama-cpp-python's server: {problem}")
        return 1
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="edgellm-llama-client-") as scratch:
        path = build_tiny_gguf(scratch, quantizations=("Q8_0",), **SIZE)["Q8_0"]
        store = os.path.join(scratch, "responses.sqlite")
        with LlamaServer(path, "tiny", log_path=os.path.join(scratch, "server.log")) as server:
            run(server.base_url, samples(2, 10_000), 4, 1, "none")  # warm-up
            one, one_s = run(server.base_url, samples(args.requests, 0), args.max_tokens, 1,
                             store)
            four, four_s = run(server.base_url, samples(args.requests, 1000),
                               args.max_tokens, 4, store)
            body = {"model": "tiny", "max_tokens": args.max_tokens, "temperature": 0.0,
                    "messages": messages_for(samples(1, 0)[0])}  # what the backend sent
            plain = httpx.post(server.base_url + "/chat/completions", json=body,
                               timeout=120).json()
        replayed, replay_s = run("http://127.0.0.1:9/v1", samples(args.requests, 0),
                                 args.max_tokens, 1, store, mode="replay")
    everything = one + four
    errors = sum(1 for r in everything if r["error"])
    sources = sorted({r.get("usage_source") for r in everything})
    print(f"requests: {len(everything)}, errors {errors}; tokens counted by: "
          f"{', '.join(map(str, sources))}")
    usage = plain["usage"]
    print(f"server's own usage for request 0: prompt {usage['prompt_tokens']}, completion "
          f"{usage['completion_tokens']}; counted by the backend: prompt "
          f"{one[0]['usage']['prompt_tokens']} (the message text, without the chat "
          f"template), completion {one[0]['usage']['completion_tokens']}; same text: "
          f"{plain['choices'][0]['message']['content'] == one[0]['completion']}")
    for label, answered, seconds in (("one at a time", one, one_s),
                                     ("four at once", four, four_s)):
        ttft = [r["perf"]["time_to_first_token"] for r in answered]
        gaps = [g for r in answered for g in r["perf"]["itl"]]
        tokens = sum(r["usage"]["completion_tokens"] for r in answered)
        print(f"{label:>14}: TTFT p50 {np.median(ttft) * 1e3:7.1f} ms, p95 "
              f"{np.percentile(ttft, 95) * 1e3:7.1f} ms; inter-token gap p50 "
              f"{np.median(gaps) * 1e3:5.2f} ms, p95 {np.percentile(gaps, 95) * 1e3:5.2f} ms; "
              f"{tokens / seconds:6.1f} tokens/s")
    ratio = (sum(r["usage"]["completion_tokens"] for r in four) / four_s) / \
        (sum(r["usage"]["completion_tokens"] for r in one) / one_s)
    print(f"concurrency 4 / 1 throughput: {ratio:.2f} (llama-cpp-python generates one "
          f"answer at a time; four at once keep it busy while the client reads and counts "
          f"the last answer and sends the next)")
    same = [a["completion"] for a in one] == [b["completion"] for b in replayed]
    print(f"store replay: {len(replayed)} responses in {replay_s * 1e3:.0f} ms, identical "
          f"completions {same}, all replayed {all(r['replayed'] for r in replayed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
