"""The ICD classifier: one code for a focus sentence, with phrase-level attention.

An LSTM reads the focus sentence's words (states ``h_t``, last real state
``h_T``). With attention, ``u_t = tanh(W h_t + b)`` (``attention_size``) is
scored against the query ``q = W_q h_T`` (``h_T`` mapped to the attention size,
so the dot product is defined whatever the hidden size), ``α = softmax(u_t ·
q)`` over the real tokens, and the context is ``Σ α_t h_t``. With the reason
for visit, a second LSTM reads it and its last state ``e_r4v`` is
concatenated to the context. A linear layer gives the codes' logits.

``bidirectional`` (what training uses unless told otherwise) reads the sentence
with a forward and a backward LSTM of ``hidden // 2`` each: ``h_t`` is both
states at token t, and ``h_T`` is the forward last state with the backward state
at the first token, each of which has read the whole sentence. The reason: the
supervised target spreads attention evenly over the coders' phrase, and a
forward-only state inside a phrase has not yet read the rest of it (in "squamous
cell carcinoma of the external upper lip" the state at "carcinoma" knows nothing
of the lip), so the supervised context averages partial states and loses the
words that tell rare codes apart; a backward half gives every phrase token the
whole phrase. On the 39,000-report round this closed a 0.05 macro F1 gap to the
unsupervised variant (``docs/experiments.md``). The paper names an LSTM and its
last state; ``bidirectional=False`` is that model read as a forward LSTM.

``attention_to_encoder`` (supervised variants) says where the attention loss
reaches. With ``True`` (end to end) its gradient flows through the scores into
the sentence LSTM; at λ = 100 it is most of the loss, so the LSTM is shaped to
find the coders' phrase as much as to tell codes apart, and it learns codes more
slowly (on the 39,000-report round, dev macro F1 0.28 after one epoch against
0.52). With ``False`` (what training uses unless told otherwise) the scores read
the sentence LSTM's states detached: the attention loss trains only ``W``, ``b``
and ``W_q``, which learn to find the phrase in states the codes alone shaped,
and the codes train the LSTM through the context only. The loss is the same,
``CE + λ Σ_t (α_t − α̂_t)²``; only its path changes (``docs/experiments.md``).

The paper's Table 4 variants (``variant``):

=================  =========  ===================  ===============
variant            context    attention loss       reason for visit
=================  =========  ===================  ===============
``pooling``        mean h_t   —                    —
``attention``      Σ α_t h_t  —                    —
``supervised``     Σ α_t h_t  λ Σ_t (α_t − α̂_t)²   —
``attention_r4v``  Σ α_t h_t  —                    e_r4v
``supervised_r4v`` Σ α_t h_t  λ Σ_t (α_t − α̂_t)²   e_r4v
=================  =========  ===================  ===============

``α̂`` is the coders' phrase mask normalised to sum 1 over the sentence's
tokens. ``pooling`` returns uniform weights as its "attention" so callers
need no special case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Variant = Literal["pooling", "attention", "supervised", "attention_r4v", "supervised_r4v"]
VARIANTS: tuple[str, ...] = ("pooling", "attention", "supervised", "attention_r4v", "supervised_r4v")


def without_r4v(variant: str) -> str:
    """The variant a round without reasons for visit falls back to."""
    return variant.removesuffix("_r4v")


@dataclass
class ClassifierConfig:
    variant: Variant = "supervised_r4v"
    vocab_size: int = 2
    emb_dim: int = 100
    hidden: int = 256
    attention_size: int = 128
    lambda_att: float = 100.0
    dropout: float = 0.2
    n_labels: int = 2
    freeze_embeddings: bool = True
    bidirectional: bool = False  # True: hidden // 2 per direction, so states stay ``hidden`` wide
    # supervised variants, False: the attention scores read the LSTM states detached, so the attention loss
    # trains only W, b and W_q and the LSTM learns from the codes alone, through the context
    attention_to_encoder: bool = True

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown classifier variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.bidirectional and self.hidden % 2:
            raise ValueError(f"a bidirectional classifier needs an even hidden size, not {self.hidden}")

    @property
    def uses_attention(self) -> bool:
        return self.variant != "pooling"

    @property
    def supervised(self) -> bool:
        return self.variant.startswith("supervised")

    @property
    def uses_r4v(self) -> bool:
        return self.variant.endswith("_r4v")


def _run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a forward ``lstm`` over padded ``x (B, T, E)``: states (B, T, H) and the last real state (B, H).

    Padding comes after the real tokens, so a forward LSTM's states at real
    positions do not see it; running on the padded batch (CPU's fused kernel)
    is about 1.7x faster than packing, and the states past a sentence's end
    are simply never read.
    """
    states, _ = lstm(x)  # (B, T, H)
    last = (lengths - 1).clamp(min=0).to(states.device)  # (B,)
    return states, states[torch.arange(states.shape[0], device=states.device), last]  # (B, T, H), (B, H)


def reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) positions that reverse each row's first ``lengths[b]`` items and keep the padding in place.

    The map is its own inverse, so one gather reverses the real tokens and a second puts them back.
    """
    steps = torch.arange(width, device=lengths.device)[None, :]  # (1, T)
    flipped = lengths[:, None] - 1 - steps  # (B, T)
    return torch.where(flipped >= 0, flipped, steps)  # (B, T)


def _run_backward(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Backward states (B, T, H) of padded ``x (B, T, E)``, in text order.

    A forward ``lstm`` reads each sentence's real tokens reversed in place, so the padding stays after
    the real tokens and the padded batch needs no packing. The state at position 0 has read the whole
    sentence.
    """
    index = reverse_index(lengths.to(x.device), x.shape[1]).unsqueeze(-1)  # (B, T, 1)
    states, _ = lstm(x.gather(1, index.expand(-1, -1, x.shape[2])))  # (B, T, H), reversed
    return states.gather(1, index.expand(-1, -1, states.shape[2]))  # (B, T, H), text order


class ICDClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.emb_dim, padding_idx=0)
        self.embed.weight.requires_grad_(not config.freeze_embeddings)
        self.drop = nn.Dropout(config.dropout)
        width = config.hidden // 2 if config.bidirectional else config.hidden
        self.lstm = nn.LSTM(config.emb_dim, width, batch_first=True)
        if config.bidirectional:  # states [forward h_t, backward h_t], ``hidden`` wide together
            self.lstm_backward = nn.LSTM(config.emb_dim, width, batch_first=True)
        if config.uses_attention:
            self.att = nn.Linear(config.hidden, config.attention_size)  # u_t = tanh(W h_t + b)
            self.query = nn.Linear(config.hidden, config.attention_size, bias=False)  # q = W_q h_T
        context = config.hidden
        if config.uses_r4v:
            self.r4v_lstm = nn.LSTM(config.emb_dim, config.hidden, batch_first=True)
            context += config.hidden
        self.out = nn.Linear(context, config.n_labels)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, r4v: torch.Tensor | None = None,
                r4v_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Code logits and attention weights.

        Args:
            tokens: (batch, T) ids of the focus sentences, 0-padded.
            lengths: (batch,) real tokens per sentence (>= 1).
            r4v: (batch, R) ids of the reasons for visit, 0-padded (used by ``*_r4v`` variants).
            r4v_lengths: (batch,) real tokens per reason; 0 for a report without one (e_r4v = 0).

        Returns:
            ``(logits (batch, n_labels), alpha (batch, T))``; alpha is 0 on padding and sums to 1.
        """
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]  # (B, T)
        x = self.drop(self.embed(tokens))  # (B, T, E)
        h, h_last = _run_lstm(self.lstm, x, lengths)  # (B, T, H), (B, H)
        if self.config.bidirectional:  # h_T: the forward last state and the backward first state
            back = _run_backward(self.lstm_backward, x, lengths)  # (B, T, H)
            h, h_last = torch.cat([h, back], dim=-1), torch.cat([h_last, back[:, 0]], dim=-1)
        if self.config.uses_attention:
            detach = self.config.supervised and not self.config.attention_to_encoder
            h_s, last_s = (h.detach(), h_last.detach()) if detach else (h, h_last)  # the states the scores read
            u = torch.tanh(self.att(h_s))  # (B, T, A)
            q = self.query(last_s)  # (B, A)
            scores = (u @ q.unsqueeze(-1)).squeeze(-1)  # (B, T)
            alpha = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, T)
        else:
            alpha = mask.float() / mask.sum(-1, keepdim=True).clamp(min=1)  # (B, T) uniform = mean pooling
        context = (alpha.unsqueeze(-1) * h).sum(1)  # (B, H)
        if self.config.uses_r4v:
            assert r4v is not None and r4v_lengths is not None
            _, e_r4v = _run_lstm(self.r4v_lstm, self.drop(self.embed(r4v)), r4v_lengths)  # (B, H)
            e_r4v = e_r4v * (r4v_lengths > 0).unsqueeze(-1).to(e_r4v.dtype)
            context = torch.cat([context, e_r4v], dim=-1)  # (B, 2H)
        return self.out(self.drop(context)), alpha  # (B, L), (B, T)

    def loss(self, logits: torch.Tensor, alpha: torch.Tensor, labels: torch.Tensor,
             phrase_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-entropy plus, for supervised variants, ``λ · Σ_t (α_t − α̂_t)²`` averaged over the batch.

        Args:
            logits: (batch, n_labels).
            alpha: (batch, T) attention weights.
            labels: (batch,) label indices.
            phrase_mask: (batch, T) the coders' phrase mask (1 inside a phrase), 0 on padding.
                A row without any phrase token adds no attention loss.

        Returns:
            ``(total, cross_entropy, attention_loss)``, scalars.
        """
        ce = nn.functional.cross_entropy(logits, labels)
        att = logits.new_zeros(())
        if self.config.supervised and phrase_mask is not None:
            target, has_phrase = attention_target(phrase_mask)  # (B, T), (B,)
            per_row = ((alpha - target) ** 2).sum(-1) * has_phrase  # (B,)
            att = per_row.mean()
        return ce + self.config.lambda_att * att, ce, att


def attention_target(phrase_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``α̂``: the mask normalised to sum 1 per row, and which rows have a phrase token (as 0/1 floats)."""
    mask = phrase_mask.float()  # (B, T)
    total = mask.sum(-1, keepdim=True)  # (B, 1)
    return mask / total.clamp(min=1), (total.squeeze(-1) > 0).float()


def _pad(rows: list[list[int]], dtype: torch.dtype = torch.long) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    out = torch.zeros((len(rows), max(int(lengths.max()) if len(rows) else 1, 1)), dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=dtype)
    return out, lengths


def batch_sentences(tokens: list[list[int]], r4v: list[list[int]], labels: list[int] | None = None,
                    phrase_masks: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Pad focus sentences (token ids) and their reasons for visit into the classifier's input tensors.

    Returns:
        ``tokens`` (B, T), ``lengths`` (B,), ``r4v`` (B, R), ``r4v_lengths`` (B,)
        and, when given, ``labels`` (B,) and ``phrase_mask`` (B, T).
    """
    ids, lengths = _pad(tokens)
    reason, r4v_lengths = _pad(r4v)
    batch = {"tokens": ids, "lengths": lengths, "r4v": reason, "r4v_lengths": r4v_lengths}
    if labels is not None:
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
    if phrase_masks is not None:
        mask, _ = _pad(phrase_masks, torch.float32)
        batch["phrase_mask"] = mask[:, : ids.shape[1]]
    return batch
