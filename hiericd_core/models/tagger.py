"""The sentence tagger: which sentences of a report are focus sentences.

Each sentence is the mean word vector of its tokens, concatenated with the
mean word vector of the report's reason for visit (when ``use_r4v``); an LSTM
reads the report's sentences in order and a linear layer gives each sentence
two log-probabilities (non-focus, focus). The loss is the negative
log-likelihood weighted by class (focus sentences are rare: about one in
twelve), with the weights kept in the checkpoint.

The paper's tagger is a unidirectional LSTM, so ``bidirectional`` defaults to
False; a sentence is judged from the sentences before it and itself. Set it
to True to let later sentences count too (it doubles the LSTM's cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

IGNORE = -100  # label of padding sentences


@dataclass
class TaggerConfig:
    vocab_size: int = 2
    emb_dim: int = 100
    hidden: int = 256
    bidirectional: bool = False
    dropout: float = 0.2
    use_r4v: bool = True
    freeze_embeddings: bool = True

    @property
    def feature_dim(self) -> int:
        return self.emb_dim * (2 if self.use_r4v else 1)


def mean_vectors(embed: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """Mean word vector of each padded id row: ``ids (..., T)`` → ``(..., emb_dim)``; all-pad rows give 0."""
    vectors = embed(ids)  # (..., T, E); the pad row is zero
    counts = (ids != 0).sum(-1, keepdim=True).clamp(min=1)  # (..., 1)
    return vectors.sum(-2) / counts


class SentenceTagger(nn.Module):
    def __init__(self, config: TaggerConfig, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.emb_dim, padding_idx=0)
        self.embed.weight.requires_grad_(not config.freeze_embeddings)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(config.feature_dim, config.hidden, batch_first=True,
                            bidirectional=config.bidirectional)
        self.out = nn.Linear(config.hidden * (2 if config.bidirectional else 1), 2)
        weights = class_weights if class_weights is not None else torch.ones(2)
        self.register_buffer("class_weights", weights.float().clone())

    def features(self, sentences: torch.Tensor, r4v: torch.Tensor | None) -> torch.Tensor:
        """Sentence features from token ids.

        Args:
            sentences: (batch, n_sentences, tokens) ids, 0-padded.
            r4v: (batch, r4v_tokens) ids of the reason for visit (ignored unless ``use_r4v``).

        Returns:
            (batch, n_sentences, feature_dim)
        """
        feats = mean_vectors(self.embed, sentences)  # (B, S, E)
        if self.config.use_r4v:
            assert r4v is not None
            reason = mean_vectors(self.embed, r4v)  # (B, E)
            feats = torch.cat([feats, reason.unsqueeze(1).expand_as(feats)], dim=-1)  # (B, S, 2E)
        return feats

    def forward(self, features: torch.Tensor, n_sentences: torch.Tensor) -> torch.Tensor:
        """Per-sentence log-probabilities.

        Args:
            features: (batch, n_sentences, feature_dim), padded after each report's last sentence.
            n_sentences: (batch,) real sentences per report (>= 1).

        Returns:
            (batch, n_sentences, 2) log-probabilities of (non-focus, focus); padding rows are junk.
        """
        x = self.drop(features)  # (B, S, F)
        if self.config.bidirectional:  # the backward direction must start at each report's last sentence
            packed = pack_padded_sequence(x, n_sentences.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=features.shape[1])
        else:  # padding follows the real sentences: a forward LSTM never sees it (and the fused kernel is faster)
            h, _ = self.lstm(x)  # (B, S, H·dirs)
        return torch.log_softmax(self.out(self.drop(h)), dim=-1)  # (B, S, 2)

    def loss(self, log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Class-weighted NLL over real sentences; ``labels`` (batch, n_sentences) with ``IGNORE`` on padding."""
        return nn.functional.nll_loss(log_probs.reshape(-1, 2), labels.reshape(-1), weight=self.class_weights,
                                      ignore_index=IGNORE)


def class_weights(n_focus: int, n_other: int) -> torch.Tensor:
    """``n / (2 · n_class)`` for (non-focus, focus): each class weighs as much in the loss."""
    n = n_focus + n_other
    return torch.tensor([n / (2 * max(n_other, 1)), n / (2 * max(n_focus, 1))], dtype=torch.float32)


def batch_reports(sentences: list[list[list[int]]], r4v: list[list[int]],
                  labels: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Pad reports (each a list of sentences of token ids) into the tagger's input tensors.

    Returns:
        ``sentences`` (B, S, T), ``r4v`` (B, R), ``n_sentences`` (B,) and, with
        ``labels``, ``labels`` (B, S) holding ``IGNORE`` on padding.
    """
    n_sent = [len(s) for s in sentences]
    width_s = max(n_sent)
    width_t = max((len(t) for s in sentences for t in s), default=1) or 1
    ids = torch.zeros((len(sentences), width_s, width_t), dtype=torch.long)
    for b, report in enumerate(sentences):
        for i, tokens in enumerate(report):
            ids[b, i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    reason = torch.zeros((len(r4v), max((len(r) for r in r4v), default=1) or 1), dtype=torch.long)
    for b, tokens in enumerate(r4v):
        reason[b, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    batch = {"sentences": ids, "r4v": reason, "n_sentences": torch.tensor(n_sent, dtype=torch.long)}
    if labels is not None:
        y = torch.full((len(labels), width_s), IGNORE, dtype=torch.long)
        for b, row in enumerate(labels):
            y[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        batch["labels"] = y
    return batch
