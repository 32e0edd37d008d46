"""``BERTRouter``: a local Hugging Face text-classification model, read as RouteLLM's
(and Ianvs') BERT routers read theirs; nothing to train."""

import os

import numpy as np

from edgellm.routing.scoring import ScoringRouter, query_texts


class BERTRouter(ScoringRouter):
    """A Hugging Face text-classification model (``AutoModelForSequenceClassification``)
    loaded from a local folder (``model``; never downloaded), read as RouteLLM's BERT
    router reads its checkpoints: softmax over the labels, and the score is the
    probability of the ``cloud_labels`` (default [0]): RouteLLM's
    ``calculate_strong_win_rate`` is 1 - P(label 1) - P(label 2) = P(label 0), label 0
    meaning the strong model wins, 1 a tie, 2 the weak model wins.

    ``among_labels`` renormalises over some labels first. Ianvs' BERTRouter
    (cloud-edge-collaborative-inference-for-llm) computes P(LABEL_0) / (P(LABEL_0) +
    P(LABEL_1)) and sends a query to the cloud when that is below its threshold t:
    the same decisions as ``cloud_labels: [1], among_labels: [0, 1], threshold: 1 - t``.
    Labels may be given by index or by name (the model's id2label).

    Other settings: ``max_tokens`` (word pieces, default 512, at most the model's),
    ``max_length`` (characters kept from the query before tokenising, as Ianvs' does;
    default all), ``batch_size`` (default 32), ``device`` ("cpu"), ``task`` (only
    "text-classification", accepted for Ianvs' configs).

    Nothing is trained: ``fit`` (or ``train_outcomes``) only records the train items
    and, with ``cloud_share``, calibrates the threshold on their scores."""

    _trains = False

    def __init__(self, model=None, cloud_labels=(0,), among_labels=None, max_tokens=512,
                 max_length=None, batch_size=32, device="cpu", task="text-classification",
                 **params):
        self.model = model
        self.cloud_labels = cloud_labels
        self.among_labels = among_labels
        self.max_tokens = max_tokens
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.task = task
        super().__init__(**params)

    def _reset_runtime(self):
        super()._reset_runtime()
        self._loaded = None

    def _classifier(self):
        if self._loaded is None:
            if self.task != "text-classification":
                raise ValueError(f"BERTRouter: task {self.task!r} is not supported (only "
                                 "text-classification)")
            if not self.model or not os.path.isdir(os.fspath(self.model)):
                raise ValueError(f"BERTRouter: model {self.model!r} is not a folder: give the "
                                 "local path of a Hugging Face text-classification model "
                                 "(nothing is downloaded)")
            # heavy (transformers, ~0.9 s): only a BERT router needs it
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            path = os.fspath(self.model)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True).to(self.device).eval()
            n = model.config.num_labels
            cloud = self._label_indices(self.cloud_labels, model.config, n)
            among = (self._label_indices(self.among_labels, model.config, n)
                     if self.among_labels is not None else list(range(n)))
            if not set(cloud) <= set(among):
                raise ValueError(f"BERTRouter: cloud_labels {self.cloud_labels} are not all "
                                 f"among among_labels {self.among_labels}")
            limit = getattr(tokenizer, "model_max_length", None) or 512
            max_positions = getattr(model.config, "max_position_embeddings", None) or limit
            self._loaded = (tokenizer, model, cloud, among,
                            int(min(int(self.max_tokens), limit, max_positions)))
        return self._loaded

    @staticmethod
    def _label_indices(labels, config, n):
        by_name = {str(name): int(i) for i, name in config.id2label.items()}
        out = []
        for label in [labels] if isinstance(labels, (int, str)) else list(labels):
            if isinstance(label, str) and label.strip().isdigit():
                label = int(label)
            index = label if isinstance(label, int) else by_name.get(str(label))
            if index is None or not 0 <= index < n:
                raise ValueError(f"BERTRouter: label {label!r} is not one of the model's "
                                 f"{n} labels ({', '.join(by_name)})")
            out.append(index)
        return out

    def _fit(self, samples, y):
        self._classifier()  # fails here, not at the first query, when the model is bad

    def _score(self, samples):
        # heavy (torch, ~1.4 s): only a BERT router needs it
        import torch

        tokenizer, model, cloud, among, max_tokens = self._classifier()
        texts = query_texts(samples)
        if self.max_length:
            texts = [t[:int(self.max_length)] for t in texts]
        order = np.argsort([len(t) for t in texts], kind="stable")  # less padding per batch
        scores = np.empty(len(texts), dtype=np.float64)
        size = int(self.batch_size)
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                idx = order[start:start + size]
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=max_tokens, return_tensors="pt").to(self.device)
                logits = model(**batch).logits.double()
                probs = torch.softmax(logits[:, among], dim=-1).cpu().numpy()
                position = [among.index(c) for c in cloud]
                scores[idx] = probs[:, position].sum(axis=1)
        return scores

