"""Token counts estimated from text, for backends without a tokenizer."""

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
