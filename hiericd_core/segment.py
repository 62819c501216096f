"""Sentences and tokens with character offsets into the report text.

Backends (``SegmenterConfig.backend``):

* ``scispacy`` — an installed scispaCy model (``en_core_sci_lg``/``md``/``sm``,
  first found, or the one named in ``model``): its tokenizer and parser-based
  sentences, as in the paper.
* ``pysbd`` — the offline fallback: ``spacy.blank(lang)`` with scispaCy's
  ``combined_rule_tokenizer`` (English) or spaCy's Spanish tokenizer, and pysbd
  sentence splitting (``en`` or ``es``), as scispaCy's
  ``custom_sentence_segmenter`` does.
* ``rule`` — a fast regular-expression splitter (no spaCy), for benchmarks
  and for quick agreement figures.
* ``auto`` (default) — ``scispacy`` when a model is installed, else ``pysbd``.

Whatever the backend, a line break ends a sentence (reports are written in
lines: section headers, list items), and a sentence never ends after an
abbreviation such as ``approx.``, ``Dr.``, ``s/p``, ``e.g.`` or ``aprox.``:
pysbd splits after some of them, so such sentences are glued back. Offsets are
code points into the text, end exclusive; whitespace is never a token and
sentences are stripped of surrounding whitespace.

A text longer than :data:`CHUNK_CHARS` (spaCy refuses texts over a million
characters, and its memory grows with the text) is segmented in chunks cut at
line breaks, where a sentence ends anyway, so the sentences and tokens are the
ones of the whole text, offsets included; only a single line longer than a
chunk is cut at a space (or anywhere, when it has none).
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

Backend = Literal["auto", "scispacy", "pysbd", "rule"]
CHUNK_CHARS = 100_000  # a longer text is segmented in chunks cut at line breaks (see the module docstring)
# Part of every segment-cache key (:meth:`Segmenter.identity`): bump it whenever a change to this module's rules
# (abbreviations, the plain-line fast path, line splitting, chunking) can change a sentence or a token, so data
# sets built afterwards re-segment instead of reusing what the old rules gave.
SEGMENTER_VERSION = 1

SCISPACY_MODELS = ("en_core_sci_lg", "en_core_sci_md", "en_core_sci_sm")

# Words after which a period does not end a sentence (lower-cased, with the period).
ABBREVIATIONS = frozenset(
    a.lower()
    for a in (
        "approx.", "aprox.", "dr.", "dra.", "drs.", "mr.", "mrs.", "ms.", "sr.", "sra.", "e.g.", "i.e.",
        "vs.", "cf.", "fig.", "figs.", "no.", "nos.", "al.", "sec.", "eq.", "pt.", "pts.", "hx.", "dx.",
        "ca.", "st.", "min.", "max.", "appt.", "dept.", "pág.", "etc.", "aprox.", "p.ej.", "núm.",
    )
)
# Tokens that end in "/" (s/p, w/, w/o) never end a sentence either; pysbd keeps them.

_RULE_SENT = re.compile(r"[^\n]+")
_RULE_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9ÁÉÍÓÚÑ(\"'])")
_MAYBE_BOUNDARY = re.compile(r"[.!?;:]\s")
_RULE_TOKEN = re.compile(r"\w+(?:[./'-]\w+)*|[^\w\s]", re.UNICODE)
# the plain-line fast path in front of pysbd (Segmenter._plain_line_sentences)
_PLAIN_CANDIDATE = re.compile(r"(\S*)([.!?])(\s+)(?=\S)")
_PLAIN_WORD = re.compile(r"[^\W\d_]{2,}")
_SENTENCE_MARK = re.compile(r"[.!?]")
_LIST_MARKER = re.compile(r"[A-Z]\. (?=[A-Z])")
_OTHER_LIST_MARKER = re.compile(r"\s*(?:\w{1,3}|[ivxIVX]+)[.)]\s")
# an apostrophe not inside a word, quotes around punctuation, a "2)" list item
_NOT_PLAIN = re.compile(r"(?<!\w)'|'(?!\w)|\"[^\"]*[.!?;:][^\"]*\"|(?:^|\s)\w{1,2}\)")


class Token(NamedTuple):
    # a named tuple, not a dataclass: reports have hundreds of tokens and this is made for each
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str
    tokens: tuple[Token, ...]


class SegmenterError(ValueError):
    """A segmenter that cannot be made (unknown language, missing model); the message says what to use."""


@dataclass(frozen=True)
class SegmenterConfig:
    """Which segmenter to use; ``language`` comes from ``round.toml``."""

    language: str = "en"
    backend: Backend = "auto"
    model: str | None = None
    batch_size: int = 64


def installed_scispacy_model(preferred: str | None = None) -> str | None:
    """Return the name of an installed scispaCy model (``preferred`` first), or None."""
    for name in ((preferred,) if preferred else ()) + SCISPACY_MODELS:
        if name and importlib.util.find_spec(name) is not None:
            return name
    return None


def resolve_backend(config: SegmenterConfig) -> str:
    """Return the backend ``auto`` stands for on this machine."""
    if config.backend != "auto":
        return config.backend
    if config.language == "en" and installed_scispacy_model(config.model):
        return "scispacy"
    return "pysbd"


class Segmenter:
    """Splits report texts into :class:`Sentence` objects with :class:`Token` offsets."""

    def __init__(self, config: SegmenterConfig | None = None):
        self.config = config or SegmenterConfig()
        self.backend = resolve_backend(self.config)
        if self.backend != "rule":
            _check_language(self.config.language, self.backend)
        if self.backend == "scispacy" and not installed_scispacy_model(self.config.model):
            raise SegmenterError(
                f"no scispaCy model installed (looked for {self.config.model or ', '.join(SCISPACY_MODELS)}); "
                "install one or use backend 'pysbd'"
            )
        self._nlp = None
        self._sbd = None
        self._pysbd_abbreviations: frozenset[str] | None = None

    def describe(self) -> str:
        """Say what is used, for manifests and logs."""
        if self.backend == "scispacy":
            return f"scispacy:{installed_scispacy_model(self.config.model)}"
        if self.backend == "pysbd":
            tokenizer = "scispacy-tokenizer" if self.config.language == "en" else f"spacy-{self.config.language}"
            return f"pysbd:{self.config.language}+{tokenizer}"
        return "rule"

    def identity(self) -> str:
        """Everything besides the text that decides this segmenter's output, as one string (for cache keys).

        :meth:`describe` (backend, model, language), :data:`SEGMENTER_VERSION`,
        :data:`CHUNK_CHARS`, and the versions of the libraries and model the
        backend runs on, since an upgrade of spaCy, scispaCy, pysbd or a model
        can move a sentence or a token.
        """
        from importlib.metadata import PackageNotFoundError, version

        packages = [] if self.backend == "rule" else ["spacy", "pysbd", "scispacy"]
        if self.backend == "scispacy":
            packages.append(str(installed_scispacy_model(self.config.model)))
        versions = []
        for name in packages:
            try:
                versions.append(f"{name}={version(name)}")
            except PackageNotFoundError:
                versions.append(f"{name}=none")
        return "|".join([f"v{SEGMENTER_VERSION}", self.describe(), f"language={self.config.language}",
                         f"chunk={CHUNK_CHARS}", *versions])

    def segment(self, text: str) -> list[Sentence]:
        """Return the sentences of ``text`` in order, with their tokens (long texts in chunks: module docstring)."""
        if len(text) <= CHUNK_CHARS or self.backend == "rule":  # the rule backend has no length limit
            return self._segment(text)
        out: list[Sentence] = []
        for start, end in text_chunks(text, CHUNK_CHARS):
            out += [Sentence(s.start + start, s.end + start, s.text,
                             tuple(Token(t.text, t.start + start, t.end + start) for t in s.tokens))
                    for s in self._segment(text[start:end])]
        return out

    def _segment(self, text: str) -> list[Sentence]:
        if self.backend == "rule":
            spans = _glue_abbreviations(text, _rule_sentences(text))
            return _attach_tokens(text, spans, _rule_tokens(text))
        if self.backend == "scispacy":
            doc = self._spacy()(text)
            spans = [(s.start_char, s.end_char) for s in doc.sents]
            spans = _glue_abbreviations(text, _split_lines(text, spans))
            return _attach_tokens(text, spans, _token_spans(doc))
        doc = self._spacy().make_doc(text)
        spans = _glue_abbreviations(text, self._pysbd_sentences(text))
        return _attach_tokens(text, spans, _token_spans(doc))

    def pipe(self, texts: Iterable[str]) -> Iterable[list[Sentence]]:
        for text in texts:
            yield self.segment(text)

    # ------------------------------------------------------------ backends

    def _spacy(self):
        if self._nlp is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import spacy

                if self.backend == "scispacy":
                    self._nlp = spacy.load(installed_scispacy_model(self.config.model), disable=["ner"])
                elif self.config.language == "en":
                    from scispacy.custom_tokenizer import combined_rule_tokenizer

                    self._nlp = spacy.blank("en")
                    self._nlp.tokenizer = combined_rule_tokenizer(self._nlp)
                else:
                    self._nlp = spacy.blank(self.config.language)
        return self._nlp

    def _plain_line_sentences(self, line: str) -> list[tuple[int, int]] | None:
        """The sentences of a line pysbd need not be asked about, or None.

        A line is plain when each of its periods, question and exclamation marks
        is one of: the line's last character after a letter or digit; a decimal
        point; the period of a list marker (``A.``) opening the line; the period
        of an abbreviation this module glues anyway; or a period after a word of
        two or more letters (not one of pysbd's abbreviations for the language),
        followed by white space and a capital letter, which ends a sentence.
        Quotes around punctuation, stray apostrophes and ``2)``-style list items
        make a line not plain. On plain lines the result equals pysbd's (checked
        in the tests on real and synthetic reports); pysbd is by far the slowest
        part of segmenting, and most report lines are plain.
        """
        if _NOT_PLAIN.search(line) or line.count('"') % 2:
            return None
        if self._pysbd_abbreviations is None:
            from pysbd.languages import Language

            rules = Language.get_language_code(self.config.language).Abbreviation
            self._pysbd_abbreviations = frozenset(
                a.lower() for a in (*rules.ABBREVIATIONS, *rules.PREPOSITIVE_ABBREVIATIONS,
                                    *rules.NUMBER_ABBREVIATIONS))
        marker = _LIST_MARKER.match(line)
        first = marker.end() if marker else 0
        if not marker and _OTHER_LIST_MARKER.match(line):
            return None
        spans: list[tuple[int, int]] = []
        explained: set[int] = set()
        start = 0
        for m in _PLAIN_CANDIDATE.finditer(line, first):
            word, mark = m.group(1), m.group(2)
            if mark == "." and f"{word}.".lower() in ABBREVIATIONS:
                explained.add(m.start(2))  # glued whatever pysbd says
                continue
            if (mark != "." or not _PLAIN_WORD.fullmatch(word) or word.lower() in self._pysbd_abbreviations
                    or not line[m.end()].isupper()):
                return None
            spans.append((start, m.start(3)))
            explained.add(m.start(2))
            start = m.end()
        body = line.rstrip()
        for d in _SENTENCE_MARK.finditer(body, first):
            i = d.start()
            if i in explained or (i == len(body) - 1 and i > 0 and body[i - 1].isalnum()):
                continue
            if d.group() == "." and 0 < i < len(body) - 1 and body[i - 1].isdigit() and body[i + 1].isdigit():
                continue
            return None
        spans.append((start, len(line)))
        return spans

    def _pysbd_sentences(self, text: str) -> list[tuple[int, int]]:
        if self._sbd is None:
            import pysbd

            self._sbd = pysbd.Segmenter(language=self.config.language, clean=False, char_span=True)
        spans: list[tuple[int, int]] = []
        for m in _RULE_SENT.finditer(text):
            line = m.group()
            if not line.strip():
                continue
            if not _MAYBE_BOUNDARY.search(line.rstrip()):
                # no sentence-ending mark inside the line: it is one sentence (pysbd would say so, slowly)
                spans.append((m.start(), m.end()))
                continue
            plain = self._plain_line_sentences(line)
            if plain is not None:
                spans += [(m.start() + start, m.start() + end) for start, end in plain]
                continue
            # pysbd's char spans are offsets into the string it was given: the line.
            for piece in self._sbd.segment(line):
                spans.append((m.start() + piece.start, m.start() + piece.end))
        return spans


def text_chunks(text: str, limit: int) -> list[tuple[int, int]]:
    """``(start, end)`` pieces of ``text`` of at most ``limit`` characters covering it, cut after line breaks.

    A piece ends after the last line break inside the limit; a line longer
    than the limit is cut after its last space inside the limit, or at the limit.
    """
    assert limit > 0
    out: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > limit:
        cut = text.rfind("\n", start, start + limit) + 1
        if cut <= start:
            cut = text.rfind(" ", start, start + limit) + 1
        if cut <= start:
            cut = start + limit
        out.append((start, cut))
        start = cut
    out.append((start, len(text)))
    return out


def _check_language(language: str, backend: str) -> None:
    """Raise :class:`SegmenterError` unless pysbd and spaCy both know ``language``."""
    from pysbd.languages import LANGUAGE_CODES

    known = sorted(LANGUAGE_CODES)
    if not isinstance(language, str) or language not in LANGUAGE_CODES:
        raise SegmenterError(f"unknown language {language!r} for the {backend} segmenter; use one of "
                             f"{', '.join(known)} (round.toml's language or --language)")
    import spacy.util

    try:
        spacy.util.get_lang_class(language)
    except ImportError as exc:
        raise SegmenterError(f"spaCy has no tokenizer for language {language!r}; use another language or the "
                             "rule backend") from exc


def rule_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans by the fast ``rule`` backend, without tokens (for agreement figures).

    The same sentences as ``Segmenter(SegmenterConfig(backend="rule")).segment(text)``:
    a line break ends a sentence, so does ``.``/``!``/``?`` before a capital
    or a digit, never after an abbreviation.
    """
    return _glue_abbreviations(text, _rule_sentences(text))


def _split_lines(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut spans at line breaks."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        for m in _RULE_SENT.finditer(text, start, end):
            out.append((m.start(), m.end()))
    return out


def _rule_sentences(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for line in _RULE_SENT.finditer(text):
        start = line.start()
        for boundary in _RULE_BOUNDARY.finditer(text, line.start(), line.end()):
            spans.append((start, boundary.start()))
            start = boundary.end()
        spans.append((start, line.end()))
    return spans


def _token_spans(doc) -> list[tuple[int, int]]:
    """``(start, end)`` of a spaCy doc's tokens that are not white space, read as one array (no Token objects)."""
    from spacy.attrs import IDX, IS_SPACE, LENGTH

    if not len(doc):
        return []
    return [(start, start + length) for start, length, space in doc.to_array([IDX, LENGTH, IS_SPACE]).tolist()
            if not space]


def _rule_tokens(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _RULE_TOKEN.finditer(text)]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _ends_with_abbreviation(sentence: str) -> bool:
    words = sentence.split()
    if not words:
        return False
    last = words[-1].lower()
    return last in ABBREVIATIONS or last.endswith("/") or bool(re.fullmatch(r"(?:[a-z]\.){2,}", last))


def _glue_abbreviations(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Strip spans, drop empty ones and join a span ending in an abbreviation to the next one on its line."""
    out: list[tuple[int, int]] = []
    glue = False
    for raw_start, raw_end in spans:
        start, end = _strip(text, raw_start, raw_end)
        if start >= end:
            continue
        if glue and out and "\n" not in text[out[-1][1]:start]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
        glue = _ends_with_abbreviation(text[out[-1][0]:out[-1][1]])
    return out


def _attach_tokens(text: str, spans: Sequence[tuple[int, int]], tokens: Sequence[tuple[int, int]]) -> list[Sentence]:
    """Give each sentence the tokens that start inside it (tokens are sorted), cut at the sentence's end."""
    starts = [s for s, _ in tokens]
    sentences: list[Sentence] = []
    i = 0
    for start, end in spans:
        i = bisect_left(starts, start, i)
        j = bisect_left(starts, end, i)
        toks = []
        for s, e in tokens[i:j]:
            if e > end:
                e = end
            piece = text[s:e]
            if s < e and not piece.isspace():
                toks.append(Token(piece, s, e))
        i = j
        sentences.append(Sentence(start, end, text[start:end], tuple(toks)))
    return sentences
