"""Coding reports with a trained model folder: report → sentences → tagger → classifier → codes.

The tagger marks each sentence whose focus probability is at least 0.5 (when
none is, the most probable one); the classifier codes every marked sentence;
the report's codes are the union, each with the sentence and the attention's
heaviest tokens as evidence (offsets into the report text). Both models run in
batches: the tagger over reports, the classifier over all marked sentences of
a call at once.

Input problems never raise: a report with no text, or a file that cannot be
read, gets a message in ``problems`` and the rest goes on. Input the model
cannot have been meant for is coded with a warning (``warnings``), because its
codes may be confident nonsense: a report that reads as another language than
the model's training language (a cheap count of common function words), one
most of whose words the model's vocabulary does not know
(:data:`UNKNOWN_WORDS_WARNING`), or no reasons for visit for a model trained
with them.

``predictions.tsv`` is CodiEsp's format: ``report_id<TAB>code`` lines,
sorted, no header (with ``scores``, a third column: the code's probability).
With ``ranked=K`` it holds each report's ranking instead (reports sorted,
codes best first, at most K; see :meth:`Predictor.rank_codes` for the rule).
``evidence.jsonl`` holds one :meth:`ReportPrediction.to_json` object per report.

Beyond the paper, :class:`InferenceConfig` can back the classifier off to a
**phrase memory** (the coders' phrases of the training reports, each mapped
to its most frequent code: :class:`hiericd_core.baselines.PhraseDictionary`),
for corpora whose long tail the label space cannot hold (CodiEsp): the codes
of the known phrases found in the tagger's focus sentences (or anywhere in
the report) join the classifier's, which may be held to a minimum
probability, kept to the sentences no phrase was found in, or dropped where
a phrase already gave a code of the same ICD-10 category. Phrases that
seldom meant their code in training can be left out (reliability, see
:meth:`~hiericd_core.baselines.PhraseDictionary.calibrate`). A model
folder's ``inference.json`` (written by :func:`~hiericd_core.infer_dataset.add_phrase_memory` with
``phrases.json``) sets the default for :meth:`Predictor.load`. A phrase code
carries its phrase's reliability as probability and, as evidence, the
tokens of the matched phrase.

Scoring a model on a data set's own sentences, and giving a model folder its
phrase memory, are in :mod:`hiericd_core.infer_dataset`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hiericd_core.segment import Sentence, Token

FOCUS_THRESHOLD = 0.5
PHRASE_MODES = ("off", "focus", "report")
UNKNOWN_WORDS_WARNING = 0.5  # warn when more than this share of a report's words is not in the model's vocabulary
# Common function words of the languages hiericd segments: a report's counts say which language it is in.
# Words both languages use ("no", "a") are left out.
FUNCTION_WORDS = {
    "en": frozenset("the and of with was is to for on were are this that which from by at has had an".split()),
    "es": frozenset("de la el y con los las del que por se una un para al es sin en su".split()),
}
LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}
_MIN_FUNCTION_WORDS = 8  # fewer hits say nothing about a report's language

logger = logging.getLogger(__name__)


class InputError(ValueError):
    """An input folder hiericd cannot code (no reports in it); the message says what to give instead."""


@dataclass(frozen=True)
class InferenceConfig:
    """How sentence codes become report codes; a model folder's ``inference.json`` holds one.

    The paper's rule is the default: the classifier's best code for each focus sentence.
    """

    focus_threshold: float = FOCUS_THRESHOLD  # a sentence is a focus sentence when p(focus) >= this
    max_codes_per_sentence: int = 1  # the classifier's k best codes of a sentence are candidates
    min_probability: float = 0.0  # a sentence's best classifier code needs at least this probability
    extra_probability: float = 0.5  # its 2nd..k-th codes need at least this
    phrase_memory: str = "off"  # "focus": add phrase codes found in focus sentences; "report": anywhere
    phrase_min_reliability: float = 0.0  # leave out phrases that meant their code less often in training
    # "report" mode: a phrase less reliable than this counts only in a sentence the tagger marks as focus
    phrase_focus_below: float = 0.0
    classifier_where: str = "all"  # "unmatched": classifier codes only for sentences without a phrase found
    same_category: bool = False  # drop a classifier code when a phrase gave another code of its ICD-10 category
    # the phrase memory's loose matches too: a known phrase's content words in any order (PhraseDictionary.find)
    phrase_loose: bool = False
    # a report left without codes gets the classifier's likeliest code (the paper: every report has one)
    fallback: bool = True

    def __post_init__(self) -> None:
        if self.phrase_memory not in PHRASE_MODES:
            raise ValueError(f"phrase_memory {self.phrase_memory!r}: use one of {', '.join(PHRASE_MODES)}")
        if self.classifier_where not in ("all", "unmatched"):
            raise ValueError(f"classifier_where {self.classifier_where!r}: use 'all' or 'unmatched'")
        if self.max_codes_per_sentence < 1:
            raise ValueError("max_codes_per_sentence must be at least 1")

    @classmethod
    def from_dict(cls, data: dict) -> InferenceConfig:
        """From ``inference.json``; unknown keys raise (the message names them)."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown inference setting(s) {', '.join(unknown)}")
        return cls(**data)


class RankedCode(NamedTuple):
    """One place of a report's ranking (:meth:`Predictor.rank_codes`)."""

    code: str
    score: float  # the code's probability for a predicted code, else max over sentences of p(focus)·p(code)
    predicted: bool  # the inference rule gave it (phrase memory included); else a candidate below the cut


class EvidenceToken(NamedTuple):
    token: str
    weight: float
    start: int  # offsets into the report text, end exclusive
    end: int


@dataclass
class CodePrediction:
    code: str
    probability: float
    sentence_idx: int
    sentence_start: int
    sentence_end: int
    sentence_text: str
    top_tokens: list[EvidenceToken]  # heaviest attention first (phrase codes: the phrase's tokens)
    source: str = "classifier"  # or "phrase" (the phrase memory)


@dataclass
class ReportPrediction:
    report_id: str
    codes: list[CodePrediction] = field(default_factory=list)  # most probable first
    focus_sentences: list[int] = field(default_factory=list)
    n_sentences: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # coded, but the codes may be nonsense (module docstring)
    # {"words", "unknown_words", "language"}: what the warnings were worked out from (language None: unsure)
    text_checks: dict = field(default_factory=dict)
    ranking: list[RankedCode] = field(default_factory=list)  # filled only when a ranking is asked for

    def to_json(self) -> dict:
        """A plain dict for ``evidence.jsonl``, named tuples kept (JSON lists once written).

        ``top_tokens`` as ``[token, weight, start, end]``, ``ranking`` as
        ``[code, score, predicted]`` (empty unless a ranking was asked for). The same as
        ``dataclasses.asdict(self)``, without its deep copies (this runs for every report).
        """
        return {"report_id": self.report_id,
                "codes": [{**vars(c), "top_tokens": list(c.top_tokens)} for c in self.codes],
                "focus_sentences": list(self.focus_sentences), "n_sentences": self.n_sentences,
                "problems": list(self.problems), "warnings": list(self.warnings), "text_checks": dict(self.text_checks),
                "ranking": list(self.ranking)}


@dataclass
class SegmentedReport:
    """A report already split into sentences and tokens (as a data set stores it), with its reason for visit."""

    report_id: str
    sentences: list[Sentence]
    r4v_tokens: list[str]


def _backend(segmenter: str | None) -> str:
    """The segmenter backend a data set recorded (e.g. ``pysbd:en+...``), so inference tokenises alike."""
    name = (segmenter or "auto").split(":")[0]
    return name if name in ("scispacy", "pysbd", "rule") else "auto"


class Predictor:
    """A loaded model folder; see :meth:`load`."""

    def __init__(self, tagger, classifier, vocab, labels: list[str], variant: str, max_tokens: int,
                 language: str = "en", segmenter: str | None = None, top_k: int = 5, threads: int | None = None,
                 config: InferenceConfig | None = None, phrases=None):
        self.tagger, self.classifier, self.vocab = tagger, classifier, vocab
        self.labels, self.variant, self.max_tokens = labels, variant, max_tokens
        self.language, self.segmenter_name, self.top_k = language, segmenter, top_k
        self.threads = threads  # torch threads while predicting; None leaves torch's setting
        self.config = config or InferenceConfig()
        # a PhraseDictionary, needed when config.phrase_memory is not "off"; pruned before matching, so a shorter
        # reliable phrase inside a pruned longer one is still found
        if self.config.phrase_memory != "off" and phrases is None:
            raise ValueError("phrase_memory needs a phrase dictionary: see add_phrase_memory")
        self.all_phrases = phrases  # unpruned, for reconfigured()
        self.phrases = phrases.pruned(self.config.phrase_min_reliability) if phrases is not None else None
        self._segmenter = None
        self.model_dir: Path | None = None  # set by load(); worker processes load the model from it
        self._pool = None
        self.workers = 1

    @classmethod
    def load(cls, model_dir: str | Path, top_k: int = 5, threads: int | None = None,
             config: InferenceConfig | None = None, workers: int = 1) -> Predictor:
        """Load ``tagger.pt``, ``classifier.pt`` and ``vocab.json`` from a model folder.

        ``top_k`` evidence tokens are kept per code; ``threads`` sets torch's
        threads while predicting (None: as they are). ``config`` defaults to
        the folder's ``inference.json`` (else the paper's rule); a phrase
        memory reads the folder's ``phrases.json``. ``workers`` > 1 starts
        that many worker processes (see :meth:`start_workers`).

        Raises:
            FileNotFoundError: a file of the model folder is missing (the message says which).
            ModelFileError: a file of the model folder is truncated or garbage (the message names it).
        """
        from hiericd_core.embeddings import Vocabulary
        from hiericd_core.models import ModelFileError, load_checkpoint

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: no such model folder")
        for name in ("tagger.pt", "classifier.pt", "vocab.json"):
            if not (model_dir / name).is_file():
                raise FileNotFoundError(f"{model_dir}: no {name}; is this a model folder written by `train_model`?")
        if config is None and (model_dir / "inference.json").is_file():
            with _model_file(model_dir / "inference.json"):
                config = InferenceConfig.from_dict(
                    json.loads((model_dir / "inference.json").read_text(encoding="utf-8")))
        config = config or InferenceConfig()
        phrases = None
        if config.phrase_memory != "off":
            from hiericd_core.baselines import PhraseDictionary

            if not (model_dir / "phrases.json").is_file():
                raise FileNotFoundError(f"{model_dir}: no phrases.json for the phrase memory; "
                                        "write it with hiericd_core.infer_dataset.add_phrase_memory")
            with _model_file(model_dir / "phrases.json"):
                phrases = PhraseDictionary.load(model_dir)
        tagger, _ = load_checkpoint(model_dir / "tagger.pt")
        classifier, checkpoint = load_checkpoint(model_dir / "classifier.pt")
        with _model_file(model_dir / "vocab.json"):
            vocab = Vocabulary.load(model_dir / "vocab.json")
        try:
            labels, variant = list(checkpoint["labels"]), str(checkpoint["variant"])
            max_tokens = int(checkpoint["max_tokens"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(model_dir / "classifier.pt", f"no {exc} in the checkpoint") from exc
        predictor = cls(tagger, classifier, vocab, labels, variant, max_tokens, checkpoint.get("language") or "en",
                        checkpoint.get("segmenter"), top_k, threads, config, phrases)
        predictor.model_dir = model_dir
        predictor.start_workers(workers)
        return predictor

    def reconfigured(self, config: InferenceConfig) -> Predictor:
        """The same networks and phrase memory under another inference rule (no worker processes)."""
        other = Predictor(self.tagger, self.classifier, self.vocab, self.labels, self.variant, self.max_tokens,
                          self.language, self.segmenter_name, self.top_k, self.threads, config, self.all_phrases)
        other.model_dir, other._segmenter = self.model_dir, self._segmenter
        return other

    # ------------------------------------------------------------ worker processes

    def start_workers(self, workers: int) -> int:
        """Start ``workers`` processes that each load the model and code chunks of reports; returns how many run.

        Segmenting is most of the work of coding a raw report and runs in
        Python, so :meth:`predict` spreads large inputs over processes (each
        with ``threads // workers`` torch threads, at least one); the results
        are the same as in one process. Returns once every worker has loaded
        the model, so start-up is not counted as coding time. None are started
        for fewer than two workers, in a daemonic process (a Celery worker)
        or for a predictor not loaded from a folder.

        Raises:
            RuntimeError: a worker could not load the model (the message says why).
        """
        from hiericd_core.parallel import may_start_workers

        self.close()
        if workers < 2 or self.model_dir is None or not may_start_workers():
            return 1
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")  # torch must not be forked once initialised
        ready = ctx.Barrier(workers)
        threads = max(1, (self.threads or 1) // workers)
        # an executor, not a multiprocessing.Pool: a worker that fails to start breaks it (an error here)
        # instead of being restarted forever
        self._pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                         initargs=(str(self.model_dir), self.top_k, self.config, threads, ready))
        self.workers = workers
        try:
            # one job per worker, each waiting for all: every worker has loaded the model when they return
            for future in [self._pool.submit(_worker_ready) for _ in range(workers)]:
                future.result()
        except Exception as exc:
            self.close()
            raise RuntimeError(f"{self.model_dir}: the inference workers did not start ({type(exc).__name__}: "
                               f"{exc}); run from a script with an `if __name__ == '__main__':` guard") from exc
        return workers

    def close(self) -> None:
        """Stop the worker processes, if any (also done at exit)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        self._pool, self.workers = None, 1

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ the two models

    def focus_probabilities(self, docs: Sequence[SegmentedReport], batch_size: int = 64) -> list[np.ndarray]:
        """Per document, the focus probability of each sentence."""
        import torch

        from hiericd_core.models import torch_threads
        from hiericd_core.models.tagger import batch_reports

        out: list[np.ndarray] = []
        with torch.no_grad(), torch_threads(self.threads):
            for i in range(0, len(docs), batch_size):
                chunk = docs[i: i + batch_size]
                b = batch_reports([[self.vocab.encode([t.text for t in s.tokens], self.max_tokens) or [0]
                                    for s in d.sentences] for d in chunk],
                                  [self.vocab.encode(d.r4v_tokens, self.max_tokens) for d in chunk])
                log_probs = self.tagger(self.tagger.features(b["sentences"], b["r4v"]), b["n_sentences"])
                p = log_probs[..., 1].exp().numpy()  # (B, S)
                out += [p[j, : len(d.sentences)].copy() for j, d in enumerate(chunk)]
        return out

    def classify(self, tokens: Sequence[Sequence[str]], r4v: Sequence[Sequence[str]], batch_size: int = 64
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Code probabilities ``(n, n_labels)`` and attention weights (over each sentence's kept tokens)."""
        import torch

        from hiericd_core.models import torch_threads
        from hiericd_core.models.classifier import batch_sentences

        probs, alphas = [], []
        with torch.no_grad(), torch_threads(self.threads):
            for i in range(0, len(tokens), batch_size):
                ids = [self.vocab.encode(t, self.max_tokens) or [0] for t in tokens[i: i + batch_size]]
                reasons = [self.vocab.encode(r, self.max_tokens) for r in r4v[i: i + batch_size]]
                b = batch_sentences(ids, reasons)
                logits, alpha = self.classifier(b["tokens"], b["lengths"], b["r4v"], b["r4v_lengths"])
                probs.append(torch.softmax(logits, -1).numpy())
                alphas += [alpha[j, : len(x)].numpy().copy() for j, x in enumerate(ids)]
        n_labels = len(self.labels)
        return (np.concatenate(probs) if probs else np.zeros((0, n_labels), dtype=np.float32)), alphas

    def _phrase_codes(self, sentence: Sentence, i: int) -> list[CodePrediction]:
        """The phrase memory's codes in one sentence, each with the matched phrase's tokens as evidence."""
        out = []
        for start, end, phrase, code in self.phrases.find(sentence.text, loose=self.config.phrase_loose):
            start, end = start + sentence.start, end + sentence.start
            inside = [t for t in sentence.tokens if t.start < end and start < t.end] or \
                [Token(sentence.text[start - sentence.start: end - sentence.start], start, end)]
            # the phrase's tokens share the weight; at most top_k of them, as for attention evidence
            evidence = [EvidenceToken(t.text, 1.0 / len(inside), t.start, t.end) for t in inside[: self.top_k]]
            out.append(CodePrediction(code, self.phrases.reliability.get(phrase, 1.0), i, sentence.start, sentence.end,
                                      sentence.text, evidence, "phrase"))
        return out

    def code_segmented(self, docs: Sequence[SegmentedReport], batch_size: int, ranked: int = 0
                       ) -> tuple[list[ReportPrediction], list[np.ndarray]]:
        """Code segmented reports; also returns each report's per-sentence focus probabilities.

        With ``ranked`` > 0, each result's ``ranking`` holds up to that many
        codes (:meth:`rank_codes`); the codes themselves do not depend on it.
        """
        cfg = self.config
        focus_p = self.focus_probabilities(docs, batch_size)
        picked: list[tuple[int, int]] = []  # (doc, sentence)
        results = []
        for d, (doc, p) in enumerate(zip(docs, focus_p, strict=True)):
            chosen = [int(i) for i in np.flatnonzero(p >= cfg.focus_threshold)] or [int(np.argmax(p))]
            picked += [(d, i) for i in chosen]
            results.append(ReportPrediction(doc.report_id, focus_sentences=chosen, n_sentences=len(doc.sentences)))
        probs, alphas = self.classify([[t.text for t in docs[d].sentences[i].tokens] for d, i in picked],
                                      [docs[d].r4v_tokens for d, _ in picked], batch_size)
        best: list[dict[str, CodePrediction]] = [{} for _ in docs]

        def keep(d: int, prediction: CodePrediction) -> None:
            held = best[d].get(prediction.code)
            if held is None or held.probability < prediction.probability:  # else a likelier sentence is the evidence
                best[d][prediction.code] = prediction

        phrase_codes: dict[tuple[int, int], list[CodePrediction]] = {}
        if cfg.phrase_memory != "off":
            where = picked if cfg.phrase_memory == "focus" else [(d, i) for d, doc in enumerate(docs)
                                                                   for i in range(len(doc.sentences))]
            focus = set(picked)
            for d, i in where:
                phrase_codes[(d, i)] = [c for c in self._phrase_codes(docs[d].sentences[i], i)
                                        if (d, i) in focus or c.probability >= cfg.phrase_focus_below]
                for prediction in phrase_codes[(d, i)]:
                    keep(d, prediction)
        fallback: list[CodePrediction | None] = [None for _ in docs]  # each report's likeliest classifier code
        for (d, i), p, alpha in zip(picked, probs, alphas, strict=True):
            sentence = docs[d].sentences[i]
            found = phrase_codes.get((d, i), [])
            categories = {c.code[:3] for c in found}
            for rank, k in enumerate(top_indices(p, cfg.max_codes_per_sentence)):
                code = self.labels[k]
                order = np.argsort(-alpha, kind="stable")[: self.top_k]
                evidence = [EvidenceToken(sentence.tokens[j].text, float(alpha[j]), sentence.tokens[j].start,
                                          sentence.tokens[j].end) for j in order.tolist() if j < len(sentence.tokens)]
                prediction = CodePrediction(code, float(p[k]), i, sentence.start, sentence.end, sentence.text,
                                            evidence)
                if rank == 0 and (fallback[d] is None or fallback[d].probability < prediction.probability):
                    fallback[d] = prediction
                if float(p[k]) < (cfg.min_probability if rank == 0 else cfg.extra_probability):
                    break
                if cfg.classifier_where == "unmatched" and found:
                    break
                if cfg.same_category and code[:3] in categories and code not in {c.code for c in found}:
                    continue
                keep(d, prediction)
        for d, (result, codes) in enumerate(zip(results, best, strict=True)):
            # nearly every report has a code: never answer nothing (unless the rule says so)
            if not codes and fallback[d] is not None and cfg.fallback:
                codes[fallback[d].code] = fallback[d]
            result.codes = sorted(codes.values(), key=lambda c: (-c.probability, c.code))
        if ranked > 0:
            self.rank_codes(docs, focus_p, results, ranked, batch_size)
        return results, focus_p

    def rank_codes(self, docs: Sequence[SegmentedReport], focus_p: Sequence[np.ndarray],
                   results: Sequence[ReportPrediction], depth: int, batch_size: int = 64) -> None:
        """Fill each result's ``ranking`` with up to ``depth`` codes, best first.

        The rule: first the codes the inference rule predicted
        (``result.codes``, phrase memory codes included), in their order
        (probability, or a phrase's reliability, falling; ties by code); then,
        with a phrase memory, the codes of every phrase it finds in the report,
        those the rule's reliability cut or focus limit left out included, by
        reliability falling (ties by code); then
        the other label-space codes as candidates below the cut, by the score
        max over the report's sentences *s* of p(focus | s) · p(code | s),
        falling (ties: label-space order). Every sentence the tagger scores
        counts, not only the focus sentences, so a code of a sentence the
        tagger doubted still ranks above one no sentence supports; the focus
        probability keeps the focus sentences' codes ahead. The classifier
        runs again over all sentences, apart from the coding pass, so the
        predicted codes are exactly those of :meth:`code_segmented`.
        """
        every = [(d, i) for d, doc in enumerate(docs) for i in range(len(doc.sentences))]
        probs, _ = self.classify([[t.text for t in docs[d].sentences[i].tokens] for d, i in every],
                                 [docs[d].r4v_tokens for d, _ in every], batch_size)
        start = 0
        for doc, p_focus, result in zip(docs, focus_p, results, strict=True):
            n = len(doc.sentences)
            scores = (np.asarray(p_focus, dtype=np.float64)[:, None] * probs[start: start + n]).max(axis=0) \
                if n else np.zeros(len(self.labels))
            start += n
            ranking = [RankedCode(c.code, c.probability, True) for c in result.codes[:depth]]
            taken = {c.code for c in ranking}
            for code, reliability in self._memory_candidates(doc):
                if len(ranking) < depth and code not in taken:
                    ranking.append(RankedCode(code, reliability, False))
                    taken.add(code)
            for k in np.argsort(-scores, kind="stable").tolist():
                if len(ranking) >= depth:
                    break
                if self.labels[k] not in taken:
                    ranking.append(RankedCode(self.labels[k], float(scores[k]), False))
            result.ranking = ranking

    def _memory_candidates(self, doc: SegmentedReport) -> list[tuple[str, float]]:
        """Every code the unpruned phrase memory finds in a report, with its best phrase's reliability,
        most reliable first (ties by code); none without a phrase memory in use."""
        if self.all_phrases is None or self.config.phrase_memory == "off":
            return []
        best: dict[str, float] = {}
        for sentence in doc.sentences:
            for _, _, phrase, code in self.all_phrases.find(sentence.text, loose=self.config.phrase_loose):
                reliability = self.all_phrases.reliability.get(phrase, 1.0)
                best[code] = max(best.get(code, 0.0), reliability)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))

    # ------------------------------------------------------------ raw reports

    @property
    def uses_reasons(self) -> bool:
        """Whether the model was trained with reasons for visit (an ``*_r4v`` variant or an r4v tagger)."""
        return self.variant.endswith("_r4v") or bool(getattr(getattr(self.tagger, "config", None), "use_r4v", False))

    def segmenter(self):
        if self._segmenter is None:
            from hiericd_core.segment import Segmenter, SegmenterConfig

            self._segmenter = Segmenter(SegmenterConfig(language=self.language,
                                                        backend=_backend(self.segmenter_name)))
        return self._segmenter

    def predict(self, reports: Sequence[dict], batch_size: int = 64, progress: bool = False, ranked: int = 0
                ) -> list[ReportPrediction]:
        """Code reports given as ``{"report_id", "text", "reason_for_visit"?}`` dicts, in order.

        A report without text (missing, not a string, or blank) gets a problem
        message and no codes; one without ``report_id`` is called ``report-<n>``
        (its position, from 1). Reports are coded in chunks of
        :data:`WORKER_CHUNK`, spread over the worker processes when there are
        some (:meth:`start_workers`); ``progress`` shows a bar over the chunks.
        ``ranked`` > 0 also fills each report's ``ranking`` (:meth:`rank_codes`).
        """
        from tqdm import tqdm

        # the same chunks with or without workers: the models' batches, and so the results to the last digit,
        # do not depend on the number of workers
        jobs = [(first, list(reports[first: first + WORKER_CHUNK]), batch_size, ranked)
                for first in range(0, len(reports), WORKER_CHUNK)]
        if self._pool is not None and len(jobs) > 1:
            parts = self._pool.map(_worker_predict, jobs)
        else:
            parts = (self._predict(part, size, first, rank) for first, part, size, rank in jobs)
        out: list[ReportPrediction] = []
        for part in tqdm(parts, total=len(jobs), desc="coding", unit="chunk", disable=not progress or len(jobs) < 2):
            out += part
        return out

    def _predict(self, reports: Sequence[dict], batch_size: int, first: int = 0, ranked: int = 0
                 ) -> list[ReportPrediction]:
        """:meth:`predict` in this process; ``first`` is the position of ``reports[0]`` in the whole input."""
        out: list[ReportPrediction | None] = []
        docs, where = [], []
        for n, report in enumerate(reports, first):
            if not isinstance(report, dict):
                out.append(ReportPrediction(f"report-{n + 1}", problems=["not a report: pass a dict with "
                                                                         "report_id, text, reason_for_visit"]))
                continue
            rid = str(report.get("report_id") or f"report-{n + 1}")
            text, reason = report.get("text"), report.get("reason_for_visit") or ""
            problem = None
            if not isinstance(text, str):
                problem = "no text given: pass the report's text as a string"
            elif not text.strip():
                problem = "empty text: nothing to code"
            if problem:
                out.append(ReportPrediction(rid, problems=[problem]))
                continue
            try:
                sentences = self.segmenter().segment(text)
                r4v = [t.text for s in self.segmenter().segment(str(reason)) for t in s.tokens] if reason else []
            except Exception as exc:  # noqa: BLE001 - one report the segmenter chokes on must not sink the others
                logger.exception("report %s could not be segmented", rid)
                out.append(ReportPrediction(rid, problems=[f"the text could not be split into sentences "
                                                           f"({type(exc).__name__}); nothing coded"]))
                continue
            if not any(s.tokens for s in sentences):
                out.append(ReportPrediction(rid, problems=["no words in the text: nothing to code"]))
                continue
            docs.append(SegmentedReport(rid, sentences, r4v))
            where.append(len(out))
            out.append(None)
        coded, _ = self.code_segmented(docs, batch_size, ranked) if docs else ([], [])
        for i, doc, result in zip(where, docs, coded, strict=True):
            self._check_text(doc, result)
            out[i] = result
        return [r for r in out if r is not None]

    def _check_text(self, doc: SegmentedReport, result: ReportPrediction) -> None:
        """Fill ``result.text_checks`` and warn about words the model does not know or another language."""
        words = [t.text.lower() for s in doc.sentences for t in s.tokens if not _PUNCTUATION.fullmatch(t.text)]
        unknown = sum(1 for w in words if w not in self.vocab.index)
        language = guess_language(words)
        result.text_checks = {"words": len(words), "unknown_words": unknown, "language": language}
        if language is not None and self.language in FUNCTION_WORDS and language != self.language:
            result.warnings.append(f"the text reads as {_language_name(language)}, the model was trained on "
                                   f"{_language_name(self.language)} reports: its codes may be nonsense")
        if words and unknown / len(words) > UNKNOWN_WORDS_WARNING:
            result.warnings.append(f"{unknown / len(words):.0%} of the words are unknown to the model: "
                                   "its codes may be nonsense")

    def predict_folder(self, input_dir: str | Path, out_tsv: str | Path, evidence_jsonl: str | Path | None = None,
                       batch_size: int = 64, progress: bool = False, scores: bool = False, ranked: int = 0
                       ) -> dict:
        """Code every ``*.txt`` of a folder (``.ann`` files are ignored) and write the predictions.

        ``metadata.csv`` (columns ``report_id, reason_for_visit``), when present,
        gives the reasons for visit. A round folder (``texts/`` and/or
        ``round.toml``) is read as its ``texts/`` with the round's
        ``metadata.csv``, and its language is checked against the model's. A
        file that cannot be read as UTF-8, or is empty, is reported and
        skipped. ``scores`` adds each code's probability as a third column.
        ``ranked`` > 0 writes each report's ranking instead of its codes: up
        to that many codes, best first (:meth:`rank_codes`; with ``scores``,
        the ranking score), reports sorted by id.

        Returns:
            ``{"files", "coded", "codes", "problems": [{"file", "problem"}], "warnings": [str],
            "predictions", "evidence"}``; ``warnings`` sums up the reports' warnings, one line each.

        Raises:
            InputError: the folder holds no ``.txt`` report (the message says where to look).
            RoundError: a round folder's ``round.toml`` cannot be read.
        """
        from hiericd_core.files import atomic_write_text

        texts, metadata, round_language = report_folder(input_dir)
        problems: list[dict] = []
        paths = sorted(texts.glob("*.txt"))
        reasons = _read_reasons(metadata, {p.stem for p in paths}, problems)
        reports, files = [], {}
        for path in paths:
            files[path.stem] = path.name
            if path.is_dir():
                problems.append({"file": path.name, "problem": "a folder, not a report file; left out"})
                continue
            if any(c in path.stem for c in "\t\r\n"):  # the report id is a column of predictions.tsv
                problems.append({"file": path.name, "problem": "a tab or line break in the file name; rename it"})
                continue
            try:
                text = path.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                problems.append({"file": path.name, "problem": f"not UTF-8 text (byte {exc.start}); "
                                                                "save the file as UTF-8"})
                continue
            except OSError as exc:
                problems.append({"file": path.name, "problem": f"cannot read the file ({exc.strerror})"})
                continue
            reports.append({"report_id": path.stem, "text": text, "reason_for_visit": reasons.get(path.stem, "")})
        results = self.predict(reports, batch_size, progress, ranked)
        problems += [{"file": files[r.report_id], "problem": p} for r in results for p in r.problems]
        warnings = self._folder_warnings(results, metadata, reasons, round_language)
        if ranked > 0:  # rank order within a report, so never sorted line by line
            lines = [f"{r.report_id}\t{c.code}" + (f"\t{c.score:.6f}" if scores else "")
                     for r in sorted(results, key=lambda r: r.report_id) for c in r.ranking]
        elif scores:
            lines = sorted(f"{r.report_id}\t{c.code}\t{c.probability:.6f}" for r in results for c in r.codes)
        else:
            lines = sorted({f"{r.report_id}\t{c.code}" for r in results for c in r.codes})
        atomic_write_text(out_tsv, "".join(line + "\n" for line in lines))
        if evidence_jsonl is not None:
            atomic_write_text(evidence_jsonl, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n"
                                                      for r in results))
        return {"files": len(paths), "coded": sum(1 for r in results if not r.problems), "codes": len(lines),
                "problems": sorted(problems, key=lambda p: p["file"]), "warnings": warnings,
                "predictions": str(out_tsv), "evidence": str(evidence_jsonl) if evidence_jsonl is not None else None}

    def _folder_warnings(self, results: Sequence[ReportPrediction], metadata: Path | None, reasons: dict[str, str],
                         round_language: str | None) -> list[str]:
        """One line per kind of warning over a folder's reports (the reports' own warnings are in the evidence)."""
        out = []
        model_language = _language_name(self.language)
        if round_language is not None and round_language != self.language:
            out.append(f"the round's language is {_language_name(round_language)} (round.toml), the model was "
                       f"trained on {model_language} reports: its codes may be nonsense")
        coded = [r for r in results if r.text_checks]
        other = [r for r in coded if r.text_checks["language"] not in (None, self.language)
                 and self.language in FUNCTION_WORDS]
        if other and round_language is None:
            out.append(f"{len(other)} of {len(coded)} report(s) read as another language than the model's "
                       f"({model_language}), e.g. {other[0].report_id}: their codes may be nonsense")
        words = sum(r.text_checks["words"] for r in coded)
        unknown = sum(r.text_checks["unknown_words"] for r in coded)
        if words and unknown / words > UNKNOWN_WORDS_WARNING:
            out.append(f"{unknown / words:.0%} of the words are unknown to the model (over "
                       f"{UNKNOWN_WORDS_WARNING:.0%}): is this the kind of report it was trained on?")
        if self.uses_reasons and coded and not any(reasons.get(r.report_id) for r in coded):
            where = "no metadata.csv" if metadata is None or not metadata.is_file() else \
                f"no reason_for_visit in {metadata.name}"
            out.append(f"{where}: the model ({self.variant}) was trained with reasons for visit and codes "
                       "worse without them")
        return out


def top_indices(p: np.ndarray, k: int) -> list[int]:
    """The indices of the ``k`` largest values of ``p``, largest first, ties by index: what
    ``np.argsort(-p, kind="stable")[:k]`` gives, without sorting all of ``p``."""
    if k >= len(p):
        return np.argsort(-p, kind="stable").tolist()
    kth = np.partition(p, len(p) - k)[len(p) - k]  # the k-th largest value
    candidates = np.flatnonzero(p >= kth)  # every value tied with it too, in index order
    return candidates[np.argsort(-p[candidates], kind="stable")[:k]].tolist()


def report_folder(input_dir: str | Path) -> tuple[Path, Path | None, str | None]:
    """Where a folder's reports are: ``(folder of .txt, metadata.csv or None, round language or None)``.

    A round folder (``texts/`` and/or ``round.toml``) gives its ``texts/``, its
    ``metadata.csv`` and its ``round.toml`` language; any other folder, itself.

    Raises:
        InputError: no such folder, or no ``.txt`` report in it.
        RoundError: a ``round.toml`` that cannot be read.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"{input_dir}: no such folder")
    language = None
    texts = input_dir
    if (input_dir / "round.toml").is_file():
        from hiericd_core.rounds import RoundConfig

        language = RoundConfig.from_toml(input_dir / "round.toml", default_id=input_dir.name).language
    if (input_dir / "texts").is_dir():
        texts = input_dir / "texts"
    metadata = input_dir / "metadata.csv"
    if not any(p.suffix == ".txt" for p in texts.iterdir()):
        hint = " (a round keeps them in texts/)" if texts == input_dir else ""
        raise InputError(f"{texts}: no .txt report in it; give a folder of .txt reports{hint}")
    return texts, metadata if metadata.is_file() else None, language


def guess_language(words: Sequence[str]) -> str | None:
    """The language whose function words a text's lower-cased words hold most, or None when unsure.

    Sure means at least a few function words, and three times as many of one
    language as of the other.
    """
    hits = {lang: sum(1 for w in words if w in vocabulary) for lang, vocabulary in FUNCTION_WORDS.items()}
    best = max(hits, key=hits.get)
    rest = max(n for lang, n in hits.items() if lang != best)
    return best if hits[best] >= _MIN_FUNCTION_WORDS and hits[best] >= 3 * rest else None


def _language_name(code: str) -> str:
    return f"{LANGUAGE_NAMES[code]} ({code})" if code in LANGUAGE_NAMES else repr(code)


_PUNCTUATION = re.compile(r"[^\w]+")


@contextmanager
def _model_file(path: Path) -> Iterator[None]:
    """Turn a model folder file's parse errors into :class:`~hiericd_core.models.ModelFileError` naming it."""
    from hiericd_core.models import ModelFileError

    try:
        yield
    except ModelFileError:
        raise
    except (ValueError, KeyError, TypeError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise ModelFileError(path, f"{type(exc).__name__}: {str(exc)[:200]}") from exc


WORKER_CHUNK = 256  # reports coded together (a job for a worker process)
WORKER_START_TIMEOUT = 600.0  # seconds for every worker to load the model
_WORKER: dict = {}  # in a worker process: its Predictor


def _worker_init(model_dir: str, top_k: int, config: InferenceConfig, threads: int, ready) -> None:
    predictor = Predictor.load(model_dir, top_k=top_k, threads=threads, config=config)
    predictor.segmenter().segment("Warm up. Load the pipeline.")
    _WORKER["predictor"], _WORKER["ready"] = predictor, ready


def _worker_ready() -> None:
    _WORKER["ready"].wait(timeout=WORKER_START_TIMEOUT)


def _worker_predict(job: tuple[int, list[dict], int, int]) -> list[ReportPrediction]:
    first, reports, batch_size, ranked = job
    return _WORKER["predictor"]._predict(reports, batch_size, first, ranked)


def _read_reasons(path: Path | None, report_ids: set[str], problems: list[dict]) -> dict[str, str]:
    """Reasons for visit by report id from ``metadata.csv``, read as a round's is: a bad row is a problem with
    its line, never the rows after it (:func:`hiericd_core.rounds.read_metadata`)."""
    from hiericd_core.rounds import read_metadata

    if path is None or not path.is_file():
        return {}
    rows, has_reason, quarantined = read_metadata(path, report_ids)
    problems += [{"file": path.name, "problem": q.problem.reason if q.problem.line is None
                  else f"line {q.problem.line}: {q.problem.reason}"} for q in quarantined]
    if rows and not has_reason:
        problems.append({"file": path.name, "problem": "needs columns report_id and reason_for_visit; "
                                                       "reasons for visit left out"})
        return {}
    return {report_id: row.get("reason_for_visit", "") for report_id, row in rows.items()}
