"""Word vectors: the vocabulary and word2vec vectors, trained or loaded.

Tokens are lower-cased. Index 0 is ``<pad>`` (a zero vector that never
learns), index 1 is ``<unk>``: every token seen fewer than ``min_freq`` times
in training, and every token unseen at inference. Rare training tokens are
replaced by ``<unk>`` *before* word2vec runs, so ``<unk>`` gets a learned
vector like any other word.

Vectors are trained with gensim's word2vec on the training split's sentence
tokens plus its reasons for visit, or read from a word2vec file (text or
binary, told apart by sniffing) the user names. Training uses one worker
thread: with two or more, gensim's threads race over the corpus and the same
seed no longer gives the same vectors (its docs say so); one worker at 5
epochs takes well under a minute on 39,000 reports.

A model folder keeps ``vocab.json`` (the tokens in index order) and
``vectors.npy`` (float32, ``(len(vocab), dim)``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class EmbeddingError(Exception):
    """A vectors file that cannot be used (the message says what to do)."""


@dataclass
class Vocabulary:
    """Lower-cased tokens in index order; ``tokens[0] == PAD``, ``tokens[1] == UNK``."""

    tokens: list[str]
    min_freq: int = 1
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        assert self.tokens[:2] == [PAD, UNK], "a vocabulary starts with <pad>, <unk>"
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1) -> Vocabulary:
        """Count lower-cased tokens; keep those seen ``min_freq`` times, most frequent first (ties: A-Z)."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(t.lower() for t in tokens)
        kept = sorted((t for t, n in counts.items() if n >= min_freq and t not in (PAD, UNK)),
                      key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *kept], min_freq)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], max_len: int | None = None) -> list[int]:
        """Return the ids of ``tokens`` (cut to ``max_len``), unknown ones as ``UNK_ID``."""
        ids = [self.index.get(t.lower(), UNK_ID) for t in tokens]
        return ids[:max_len] if max_len is not None else ids

    def normalise(self, tokens: Sequence[str]) -> list[str]:
        """Lower-case ``tokens`` and replace those outside the vocabulary by ``<unk>``."""
        return [t if t in self.index else UNK for t in (x.lower() for x in tokens)]

    def save(self, path: str | Path) -> Path:
        from hiericd_core.files import atomic_write_json

        return atomic_write_json(path, {"lowercase": True, "min_freq": self.min_freq, "tokens": self.tokens})

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(list(data["tokens"]), int(data.get("min_freq", 1)))


@dataclass(frozen=True)
class Word2VecConfig:
    """How word2vec is trained (gensim's defaults except ``sg`` and ``min_count``)."""

    dim: int = 100
    window: int = 5
    epochs: int = 5
    skip_gram: bool = True  # better than CBOW for rare clinical words on corpora this small
    negative: int = 5
    seed: int = 13


class _Normalised:
    """``token_lists`` normalised (see :meth:`Vocabulary.normalise`), empty ones left out, read afresh on each pass.

    gensim reads the corpus once for its vocabulary and once per epoch; a
    re-iterable corpus (e.g. one streamed from Parquet) is never held whole.
    """

    def __init__(self, token_lists: Iterable[Sequence[str]], vocab: Vocabulary):
        self.token_lists, self.vocab = token_lists, vocab

    def __iter__(self):
        for tokens in self.token_lists:
            normal = self.vocab.normalise(tokens)
            if normal:
                yield normal


def train_vectors(token_lists: Iterable[Sequence[str]], vocab: Vocabulary, config: Word2VecConfig) -> np.ndarray:
    """Train word2vec on ``token_lists`` and return the ``(len(vocab), dim)`` float32 matrix.

    ``token_lists`` may be any re-iterable (a list, or a corpus streamed from
    disk on each pass); a one-pass iterator is read into a list first.
    Tokens outside ``vocab`` count as ``<unk>``; the ``<pad>`` row is zero.
    """
    from gensim.models import Word2Vec

    if iter(token_lists) is token_lists:  # a one-pass iterator: word2vec reads its corpus epochs + 1 times
        token_lists = list(token_lists)
    corpus = _Normalised(token_lists, vocab)
    matrix = np.zeros((len(vocab), config.dim), dtype=np.float32)
    if next(iter(corpus), None) is None:
        return matrix
    model = Word2Vec(corpus, vector_size=config.dim, window=config.window, min_count=1, workers=1,
                     sg=int(config.skip_gram), negative=config.negative, epochs=config.epochs, seed=config.seed)
    for i, token in enumerate(vocab.tokens):
        if i != PAD_ID and token in model.wv.key_to_index:
            matrix[i] = model.wv[token]
    return matrix


def _is_binary(path: Path) -> bool:
    """A word2vec text file is UTF-8 after its header line; a binary one holds raw floats."""
    with path.open("rb") as handle:
        handle.readline()
        sample = handle.read(1 << 16)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 4  # a cut multi-byte character at the end is still text
    return False


def load_vectors(path: str | Path, vocab: Vocabulary, seed: int = 13) -> tuple[np.ndarray, dict]:
    """Look up ``vocab`` in a word2vec file; return the matrix and what was found.

    A token is matched as written, else lower-cased (the first, most frequent
    casing wins). Tokens the file lacks get small random vectors (seeded, with
    the spread of the found ones) so they stay apart; ``<pad>`` is zero.

    Raises:
        EmbeddingError: the file is missing or not in word2vec format.
    """
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise EmbeddingError(f"{path}: no such vectors file; give a word2vec .txt/.bin file or leave "
                             "vectors_path empty to train vectors on the data set")
    binary = _is_binary(path)
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, unicode_errors="replace")
    except (ValueError, UnicodeDecodeError, EOFError) as exc:
        raise EmbeddingError(f"{path}: not a word2vec {'binary' if binary else 'text'} file ({exc}); the first "
                             "line must be '<count> <dim>', then one word and its numbers per line") from exc
    lowered: dict[str, int] = {}
    for key, i in kv.key_to_index.items():
        lowered.setdefault(str(key).lower(), i)
    rng = np.random.default_rng(seed)
    matrix = np.zeros((len(vocab), kv.vector_size), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for i, token in enumerate(vocab.tokens):
        j = kv.key_to_index.get(token, lowered.get(token))
        if i != PAD_ID and j is not None:
            matrix[i] = kv.vectors[j]
            found[i] = True
    scale = float(matrix[found].std()) if found.any() else 0.1
    missing = ~found
    missing[PAD_ID] = False
    matrix[missing] = rng.normal(0.0, scale, size=(int(missing.sum()), kv.vector_size)).astype(np.float32)
    info = {"path": str(path), "binary": binary, "dim": kv.vector_size, "file_words": len(kv.key_to_index),
            "found": int(found.sum()), "missing": int(missing.sum())}
    return matrix, info


def save_vectors(path: str | Path, matrix: np.ndarray) -> Path:
    """Write ``matrix`` as ``.npy`` atomically."""
    import io

    from hiericd_core.files import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, matrix.astype(np.float32), allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())

