"""A tiny causal LM the tests build: random weights from a Llama config and a byte-level
BPE tokenizer trained here on a few sentences, with a ChatML chat template. Saved with
``save_pretrained`` like any Hugging Face model folder, so backends load it by path
(no hub, no weights to download).

    from edgellm.testing.tiny_model import build_tiny_model

(the tests' session fixture ``tiny_model`` builds one per session).
"""

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SENTENCES = [
    "Question: Solve for x: 3x - 7 = 11.", "A. 18", "B. 4", "C. 6", "D. 4/3",
    "Answer with the letter of the correct option.", "Answer: C",
    "The quick brown fox jumps over the lazy dog.",
    "Edge models answer easy questions; the cloud answers hard ones.",
    "What is the slope of the line passing through the points (2, 5) and (6, -3)?",
    "Classify the intent of this message. Extract the named entities.",
    "Summarise the report in one sentence. Translate it into Chinese: 你好，世界。",
]


def build_tiny_model(folder, vocab_size=384, hidden_size=64, layers=2, seed=0):
    """Write a tiny Llama-architecture chat model to ``folder``; return its path."""
    # the test extra; seconds to import, so only when a tiny model is built
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    # the byte alphabet makes every text encodable, as in GPT-2 and Qwen tokenizers
    bpe.train_from_iterator(SENTENCES * 4, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        bos_token=None, unk_token=None)
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)  # the same weights every time
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        # wider than the default 0.02, so greedy outputs vary with the prompt instead
        # of repeating one token
        initializer_range=0.3)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
