"""Report-level baselines the hierarchical model is compared with.

* **Binary relevance** (:class:`BinaryRelevance`): TF-IDF word 1–3-grams of
  the whole report (by default with the reason for visit in front, the
  same input the model gets), one logistic regression or linear SVM per
  label-space code. A code is predicted when its probability is ≥
  ``lr_threshold`` (LR) or its margin is ≥ ``svm_threshold`` (SVM); with a
  dev split at hand, :func:`run_baselines` picks the cut that maximises dev
  micro F1 (:func:`tune_cut`): with about 11 gold codes per CodiEsp report,
  hardly any probability reaches 0.5, and the untuned LR would be a straw
  man. A report with no code over the cut gets its single best-scoring code: nearly every report is
  coded (all of CodiEsp, 99% of the synthetic reports), so an empty answer
  is almost always wrong, and this is what ``scripts/calibrate_synth.py``
  does, so its calibrated figures carry over.
* **Phrase dictionary** (:class:`PhraseDictionary`): every coder phrase of
  the training reports maps to its most frequent code (ties: the code that
  sorts first). A report gets the codes of the known phrases found in it.
  Phrases and texts are compared as lower-cased tokens (runs of word
  characters, and each other non-space character alone), so matching is
  whole-word and case-insensitive, and ``"polyp, mild"`` matches
  ``"polyp , mild"``. A scan keeps, at each position, the longest known
  phrase, then goes on after it (leftmost-longest, as Aho–Corasick does), so
  ``"carcinoma"`` inside a matched ``"invasive ductal carcinoma"`` is not
  counted again. It is not limited to the label space: the natural back-off
  for the long tail. A discontinuous phrase is its fragments joined by one
  space (the brat convention), so it is found only where that text occurs.
* **Majority code**: the most frequent training code for every report, a floor.

Every baseline is scored end to end with
:func:`hiericd_core.evaluate.end_to_end_scores` against the full gold code
sets, its MAPs over its ranked codes (:func:`rank_codes`): LR and SVM rank
every label-space code by probability or margin; the phrase dictionary and
the majority code have no score and rank what they predict, the codes of
more training reports first. :func:`run_baselines` uses a data set's splits and label space;
:func:`run_baselines_merged` follows a fixed train/eval protocol (CodiEsp:
train on ``train``, evaluate on ``dev``) straight from merged rounds.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np

from hiericd_core.evaluate import as_dict, end_to_end_scores

Kind = Literal["lr", "svm"]
_TOKEN = re.compile(r"\w+|[^\w\s]")
_END = ""  # trie key of a complete phrase: no token is empty


@dataclass(frozen=True)
class BaselineConfig:
    """Hyper-parameters of the baselines; saved with every model."""

    ngram_range: tuple[int, int] = (1, 3)
    min_df: int = 2
    max_df: float = 0.5
    max_features: int | None = 300_000
    sublinear_tf: bool = True
    lr_c: float = 4.0
    lr_max_iter: int = 300
    lr_threshold: float = 0.5  # on the predicted probability
    svm_threshold: float = 0.0  # on the margin
    svm_c: float = 1.0
    svm_max_iter: int = 5000
    class_weight: str | None = None  # "balanced" raises rare codes' scores (both LR and SVM)
    n_jobs: int = 2
    reason_for_visit: bool = True  # put the reason for visit in front of the report text
    phrase_min_count: int = 1  # a phrase must occur this often in training to enter the dictionary

    @classmethod
    def from_dict(cls, data: Mapping) -> BaselineConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "ngram_range" in values:
            values["ngram_range"] = tuple(values["ngram_range"])
        return cls(**values)


@dataclass(frozen=True)
class Corpus:
    """Reports with their full gold codes, and the coders' phrases in them (``(phrase, code)``)."""

    report_ids: tuple[str, ...]
    texts: tuple[str, ...]
    reasons_for_visit: tuple[str, ...]
    codes: tuple[frozenset[str], ...]
    phrases: tuple[tuple[str, str], ...] = field(default=())

    def gold(self) -> dict[str, set[str]]:
        return {rid: set(c) for rid, c in zip(self.report_ids, self.codes, strict=True)}

    def inputs(self, reason_for_visit: bool) -> list[str]:
        """What the report-level classifiers read."""
        if not reason_for_visit:
            return list(self.texts)
        return [f"{r}\n{t}" if r else t for r, t in zip(self.reasons_for_visit, self.texts, strict=True)]


# ---------------------------------------------------------------- binary relevance


@dataclass
class BinaryRelevance:
    """TF-IDF + one linear classifier per code (see the module docstring)."""

    kind: Kind
    labels: list[str]
    config: BaselineConfig
    vectorizer: object  # sklearn TfidfVectorizer
    classifier: object  # sklearn OneVsRestClassifier

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Per-code scores, ``(reports, labels)``: probabilities (LR) or margins (SVM)."""
        x = self.vectorizer.transform(list(texts))
        if self.kind == "lr":
            proba = self.classifier.predict_proba(x)
            # one label makes OneVsRest a binary classifier: (P(absent), P(present)) per report
            return proba[:, 1:] if len(self.labels) == 1 else proba
        return self.classifier.decision_function(x).reshape(x.shape[0], len(self.labels))

    @property
    def cut(self) -> float:
        """The decision cut: ``lr_threshold`` on probabilities or ``svm_threshold`` on margins."""
        return self.config.lr_threshold if self.kind == "lr" else self.config.svm_threshold

    def with_cut(self, cut: float) -> BinaryRelevance:
        """The same fitted model with another decision cut."""
        key = "lr_threshold" if self.kind == "lr" else "svm_threshold"
        return replace(self, config=replace(self.config, **{key: float(cut)}))

    def predict(self, texts: Sequence[str]) -> list[set[str]]:
        """Codes over the cut per report; a report with none gets its best-scoring code."""
        if not texts:
            return []
        return self._decide(self.scores(texts), self.cut)

    def _decide(self, scores: np.ndarray, cut: float) -> list[set[str]]:
        chosen = scores >= cut
        empty = ~chosen.any(axis=1)
        chosen[empty, scores[empty].argmax(axis=1)] = True
        labels = np.array(self.labels)
        return [set(labels[row].tolist()) for row in chosen]

    def save(self, folder: str | Path) -> Path:
        """Write ``model.joblib`` (the sklearn objects) and ``baseline.json`` (kind, labels, config)."""
        import joblib
        import sklearn

        from hiericd_core.files import atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump({"vectorizer": self.vectorizer, "classifier": self.classifier}, folder / "model.joblib")
        atomic_write_json(folder / "baseline.json", {
            "baseline": "binary-relevance", "kind": self.kind, "labels": self.labels,
            "config": asdict(self.config), "sklearn": sklearn.__version__})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> BinaryRelevance:
        """Load a folder written by :meth:`save` (joblib unpickles: load only folders you wrote)."""
        import joblib

        folder = Path(folder)
        meta = json.loads((folder / "baseline.json").read_text(encoding="utf-8"))
        objects = joblib.load(folder / "model.joblib")
        return cls(meta["kind"], list(meta["labels"]), BaselineConfig.from_dict(meta["config"]),
                   objects["vectorizer"], objects["classifier"])


LR_CUTS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)
SVM_CUTS = (-1.0, -0.9, -0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1)


def tune_cut(model: BinaryRelevance, corpus: Corpus, cuts: Sequence[float] | None = None
             ) -> tuple[float, dict[float, float]]:
    """The decision cut that maximises micro F1 on ``corpus`` (a dev split).

    The scores are computed once; every cut of ``cuts`` (default
    :data:`LR_CUTS` or :data:`SVM_CUTS`) is applied to them. Ties go to the
    higher cut (fewer codes).

    Returns:
        ``(best cut, {cut: micro F1})``.
    """
    cuts = sorted(cuts or (LR_CUTS if model.kind == "lr" else SVM_CUTS), reverse=True)
    scores = model.scores(corpus.inputs(model.config.reason_for_visit))
    gold = corpus.gold()
    curve = {float(cut): end_to_end_scores(gold, dict(zip(corpus.report_ids, model._decide(scores, cut),
                                                          strict=True))).micro.f1 for cut in cuts}
    best = max(cuts, key=lambda cut: curve[float(cut)])  # max keeps the first (highest) cut among ties
    return float(best), curve


def cross_validated_cut(kind: Kind, train: Corpus, label_space: Iterable[str], config: BaselineConfig,
                        folds: int = 5, seed: int = 13, cuts: Sequence[float] | None = None
                        ) -> tuple[float, dict[float, float]]:
    """The LR or SVM decision cut chosen by k-fold cross-validation over ``train`` (no dev split looked at).

    Each fold's model is fitted on the other folds (same label space) and
    scores the fold; every cut is applied to the pooled out-of-fold scores
    and the best micro F1 wins (ties: the higher cut). Folds as
    :func:`hiericd_core.datasets.assign_folds`.

    Returns:
        ``(best cut, {cut: out-of-fold micro F1})``.
    """
    from hiericd_core.datasets import assign_folds

    label_space = list(label_space)
    cuts = sorted(cuts or (LR_CUTS if kind == "lr" else SVM_CUTS), reverse=True)
    fold_of = assign_folds(train.report_ids, folds, seed)
    texts = train.inputs(config.reason_for_visit)
    predicted: dict[float, dict[str, set[str]]] = {float(c): {} for c in cuts}
    for f in range(folds):
        inside = [i for i, r in enumerate(train.report_ids) if fold_of[r] != f]
        held = [i for i, r in enumerate(train.report_ids) if fold_of[r] == f]
        model = fit_binary_relevance([texts[i] for i in inside], [train.codes[i] for i in inside], label_space,
                                     kind, config)
        scores = model.scores([texts[i] for i in held])
        for cut in cuts:
            predicted[float(cut)].update(zip([train.report_ids[i] for i in held], model._decide(scores, cut),
                                             strict=True))
    gold = train.gold()
    curve = {cut: end_to_end_scores(gold, codes).micro.f1 for cut, codes in predicted.items()}
    best = max(cuts, key=lambda cut: curve[float(cut)])  # max keeps the first (highest) cut among ties
    return float(best), curve


def fit_binary_relevance(train_texts: Sequence[str], train_codes: Sequence[Iterable[str]],
                         label_space: Iterable[str], kind: Kind = "lr",
                         config: BaselineConfig | None = None) -> BinaryRelevance:
    """Fit TF-IDF + one-vs-rest LR or linear SVM on the label-space codes of the training reports.

    Codes outside ``label_space`` are ignored in training; label-space codes
    no training report carries are left out (nothing to learn them from).

    Raises:
        ValueError: on an unknown ``kind``, or when no label-space code occurs in training.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer
    from sklearn.svm import LinearSVC

    config = config or BaselineConfig()
    if kind not in ("lr", "svm"):
        raise ValueError(f"unknown baseline kind {kind!r}: use 'lr' or 'svm'")
    space = set(label_space)
    targets = [sorted(set(codes) & space) for codes in train_codes]
    labels = sorted({c for codes in targets for c in codes})
    if not labels:
        raise ValueError("no label-space code occurs in the training reports")
    vectorizer = TfidfVectorizer(ngram_range=tuple(config.ngram_range), min_df=config.min_df, max_df=config.max_df,
                                 max_features=config.max_features, sublinear_tf=config.sublinear_tf,
                                 dtype=np.float64)
    x = vectorizer.fit_transform(list(train_texts))
    x.sort_indices()  # joblib hands the workers read-only copies; they must not sort
    y = MultiLabelBinarizer(classes=labels).fit_transform(targets)
    if kind == "lr":
        estimator = LogisticRegression(C=config.lr_c, max_iter=config.lr_max_iter, class_weight=config.class_weight)
    else:
        estimator = LinearSVC(C=config.svm_c, max_iter=config.svm_max_iter, class_weight=config.class_weight)
    classifier = OneVsRestClassifier(estimator, n_jobs=config.n_jobs).fit(x, y)
    return BinaryRelevance(kind, labels, config, vectorizer, classifier)


# ---------------------------------------------------------------- phrase dictionary


def phrase_tokens(text: str, fold: bool = False) -> tuple[str, ...]:
    """Lower-cased tokens as the dictionary compares them: word runs, and other characters one by one.

    With ``fold``, each token is also folded (:func:`fold_token`).
    """
    tokens = (m.group().lower() for m in _TOKEN.finditer(text))
    return tuple(fold_token(t) for t in tokens) if fold else tuple(tokens)


def fold_token(token: str) -> str:
    """A crude Spanish/English stem of a lower-cased token, so inflected forms of a phrase meet.

    Acute accents and diaereses go (``ñ`` stays: *año* is not *ano*); on
    tokens of five letters or more a plural ``-es`` after a consonant or
    ``-s`` goes, then a final gender vowel ``-a``/``-o``:
    *lesiones*, *lesión* → *lesion*; *infecciosas*, *infeccioso* → *infeccios*.
    Shorter tokens only lose their accents.
    """
    if token in _FOLDED:
        return _FOLDED[token]
    decomposed = unicodedata.normalize("NFD", token)
    # keep the tilde (U+0303) so that n + tilde composes back to ñ
    stem = unicodedata.normalize("NFC", "".join(c for c in decomposed
                                               if not unicodedata.combining(c) or c == "\u0303"))
    if len(stem) >= 5 and stem.isalpha():
        if stem.endswith("es") and stem[-3] not in "aeiou":
            stem = stem[:-2]
        elif stem.endswith("s"):
            stem = stem[:-1]
        if len(stem) >= 5 and stem[-1] in "ao":
            stem = stem[:-1]
    if len(_FOLDED) < 500_000:
        _FOLDED[token] = stem
    return stem


_FOLDED: dict[str, str] = {}


LOOSE_PREFIX = "~ "  # a loose key: the sorted content words of a phrase, after this prefix
LOOSE_WINDOW = 6  # a loose match spans at most this many tokens
STOPWORD_MAX_LEN = 3  # a stopword is short ...
STOPWORD_MIN_SHARE = 0.02  # ... and found in at least this share of the calibration reports


@dataclass
class PhraseDictionary:
    """Known coder phrases (normalised, tokens joined by one space) -> ``(code, occurrences)``.

    Besides exact matches, :meth:`find` can make *loose* ones: a window of
    up to :data:`LOOSE_WINDOW` tokens whose content words, in any order,
    are those of a known phrase (*insuficiencia renal aguda* meets
    *insuficiencia aguda renal*; *fractura de cadera* meets *cadera
    fracturada* when folded). Content words are the tokens that are not
    stopwords; stopwords are learned from the calibration reports, not
    listed per language: short tokens (≤ :data:`STOPWORD_MAX_LEN` characters)
    found in at least :data:`STOPWORD_MIN_SHARE` of them, so a rare short
    abbreviation (*VIH*, *HTA*) stays a content word.
    """

    entries: dict[str, tuple[str, int]]
    fold: bool = False  # phrases and texts compared as folded tokens (fold_token): inflections meet
    # phrase (or loose key) -> share of the training reports it is found in whose gold holds its code (calibrate)
    reliability: dict[str, float] = field(default_factory=dict)
    stopwords: frozenset[str] = frozenset()
    loose: dict[str, str] = field(default_factory=dict)  # loose key -> code (made by calibrate)
    _trie: dict | None = field(default=None, repr=False, compare=False)

    def calibrate(self, texts: Sequence[str], codes: Sequence[Iterable[str]]) -> PhraseDictionary:
        """A copy with the loose keys and the stopwords learned from ``texts``, and ``reliability``: per phrase
        and loose key, how often finding it meant its code.

        Counted over the reports (typically the training reports the phrases
        came from): of those where the phrase is found, the share whose gold
        codes hold the phrase's code. A phrase never found (e.g. always inside
        a longer known phrase) gets no entry and counts as reliable.
        """
        seen: Counter[str] = Counter()
        for text in texts:
            seen.update({t for t in self._tokens(text)[1] if len(t) <= STOPWORD_MAX_LEN})
        stopwords = frozenset(t for t, n in seen.items() if n >= max(2.0, STOPWORD_MIN_SHARE * len(texts)))
        out = PhraseDictionary(self.entries, self.fold, {}, stopwords, {})
        votes: dict[str, Counter[str]] = {}
        for phrase, (code, n) in self.entries.items():
            key = out._loose_key(phrase.split(" "))
            if key:
                votes.setdefault(key, Counter())[code] += n
        out.loose = {key: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for key, c in sorted(votes.items())}
        found: Counter[str] = Counter()
        right: Counter[str] = Counter()
        for text, gold in zip(texts, codes, strict=True):
            gold = set(gold)
            for phrase, code in {(phrase, code) for *_, phrase, code in out.find(text, loose=True)}:
                found[phrase] += 1
                right[phrase] += code in gold
        out.reliability = {p: right[p] / n for p, n in sorted(found.items())}
        return out

    def pruned(self, min_reliability: float) -> PhraseDictionary:
        """A copy without the phrases and loose keys whose reliability is below ``min_reliability``."""
        def kept(key: str) -> bool:
            return self.reliability.get(key, 1.0) >= min_reliability

        keep = {p: v for p, v in self.entries.items() if kept(p)}
        loose = {k: c for k, c in self.loose.items() if kept(k)}
        return PhraseDictionary(keep, self.fold, {p: r for p, r in self.reliability.items() if p in keep or p in loose},
                                self.stopwords, loose)

    def _tokens(self, text: str) -> tuple[list, list[str]]:
        matches = list(_TOKEN.finditer(text))
        tokens = [m.group().lower() for m in matches]
        return matches, [fold_token(t) for t in tokens] if self.fold else tokens

    def _content(self, token: str) -> bool:
        return (token[0].isalnum() or token[0] == "_") and token not in self.stopwords

    def _loose_key(self, tokens: Sequence[str]) -> str:
        words = sorted({t for t in tokens if self._content(t)})
        return LOOSE_PREFIX + " ".join(words) if words else ""

    def _root(self) -> dict:
        if self._trie is None:
            root: dict = {}
            for phrase, (code, _) in self.entries.items():
                node = root
                for token in phrase.split(" "):
                    node = node.setdefault(token, {})
                node[_END] = (phrase, code)
            self._trie = root
        return self._trie

    def find(self, text: str, loose: bool = False) -> list[tuple[int, int, str, str]]:
        """Matches in ``text`` as ``(start, end, phrase, code)``, leftmost-longest, not overlapping.

        With ``loose``, loose matches follow the exact ones (``phrase`` is then
        the loose key): each loose key once per text, at its shortest window
        (the first of equal ones), also where an exact match covers the same
        words (so a loose key's reliability counts every time its words meet).
        """
        matches, tokens = self._tokens(text)
        root, found, i = self._root(), [], 0
        while i < len(tokens):
            node, j, best = root, i, None
            while j < len(tokens) and tokens[j] in node:
                node = node[tokens[j]]
                j += 1
                if _END in node:
                    best = (j, node[_END])
            if best is None:
                i += 1
                continue
            end, (phrase, code) = best
            found.append((matches[i].start(), matches[end - 1].end(), phrase, code))
            i = end
        if loose and self.loose:
            found += self._find_loose(matches, tokens)
        return found

    def _find_loose(self, matches, tokens: list[str]) -> list[tuple[int, int, str, str]]:
        best: dict[str, tuple[int, int]] = {}  # key -> (first token, end token) of its shortest window
        content = [self._content(t) for t in tokens]
        for i in range(len(tokens)):
            if not content[i]:
                continue
            words: set[str] = set()
            for j in range(i, min(len(tokens), i + LOOSE_WINDOW)):
                if not content[j]:
                    continue
                words.add(tokens[j])
                key = LOOSE_PREFIX + " ".join(sorted(words))
                if key in self.loose:
                    held = best.get(key)
                    if held is None or j + 1 - i < held[1] - held[0]:
                        best[key] = (i, j + 1)
        return sorted(((matches[a].start(), matches[b - 1].end(), key, self.loose[key])
                       for key, (a, b) in best.items()), key=lambda m: (m[0], m[1], m[2]))

    def predict(self, texts: Sequence[str]) -> list[set[str]]:
        """The codes of the known phrases found in each text."""
        return [{code for *_, code in self.find(t)} for t in texts]

    def save(self, folder: str | Path) -> Path:
        """Write ``phrases.json``: one ``[phrase, code, occurrences]`` per phrase."""
        from hiericd_core.files import atomic_write_json

        folder = Path(folder)
        rows = [[p, c, n] for p, (c, n) in sorted(self.entries.items())]
        atomic_write_json(folder / "phrases.json", {"baseline": "phrase-dictionary", "fold": self.fold,
                                                    "phrases": rows, "reliability": self.reliability,
                                                    "stopwords": sorted(self.stopwords),
                                                    "loose": [[k, c] for k, c in sorted(self.loose.items())]})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> PhraseDictionary:
        data = json.loads((Path(folder) / "phrases.json").read_text(encoding="utf-8"))
        return cls({p: (c, int(n)) for p, c, n in data["phrases"]}, bool(data.get("fold", False)),
                   {p: float(r) for p, r in data.get("reliability", {}).items()},
                   frozenset(data.get("stopwords", [])), {k: c for k, c in data.get("loose", [])})


def fit_phrase_dictionary(phrases: Iterable[tuple[str, str]], min_count: int = 1, fold: bool = False
                          ) -> PhraseDictionary:
    """Map every phrase seen ≥ ``min_count`` times to its most frequent code (ties: first in sort order).

    ``occurrences`` counts the phrase under its chosen code. Phrases without a
    word character (punctuation only) are skipped. With ``fold``, phrases are
    keyed by folded tokens (:func:`fold_token`), so their inflections vote together.
    """
    votes: dict[str, Counter[str]] = {}
    for text, code in phrases:
        tokens = phrase_tokens(text, fold)
        if not any(t[0].isalnum() or t[0] == "_" for t in tokens):
            continue
        votes.setdefault(" ".join(tokens), Counter())[code] += 1
    entries = {}
    for phrase, counter in votes.items():
        if sum(counter.values()) < min_count:
            continue
        code, n = min(counter.items(), key=lambda item: (-item[1], item[0]))
        entries[phrase] = (code, n)
    return PhraseDictionary(entries, fold)


@dataclass(frozen=True)
class MajorityCode:
    """Predicts the most frequent training code (ties: first in sort order) for every report."""

    code: str

    @classmethod
    def fit(cls, train_codes: Iterable[Iterable[str]]) -> MajorityCode:
        counts = Counter(c for codes in train_codes for c in set(codes))
        if not counts:
            raise ValueError("no training report has a code")
        return cls(min(counts.items(), key=lambda item: (-item[1], item[0]))[0])

    def predict(self, texts: Sequence[str]) -> list[set[str]]:
        return [{self.code} for _ in texts]


# ---------------------------------------------------------------- corpora


def phrases_from_sentences(tokens: Iterable[Sequence[str]], masks: Iterable[Sequence[int]],
                           codes: Iterable[Sequence[str]], code_masks: Iterable[Sequence[Sequence[int]]] | None = None
                           ) -> list[tuple[str, str]]:
    """``(phrase, code)`` of the focus sentences: the masked tokens joined by spaces.

    With ``code_masks`` (a data set's per-code masks) every code of every
    sentence gives its own phrase; without them only single-code sentences
    count, as a sentence's one mask cannot be split by code.
    """
    out = []
    if code_masks is not None:
        for toks, sentence_codes, per_code in zip(tokens, codes, code_masks, strict=True):
            for code, mask in zip(sentence_codes, per_code, strict=True):
                phrase = " ".join(t for t, m in zip(toks, mask, strict=True) if m)
                if phrase:
                    out.append((phrase, code))
        return out
    for toks, mask, sentence_codes in zip(tokens, masks, codes, strict=True):
        if len(sentence_codes) == 1:
            phrase = " ".join(t for t, m in zip(toks, mask, strict=True) if m)
            if phrase:
                out.append((phrase, sentence_codes[0]))
    return out


def load_corpus(dataset_dir: str | Path, split: str) -> Corpus:
    """The reports of ``split`` of a data set folder, with phrases from its per-code sentence masks."""
    import pyarrow.parquet as pq

    folder = Path(dataset_dir)
    reports = pq.read_table(folder / "reports.parquet", filters=[("split", "=", split)],
                            columns=["report_id", "text", "reason_for_visit", "codes"]).to_pydict()
    path = folder / "sentences.parquet"
    per_code = "code_masks" in pq.read_schema(path).names  # data sets built before code_masks: single-code only
    sentences = pq.read_table(path, filters=[("split", "=", split), ("is_focus", "=", True)],
                              columns=["tokens", "attention_mask", "codes"] + (["code_masks"] if per_code else [])
                              ).to_pydict()
    phrases = phrases_from_sentences(sentences["tokens"], sentences["attention_mask"], sentences["codes"],
                                     sentences.get("code_masks"))
    return Corpus(tuple(reports["report_id"]), tuple(reports["text"]),
                  tuple(r or "" for r in reports["reason_for_visit"]),
                  tuple(frozenset(c) for c in reports["codes"]), tuple(phrases))


def corpus_from_merged(merged_dirs: Sequence[str | Path], report_ids: Iterable[str] | None = None) -> Corpus:
    """Reports of merged rounds (last adjudicated version wins), phrases from their final annotations.

    Args:
        merged_dirs: merged round folders, in the order the data-set builder takes them.
        report_ids: keep only these reports (e.g. a data set's training split).
    """
    from hiericd_core.datasets import collect
    from hiericd_core.merge import covered_text

    chosen, *_ = collect([Path(p) for p in merged_dirs])
    keep = sorted(chosen) if report_ids is None else sorted(set(report_ids) & set(chosen))
    reports = [chosen[rid] for rid in keep]
    phrases = tuple((covered_text(r.text, fragments), code) for r in reports for code, fragments in r.annotations)
    return Corpus(tuple(keep), tuple(r.text for r in reports), tuple(r.reason_for_visit for r in reports),
                  tuple(frozenset(code for code, _ in r.annotations) for r in reports), phrases)


def report_label_space(corpus: Corpus, min_count: int) -> list[str]:
    """Codes carried by at least ``min_count`` reports of ``corpus``."""
    counts = Counter(c for codes in corpus.codes for c in codes)
    return sorted(c for c, n in counts.items() if n >= min_count)


# ---------------------------------------------------------------- running


BASELINES = ("lr", "svm", "phrase_dictionary", "majority")


def fit_baseline(name: str, train: Corpus, label_space: Iterable[str], config: BaselineConfig | None = None):
    """Fit one baseline of :data:`BASELINES` on ``train``."""
    config = config or BaselineConfig()
    if name in ("lr", "svm"):
        return fit_binary_relevance(train.inputs(config.reason_for_visit), train.codes, label_space, name, config)
    if name == "phrase_dictionary":
        return fit_phrase_dictionary(train.phrases, config.phrase_min_count)
    if name == "majority":
        return MajorityCode.fit(train.codes)
    raise ValueError(f"unknown baseline {name!r}: use one of {', '.join(BASELINES)}")


def rank_codes(model, texts: Sequence[str], code_counts: Mapping[str, int] | None = None
               ) -> tuple[list[set[str]], list[list[str]]]:
    """Each text's predicted codes and its ranked codes, best first (for the MAPs).

    :class:`BinaryRelevance` ranks every label-space code by its score
    (probability or margin; ties in label order), so its predicted codes,
    the ones over the cut or its best code, come first. A model without
    scores (phrase dictionary, majority code) ranks only its predicted
    codes, by ``code_counts`` (training reports per code) falling, then by code.
    """
    if isinstance(model, BinaryRelevance):
        if not texts:
            return [], []
        scores = model.scores(texts)
        ranked = [[model.labels[k] for k in np.argsort(-row, kind="stable").tolist()] for row in scores]
        return model._decide(scores, model.cut), ranked
    counts = code_counts or {}
    predicted = model.predict(texts)
    return predicted, [sorted(codes, key=lambda c: (-counts.get(c, 0), c)) for codes in predicted]


def score_baseline(model, corpus: Corpus, label_space: Iterable[str] | None = None,
                   config: BaselineConfig | None = None, code_counts: Mapping[str, int] | None = None) -> dict:
    """Predict ``corpus`` with ``model``.

    Returns:
        ``{"predictions": {report_id: codes}, "ranked": {report_id: codes best first}, "metrics",
        "predict_seconds"}``; ``ranked`` as :func:`rank_codes` (``code_counts`` orders the codes of a
        model without scores), ``metrics`` with both MAPs.
    """
    config = config or BaselineConfig()
    started = time.perf_counter()
    texts = corpus.inputs(config.reason_for_visit) if isinstance(model, BinaryRelevance) else list(corpus.texts)
    codes, ranking = rank_codes(model, texts, code_counts)
    predicted = dict(zip(corpus.report_ids, codes, strict=True))
    ranked = dict(zip(corpus.report_ids, ranking, strict=True))
    seconds = round(time.perf_counter() - started, 3)
    return {"predictions": predicted, "ranked": ranked,
            "metrics": as_dict(end_to_end_scores(corpus.gold(), predicted, label_space, ranked=ranked)),
            "predict_seconds": seconds}


def compare_baselines(train: Corpus, test: Corpus, label_space: Sequence[str], config: BaselineConfig | None = None,
                      out: str | Path | None = None, names: Sequence[str] = BASELINES, tune: Corpus | None = None,
                      cv_folds: int = 0) -> dict[str, dict]:
    """Fit each baseline on ``train`` and score it on ``test`` (see :func:`score_baseline`; adds ``fit_seconds``).

    With ``cv_folds`` (≥ 2), the LR and SVM decision cuts are chosen by
    cross-validation over ``train`` (:func:`cross_validated_cut`); else with
    ``tune`` (a dev split) they are chosen on it (:func:`tune_cut`); their results then hold ``cut`` and ``cut_curve``
    (``{cut: dev micro F1}``). With ``out``, each fitted model that can be
    saved goes to ``out/<name>/``.
    """
    config = config or BaselineConfig()
    code_counts = Counter(c for codes in train.codes for c in codes)
    results = {}
    for name in names:
        started = time.perf_counter()
        model = fit_baseline(name, train, label_space, config)
        extra: dict = {}
        if cv_folds and isinstance(model, BinaryRelevance):
            cut, curve = cross_validated_cut(model.kind, train, label_space, config, cv_folds)
            model = model.with_cut(cut)
            extra = {"cut": cut, "cut_curve": {str(k): v for k, v in curve.items()}, "cut_chosen_by": "cv"}
        elif tune is not None and isinstance(model, BinaryRelevance) and tune.report_ids:
            cut, curve = tune_cut(model, tune)
            model = model.with_cut(cut)
            extra = {"cut": cut, "cut_curve": {str(k): v for k, v in curve.items()}}
        elif isinstance(model, BinaryRelevance):
            extra = {"cut": model.cut}
        fit_seconds = round(time.perf_counter() - started, 3)
        if out is not None and hasattr(model, "save"):
            model.save(Path(out) / name)
        results[name] = {**score_baseline(model, test, label_space, config, code_counts), "fit_seconds": fit_seconds,
                         **extra}
    return results


def run_baselines(dataset_dir: str | Path, split: str = "test", config: BaselineConfig | None = None, *,
                  merged_dirs: Sequence[str | Path] | None = None, out: str | Path | None = None,
                  tune_split: str | None = "dev") -> dict[str, dict]:
    """Fit the baselines on a data set's training split and score them end to end on ``split``.

    Args:
        dataset_dir: a folder written by :func:`hiericd_core.datasets.write_dataset`.
        split: ``dev`` or ``test``.
        tune_split: the split the LR and SVM decision cuts are chosen on (train on train,
            select on dev); ``"cv"``: by 5-fold cross-validation over the training split, no
            other split looked at; None keeps the configured cuts. An empty split keeps them too.
        merged_dirs: when given, the dictionary's phrases come from these
            merged rounds' final annotations of the training reports instead
            of the data set's per-code sentence masks (tokens, not raw text).
        out: when given, each fitted model is saved in ``out/<name>/``.

    Returns:
        name (:data:`BASELINES`) -> ``{"predictions": {report_id: codes}, "ranked": {report_id: codes
        best first}, "metrics": end-to-end scores as a dict (both MAPs included), "fit_seconds",
        "predict_seconds"}``.
    """
    config = config or BaselineConfig()
    folder = Path(dataset_dir)
    if not (folder / "label_space.json").is_file():
        raise FileNotFoundError(f"{folder}: no label_space.json; give a folder made by `hiericd datasets`")
    label_space = json.loads((folder / "label_space.json").read_text(encoding="utf-8"))["codes"]
    train = load_corpus(folder, "train")
    if merged_dirs is not None:
        train = replace(train, phrases=corpus_from_merged(merged_dirs, train.report_ids).phrases)
    if tune_split == "cv":
        return compare_baselines(train, load_corpus(folder, split), label_space, config, out, cv_folds=5)
    tune = load_corpus(folder, tune_split) if tune_split else None
    return compare_baselines(train, load_corpus(folder, split), label_space, config, out, tune=tune)


def run_baselines_merged(train_dirs: Sequence[str | Path], eval_dirs: Sequence[str | Path], min_count: int = 2,
                         config: BaselineConfig | None = None, out: str | Path | None = None,
                         tune: bool = False) -> dict[str, dict]:
    """Fit on the reports of ``train_dirs`` and score on those of ``eval_dirs`` (merged rounds).

    The label space is the codes of at least ``min_count`` training reports.
    For CodiEsp, the paper's protocol: train on ``train``, evaluate on ``dev``;
    with ``tune`` the LR/SVM cuts are chosen on the evaluation reports too
    (select on dev, report on dev: optimistic for those two).
    """
    config = config or BaselineConfig()
    train, test = corpus_from_merged(train_dirs), corpus_from_merged(eval_dirs)
    return compare_baselines(train, test, report_label_space(train, min_count), config, out,
                             tune=test if tune else None)
