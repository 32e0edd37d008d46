"""The response record every backend returns (a superset of the Ianvs LLM example's)."""

import math
import re

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def estimate_tokens(text, chars_per_token=4.0):
    """Token count for backends without a tokenizer (the simulated one).

    One token per CJK character and ``chars_per_token`` other characters per token:
    close to BPE tokenizers such as Qwen2.5's on English (~4 chars/token) and Chinese
    (~1 char/token). Real backends report the tokenizer's count instead.
    """
    if not text:
        return 0
    if text.isascii():
        return max(1, math.ceil(len(text) / chars_per_token))
    cjk = len(_CJK.findall(text))
    rest = len(text) - cjk
    return cjk + max(1, math.ceil(rest / chars_per_token)) if rest else cjk


def make_response(completion, prediction, prompt_tokens, completion_tokens, *,
                  ttft, itl, e2e, tier, node, model, cost_usd=0.0, queue_time=0.0,
                  network_time=0.0, model_load_time=0.0, replayed=False, error=None,
                  task_type="multiple_choice"):
    """Build the record. Times are seconds; ``itl`` is the mean gap between tokens
    (vLLM's TPOT), ``throughput`` its inverse in tokens/s, as in Ianvs' example."""
    return {
        "completion": completion,
        "prediction": prediction,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "perf": {"time_to_first_token": ttft, "internal_token_latency": itl,
                 "throughput": (1.0 / itl) if itl else None, "e2e_latency": e2e,
                 "queue_time": queue_time, "network_time": network_time,
                 "model_load_time": model_load_time},
        "tier": tier, "node": node, "model": model, "cost_usd": cost_usd,
        "replayed": replayed, "error": error, "task_type": task_type,
    }
