"""A model folder over a data set's own splits: what the evaluation needs, and the phrase memory.

:func:`predict_dataset` runs a model on one split's sentences and tokens as the
data set stored them (no re-segmenting), so the tagger, the classifier and the
end-to-end codes are scored on exactly the coders' sentences.
:func:`add_phrase_memory` gives a model folder the phrase memory of the data
set's training reports (see :mod:`hiericd_core.infer` for how inference uses it).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hiericd_core.infer import InferenceConfig, Predictor, SegmentedReport
from hiericd_core.segment import Sentence, Token


@dataclass
class DatasetPredictions:
    """What the evaluation needs from one split of a data set.

    * ``codes`` / ``gold`` — report id → predicted / true code set (paper Table 5);
    * ``sentences`` — columns ``report_id, sentence_idx, focus_probability,
      predicted_focus, is_focus`` (Table 3);
    * ``classifier_rows`` — the classifier on the coders' focus sentences:
      columns ``report_id, sentence_idx, code, predicted, probability,
      attention, attention_mask`` (Table 4 and evidence; ``attention`` covers
      every token of the sentence, 0 beyond the model's token cap);
    * ``ranked`` — report id → every code ranked, best first: the predicted
      codes, then every other label-space code
      (:meth:`~hiericd_core.infer.Predictor.rank_codes`), for the MAPs.
    """

    codes: dict[str, set[str]]
    gold: dict[str, set[str]]
    sentences: dict[str, list]
    classifier_rows: dict[str, list]
    labels: list[str]
    variant: str
    ranked: dict[str, list[str]] = field(default_factory=dict)


def predict_dataset(model_dir: str | Path, dataset_dir: str | Path, split: str = "test", batch_size: int = 64,
                    threads: int | None = None, config: InferenceConfig | None = None, ranked: bool = True,
                    predictor: Predictor | None = None) -> DatasetPredictions:
    """Run the model on a data set split, on the data set's own sentences and tokens.

    ``config`` as in :meth:`Predictor.load` (default: the model folder's ``inference.json``).
    ``ranked`` also ranks every code for each report (a second classifier
    pass over all sentences); the predicted codes do not depend on it.
    ``predictor``: use this loaded model instead of loading ``model_dir``.
    """
    predictor = predictor or Predictor.load(model_dir, threads=threads, config=config)
    s, r, order, docs = _read_split(dataset_dir, split)
    r4v = dict(zip(r["report_id"], r["r4v_tokens"], strict=True))
    doc_list = list(docs.values())
    # sys.maxsize: no depth cut, every label-space code is ranked
    coded, focus_p = predictor.code_segmented(doc_list, batch_size, sys.maxsize if ranked else 0)
    # docs hold the sentences in `order`, so the flattened per-document lists line up with it
    predicted = [j in set(result.focus_sentences) for result, doc in zip(coded, doc_list, strict=True)
                 for j in range(len(doc.sentences))]
    sentences = {"report_id": [s["report_id"][i] for i in order],
                 "sentence_idx": [s["sentence_idx"][i] for i in order],
                 "focus_probability": [float(x) for p in focus_p for x in p], "predicted_focus": predicted,
                 "is_focus": [bool(s["is_focus"][i]) for i in order]}
    rows = [i for i in order if s["classifier_row"][i]]
    probs, alphas = predictor.classify([s["tokens"][i] for i in rows], [r4v.get(s["report_id"][i]) or []
                                                                         for i in rows], batch_size)
    attention = []
    for i, alpha in zip(rows, alphas, strict=True):
        full = np.zeros(len(s["tokens"][i]), dtype=np.float64)
        full[: len(alpha)] = alpha[: len(full)]
        attention.append(full.tolist())
    classifier_rows = {
        "report_id": [s["report_id"][i] for i in rows], "sentence_idx": [s["sentence_idx"][i] for i in rows],
        "code": [s["codes"][i][0] for i in rows], "predicted": [predictor.labels[int(k)] for k in probs.argmax(1)]
        if len(rows) else [], "probability": [float(x) for x in probs.max(1)] if len(rows) else [],
        "attention": attention, "attention_mask": [list(s["attention_mask"][i]) for i in rows],
    }
    codes = {rid: set() for rid in r["report_id"]}
    codes.update({result.report_id: {c.code for c in result.codes} for result in coded})
    gold = {rid: set(c) for rid, c in zip(r["report_id"], r["codes"], strict=True)}
    rankings: dict[str, list[str]] = {}
    if ranked:
        rankings = {rid: [] for rid in r["report_id"]}
        rankings.update({result.report_id: [c.code for c in result.ranking] for result in coded})
    return DatasetPredictions(codes, gold, sentences, classifier_rows, predictor.labels, predictor.variant, rankings)


def _read_split(dataset_dir: str | Path, split: str):
    """One split's sentence and report columns, the sentence rows in (report, sentence) order and the
    segmented reports built from them (the data set's own sentences and tokens)."""
    import pyarrow.parquet as pq

    dataset_dir = Path(dataset_dir)
    s = pq.read_table(dataset_dir / "sentences.parquet", filters=[("split", "=", split)], columns=[
        "report_id", "sentence_idx", "start", "end", "text", "tokens", "token_starts", "token_ends", "is_focus",
        "codes", "attention_mask", "classifier_row"]).to_pydict()
    r = pq.read_table(dataset_dir / "reports.parquet", filters=[("split", "=", split)],
                      columns=["report_id", "r4v_tokens", "codes"]).to_pydict()
    r4v = dict(zip(r["report_id"], r["r4v_tokens"], strict=True))
    order = sorted(range(len(s["report_id"])), key=lambda i: (s["report_id"][i], s["sentence_idx"][i]))
    docs: dict[str, SegmentedReport] = {}
    for i in order:
        rid = s["report_id"][i]
        tokens = tuple(Token(t, a, b) for t, a, b in zip(s["tokens"][i], s["token_starts"][i], s["token_ends"][i],
                                                         strict=True))
        docs.setdefault(rid, SegmentedReport(rid, [], list(r4v.get(rid) or []))).sentences.append(
            Sentence(s["start"][i], s["end"][i], s["text"][i], tokens))
    return s, r, order, docs


def split_documents(dataset_dir: str | Path, split: str) -> tuple[list[SegmentedReport], dict[str, set[str]]]:
    """A split's reports as the data set segmented them, and each report's gold codes (every report, even one
    without sentences)."""
    _, r, _, docs = _read_split(dataset_dir, split)
    return list(docs.values()), {rid: set(c) for rid, c in zip(r["report_id"], r["codes"], strict=True)}


# ---------------------------------------------------------------- phrase memory


def add_phrase_memory(model_dir: str | Path, dataset_dir: str | Path, config: InferenceConfig,
                      merged_dirs: Sequence[str | Path] | None = None, min_count: int = 1, fold: bool = True
                      ) -> dict:
    """Give a model folder a phrase memory: ``phrases.json`` and ``inference.json`` (``config``).

    The phrases are those of the data set's training reports: from the merged
    rounds' final annotations (their raw text) when ``merged_dirs`` is given,
    else from the data set's per-code phrase masks (``code_masks``: every
    phrase, multi-code sentences included, as tokens). Each phrase seen ``min_count`` times maps to its most
    frequent code; with ``fold`` phrases and texts meet as folded tokens
    (:func:`hiericd_core.baselines.fold_token`: accents, plurals, gender endings).
    Each phrase's reliability is measured on the same training reports.

    Returns:
        ``{"phrases": count, "config": dict}``.
    """
    from dataclasses import replace

    from hiericd_core.baselines import corpus_from_merged, fit_phrase_dictionary, load_corpus
    from hiericd_core.files import atomic_write_json

    train = load_corpus(dataset_dir, "train")
    if merged_dirs is not None:
        train = replace(train, phrases=corpus_from_merged(merged_dirs, train.report_ids).phrases)
    memory = fit_phrase_dictionary(train.phrases, min_count, fold).calibrate(train.texts, train.codes)
    memory.save(model_dir)
    atomic_write_json(Path(model_dir) / "inference.json", asdict(config))
    return {"phrases": len(memory.entries), "config": asdict(config)}
