"""A tiny Llama-architecture model as GGUF files, made here: a SentencePiece tokenizer
trained on a generated corpus, random weights, written with the ``gguf`` package in
several quantisations (F16, Q8_0, Q4_0), so that llama.cpp loads and runs a real model
with no weights to download, and caching rounds move real files of different sizes.

    from edgellm.testing.tiny_gguf import build_tiny_gguf
    files = build_tiny_gguf(folder)          # {"F16": path, "Q8_0": path, "Q4_0": path}

Two choices keep what it generates easy to count: the output rows of every token but
whole words (a piece that starts a word and is its own tokenization) are zero, so
greedy decoding emits only whole words and never the end of text: an answer runs to
``max_tokens`` and the text tokenizes back to the tokens that made it. Needs
``pip install gguf sentencepiece`` (the ``llamacpp`` extra).
"""

import os

import numpy as np

from edgellm.testing.tiny_model import SENTENCES

QUANTIZATIONS = ("F16", "Q8_0", "Q4_0")
CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] }}: "
                 "{{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "de", "pa", "go", "hu", "be",
              "zi", "fa", "no", "ri", "te", "la", "mo", "qu", "an", "el", "or", "is", "un")


def corpus(lines=6000, seed=0):
    """Generated text: pseudo-words of 1-4 syllables, Zipf-distributed, plus a few English
    sentences, so that the tokenizer learns word pieces and short words."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(_SYLLABLES, size=rng.integers(1, 5))) for _ in range(3000)]
    ranks = np.minimum(rng.zipf(1.3, size=lines * 10), len(words)) - 1
    text = [" ".join(words[r] for r in ranks[i * 10:(i + 1) * 10]) for i in range(lines)]
    return text + SENTENCES * 20


def train_tokenizer(folder, vocab_size=1024, seed=0):
    """A Llama-style SentencePiece BPE model with byte fallback (every text encodes);
    returns the path of its ``.model`` file (made once per folder)."""
    import sentencepiece as spm

    prefix = os.path.join(folder, f"tokenizer-{vocab_size}")
    if not os.path.exists(prefix + ".model"):
        os.makedirs(folder, exist_ok=True)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus(seed=seed)), model_prefix=prefix,
            vocab_size=vocab_size, model_type="bpe", byte_fallback=True,
            character_coverage=1.0, num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            minloglevel=2)
    return prefix + ".model"


def _vocabulary(model_path):
    """(tokens, scores, token types, ids that may be generated) in GGUF's terms."""
    import gguf
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model_path)
    tokens, scores, types, words = [], [], [], []
    for i in range(sp.vocab_size()):
        piece = sp.id_to_piece(i)
        tokens.append(piece.encode("utf-8"))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        else:
            types.append(gguf.TokenType.NORMAL)
            word = piece[1:]
            # a word piece that is its own tokenization, wherever it stands
            if piece.startswith("\u2581") and len(word) > 1 and sp.encode(word) == [i]:
                words.append(i)
    return tokens, scores, types, words


def _weights(vocab, words, hidden, layers, ffn, heads, kv_heads, seed):
    """Random weights by llama.cpp's tensor names (numpy shapes: rows = outputs)."""
    rng = np.random.default_rng(seed)
    head_dim = hidden // heads

    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    output = np.zeros((vocab, hidden), dtype=np.float32)
    output[words] = rng.standard_normal((len(words), hidden)).astype(np.float32)
    tensors = {"token_embd.weight": rng.standard_normal((vocab, hidden)).astype(np.float32),
               "output_norm.weight": np.ones(hidden, dtype=np.float32),
               "output.weight": output}
    for n in range(layers):
        tensors.update({
            f"blk.{n}.attn_norm.weight": np.ones(hidden, dtype=np.float32),
            f"blk.{n}.attn_q.weight": matrix(hidden, hidden),
            f"blk.{n}.attn_k.weight": matrix(kv_heads * head_dim, hidden),
            f"blk.{n}.attn_v.weight": matrix(kv_heads * head_dim, hidden),
            f"blk.{n}.attn_output.weight": matrix(hidden, hidden),
            f"blk.{n}.ffn_norm.weight": np.ones(hidden, dtype=np.float32),
            f"blk.{n}.ffn_gate.weight": matrix(ffn, hidden),
            f"blk.{n}.ffn_up.weight": matrix(ffn, hidden),
            f"blk.{n}.ffn_down.weight": matrix(hidden, ffn)})
    return tensors


def write_gguf(path, tensors, vocabulary, quantization, *, hidden, layers, ffn, heads,
               kv_heads, context, name):
    """One GGUF file: the metadata llama.cpp's llama loader reads, the matrices in
    ``quantization`` (F32, F16, Q8_0 or Q4_0), norms in F32."""
    import gguf

    qtype = gguf.GGMLQuantizationType[quantization]
    file_type = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
                 "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                 "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[quantization]
    tokens, scores, types, _ = vocabulary
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    # no BOS and no leading space added: a text tokenizes the same alone and in a
    # longer one, so counting a completion's text counts the tokens that made it
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for tensor_name, data in tensors.items():
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(tensor_name, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(tensor_name, data.astype(np.float16))
        else:
            writer.add_tensor(tensor_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_tiny_gguf(folder, quantizations=QUANTIZATIONS, vocab_size=1024, hidden_size=256,
                    layers=4, ffn_size=None, heads=4, kv_heads=2, context=2048, seed=0,
                    name="tiny-llama"):
    """Write ``<folder>/<name>-<quantization>.gguf`` for each quantisation (a file that
    is there already is kept); return {quantization: path}."""
    ffn = ffn_size or 3 * hidden_size
    os.makedirs(folder, exist_ok=True)
    paths = {q: os.path.join(folder, f"{name}-{q}.gguf") for q in quantizations}
    missing = [q for q, p in paths.items() if not os.path.exists(p)]
    if missing:
        vocabulary = _vocabulary(train_tokenizer(folder, vocab_size, seed))
        tensors = _weights(len(vocabulary[0]), vocabulary[3], hidden_size, layers, ffn,
                           heads, kv_heads, seed)
        for quantization in missing:
            tmp = paths[quantization] + ".tmp"
            write_gguf(tmp, tensors, vocabulary, quantization, hidden=hidden_size,
                       layers=layers, ffn=ffn, heads=heads, kv_heads=kv_heads,
                       context=context, name=name)
            os.replace(tmp, paths[quantization])
    return paths
