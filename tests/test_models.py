"""The tagger and the classifier: shapes, masking, losses worked by hand, checkpoints."""

import math

import pytest
import torch

from hiericd_core.models import (
    VARIANTS,
    ClassifierConfig,
    ICDClassifier,
    SentenceTagger,
    TaggerConfig,
    load_checkpoint,
    save_checkpoint,
    without_r4v,
)
from hiericd_core.models.classifier import attention_target, batch_sentences
from hiericd_core.models.tagger import IGNORE, batch_reports, class_weights

VOCAB = 30


def classifier(variant: str, **kw) -> ICDClassifier:
    torch.manual_seed(0)
    kw = {"hidden": 5, **kw}
    config = ClassifierConfig(variant=variant, vocab_size=VOCAB, emb_dim=6, attention_size=4,
                              n_labels=7, dropout=0.0, **kw)
    return ICDClassifier(config).eval()


def tagger(**kw) -> SentenceTagger:
    torch.manual_seed(0)
    return SentenceTagger(TaggerConfig(vocab_size=VOCAB, emb_dim=6, hidden=5, dropout=0.0, **kw)).eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_classifier_shapes_and_attention_for_every_variant(variant):
    model = classifier(variant)
    b = batch_sentences([[3, 4, 5, 6], [7, 8]], [[9, 10], []], labels=[1, 2], phrase_masks=[[0, 1, 1, 0], [1, 0]])
    assert b["tokens"].shape == (2, 4) and b["phrase_mask"].shape == (2, 4)
    logits, alpha = model(b["tokens"], b["lengths"], b["r4v"], b["r4v_lengths"])
    assert logits.shape == (2, 7)  # (batch, n_labels)
    assert alpha.shape == (2, 4)  # (batch, tokens)
    assert torch.allclose(alpha.sum(-1), torch.ones(2))
    assert alpha[1, 2:].abs().sum() == 0  # no weight on padding
    assert hasattr(model, "r4v_lstm") == variant.endswith("_r4v")
    assert hasattr(model, "att") == (variant != "pooling")
    if variant == "pooling":
        assert torch.allclose(alpha[0], torch.full((4,), 0.25)) and torch.allclose(alpha[1, :2], torch.full((2,), 0.5))
    total, ce, att = model.loss(logits, alpha, b["labels"], b["phrase_mask"])
    assert (att > 0).item() == variant.startswith("supervised")
    total.backward()


def test_unknown_variant_is_refused_and_r4v_variants_fall_back():
    with pytest.raises(ValueError, match="unknown classifier variant"):
        ClassifierConfig(variant="hierarchical")
    assert [without_r4v(v) for v in VARIANTS] == ["pooling", "attention", "supervised", "attention", "supervised"]


@pytest.mark.parametrize(("variant", "bidirectional"), [("pooling", False), ("supervised_r4v", False),
                                                        ("pooling", True), ("supervised_r4v", True)])
def test_padding_does_not_change_a_sentence(variant, bidirectional):
    model = classifier(variant, hidden=6, bidirectional=bidirectional)
    alone = batch_sentences([[3, 4, 5]], [[9]])
    padded = batch_sentences([[3, 4, 5], [6, 7, 8, 9, 10, 11, 12]], [[9], [10, 11, 12, 13]])
    with torch.no_grad():
        logits_a, alpha_a = model(alone["tokens"], alone["lengths"], alone["r4v"], alone["r4v_lengths"])
        logits_p, alpha_p = model(padded["tokens"], padded["lengths"], padded["r4v"], padded["r4v_lengths"])
    assert torch.allclose(logits_a[0], logits_p[0], atol=1e-6)
    assert torch.allclose(alpha_a[0], alpha_p[0, :3], atol=1e-6)
    assert alpha_p[0, 3:].abs().sum() == 0


def test_bidirectional_states_are_torch_packed_bilstm_states():
    """Oracle: torch's own bidirectional LSTM over packed sequences, given the classifier's two LSTMs' weights."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model = classifier("pooling", hidden=6, bidirectional=True)
    assert model.lstm.hidden_size == model.lstm_backward.hidden_size == 3
    oracle = torch.nn.LSTM(6, 3, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(oracle, name).copy_(getattr(model.lstm, name))
            getattr(oracle, name + "_reverse").copy_(getattr(model.lstm_backward, name))
    b = batch_sentences([[3, 4, 5, 6, 7], [8, 9], [10]], [[], [], []])
    with torch.no_grad():
        logits, _ = model(b["tokens"], b["lengths"])
        packed = pack_padded_sequence(model.embed(b["tokens"]), b["lengths"], batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(oracle(packed)[0], batch_first=True)  # (B, T, 6), 0 on padding
        mean = states.sum(1) / b["lengths"][:, None]  # pooling: the mean state over the real tokens
        assert torch.allclose(logits, model.out(mean), atol=1e-6)
    with pytest.raises(ValueError, match="even hidden size"):
        ClassifierConfig(hidden=5, bidirectional=True)


def test_a_report_without_reason_for_visit_gets_a_zero_reason_state():
    model = classifier("attention_r4v")
    empty = batch_sentences([[3, 4]], [[]])
    assert empty["r4v_lengths"].tolist() == [0]
    with torch.no_grad():
        logits, _ = model(**empty)
        model.out.weight[:, 5:].add_(1.0)  # the weights reading e_r4v: with e_r4v = 0 they change nothing
        again, _ = model(**empty)
    assert torch.isfinite(logits).all() and torch.allclose(logits, again)


def test_supervised_attention_loss_by_hand():
    model = classifier("supervised", lambda_att=100.0)
    logits = torch.tensor([[2.0, 0.0, *[-math.inf] * 5], [0.0, 0.0, *[-math.inf] * 5]])
    alpha = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.6, 0.4, 0.0, 0.0]])
    labels = torch.tensor([0, 1])
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]])  # row 2 has no phrase token: no attention loss
    # row 1: α̂ = [0, .5, .5, 0]; Σ(α-α̂)² = .25 + .04 + .09 = .38; row 2: 0 → mean .19
    # CE: row 1 log(1 + e^-2) = 0.126928; row 2 log 2 = 0.693147 → mean 0.410038
    total, ce, att = model.loss(logits, alpha, labels, mask)
    assert ce.item() == pytest.approx((math.log1p(math.exp(-2)) + math.log(2)) / 2, abs=1e-6)
    assert att.item() == pytest.approx(0.19, abs=1e-6)
    assert total.item() == pytest.approx(0.410038 + 100 * 0.19, abs=1e-5)
    plain = classifier("attention", lambda_att=100.0)
    total_plain, _, att_plain = plain.loss(logits, alpha, labels, mask)
    assert att_plain.item() == 0 and total_plain.item() == pytest.approx(ce.item())
    target, has = attention_target(mask)
    assert target.tolist() == [[0, 0.5, 0.5, 0], [0, 0, 0, 0]] and has.tolist() == [1.0, 0.0]



@pytest.mark.parametrize("bidirectional", [False, True])
def test_detached_attention_keeps_the_attention_loss_out_of_the_encoder(bidirectional):
    b = batch_sentences([[3, 4, 5, 6], [7, 8, 9]], [[10], [11, 12]], labels=[1, 2],
                        phrase_masks=[[0, 1, 1, 0], [1, 0, 0]])
    grads, outputs = {}, {}
    for to_encoder in (True, False):
        model = classifier("supervised_r4v", hidden=6, bidirectional=bidirectional, attention_to_encoder=to_encoder)
        logits, alpha = model(b["tokens"], b["lengths"], b["r4v"], b["r4v_lengths"])
        _, ce, att = model.loss(logits, alpha, b["labels"], b["phrase_mask"])
        att.backward(retain_graph=True)  # the attention loss alone
        grads[to_encoder] = {name: p.grad.abs().sum().item() if p.grad is not None else 0.0
                             for name, p in model.named_parameters()}
        model.zero_grad()
        ce.backward()  # the codes still reach the encoder through the context
        assert model.lstm.weight_ih_l0.grad.abs().sum() > 0
        outputs[to_encoder] = logits.detach()
    assert torch.equal(outputs[True], outputs[False])  # same weights (same seed): the same forward pass
    encoder = [n for n in grads[True] if n.startswith("lstm")]
    assert len(encoder) == (8 if bidirectional else 4)
    assert all(grads[True][n] > 0 for n in encoder) and all(grads[False][n] == 0 for n in encoder)
    for n in ("att.weight", "att.bias", "query.weight"):
        assert grads[False][n] > 0 and grads[False][n] == pytest.approx(grads[True][n])
    # without supervision the setting changes nothing: the codes reach the encoder through the scores too
    vanilla = {}
    for to_encoder in (True, False):
        model = classifier("attention_r4v", hidden=6, bidirectional=bidirectional, attention_to_encoder=to_encoder)
        logits, alpha = model(b["tokens"], b["lengths"], b["r4v"], b["r4v_lengths"])
        model.loss(logits, alpha, b["labels"], b["phrase_mask"])[0].backward()
        vanilla[to_encoder] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert all(torch.equal(x, y) for x, y in zip(vanilla[True], vanilla[False], strict=True))


def test_tagger_shapes_masking_and_weighted_loss():
    model = tagger(use_r4v=True)
    reports = [[[3, 4], [5, 6, 7], [8]], [[9, 10, 11]]]
    b = batch_reports(reports, [[12, 13], []], labels=[[0, 1, 0], [1]])
    assert b["sentences"].shape == (2, 3, 3) and b["labels"].tolist() == [[0, 1, 0], [1, IGNORE, IGNORE]]
    feats = model.features(b["sentences"], b["r4v"])
    assert feats.shape == (2, 3, 12)  # (batch, n_sentences, 2 * emb_dim)
    # the mean vector of sentence 1 of report 1 and the reason's mean beside it
    e = model.embed.weight
    assert torch.allclose(feats[0, 1, :6], e[[5, 6, 7]].mean(0))
    assert torch.allclose(feats[0, 1, 6:], e[[12, 13]].mean(0))
    assert not feats[1, 0, 6:].any()  # no reason for visit: zeros
    log_probs = model(feats, b["n_sentences"])
    assert log_probs.shape == (2, 3, 2)
    alone = batch_reports(reports[1:], [[]])
    with torch.no_grad():
        single = model(model.features(alone["sentences"], alone["r4v"]), alone["n_sentences"])
    assert torch.allclose(single[0, 0], log_probs[1, 0], atol=1e-6)  # padding reports do not leak

    weighted = SentenceTagger(model.config, class_weights(n_focus=1, n_other=3))
    weighted.load_state_dict({**model.state_dict(), "class_weights": class_weights(1, 3)})
    assert class_weights(1, 3).tolist() == pytest.approx([4 / 6, 2.0])
    lp = log_probs.detach()
    real = [(0, 0, 0), (0, 1, 1), (0, 2, 0), (1, 0, 1)]
    w = {0: 4 / 6, 1: 2.0}
    expected = -sum(w[y] * lp[i, j, y] for i, j, y in real) / sum(w[y] for *_, y in real)
    assert weighted.loss(lp, b["labels"]).item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_tagger_padding_does_not_change_a_report(bidirectional):
    model = tagger(use_r4v=False, bidirectional=bidirectional)
    alone = batch_reports([[[3, 4], [5]]], [[]])
    padded = batch_reports([[[3, 4], [5]], [[6], [7, 8, 9], [10], [11]]], [[], []])
    with torch.no_grad():
        a = model(model.features(alone["sentences"], None), alone["n_sentences"])
        p = model(model.features(padded["sentences"], None), padded["n_sentences"])
    assert torch.allclose(a[0], p[0, :2], atol=1e-6)


def test_tagger_without_reason_reads_sentences_only():
    model = tagger(use_r4v=False)
    b = batch_reports([[[3, 4]]], [[5]])
    assert model.features(b["sentences"], None).shape == (1, 1, 6)


def test_frozen_embeddings_get_no_gradient():
    assert not tagger(freeze_embeddings=True).embed.weight.requires_grad
    assert classifier("attention", freeze_embeddings=False).embed.weight.requires_grad


def test_checkpoints_carry_their_config(tmp_path):
    model = classifier("supervised_r4v")
    save_checkpoint(tmp_path / "c.pt", model, labels=["A", "B"], variant="supervised_r4v")
    again, checkpoint = load_checkpoint(tmp_path / "c.pt")
    assert isinstance(again, ICDClassifier) and again.config == model.config
    assert checkpoint["labels"] == ["A", "B"]
    b = batch_sentences([[3, 4, 5]], [[6]])
    with torch.no_grad():
        assert torch.equal(model(**b)[0], again(**b)[0])
    t = tagger()
    save_checkpoint(tmp_path / "t.pt", t)
    t2, _ = load_checkpoint(tmp_path / "t.pt")
    assert isinstance(t2, SentenceTagger) and torch.equal(t2.class_weights, t.class_weights)
    saved = torch.load(tmp_path / "c.pt", weights_only=False)  # written before the bidirectional option
    del saved["config"]["bidirectional"]
    torch.save(saved, tmp_path / "forward.pt")
    older, _ = load_checkpoint(tmp_path / "forward.pt")
    assert older.config == model.config and not older.config.bidirectional
    torch.save({"format": 99}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="retrain"):
        load_checkpoint(tmp_path / "old.pt")
