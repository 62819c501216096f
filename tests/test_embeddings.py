"""Vocabulary, word2vec training and loading, padding."""

import numpy as np
import pytest

from hiericd_core.embeddings import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    EmbeddingError,
    Vocabulary,
    Word2VecConfig,
    load_vectors,
    save_vectors,
    train_vectors,
)

CORPUS = [
    ["Invasive", "ductal", "carcinoma", "of", "the", "left", "breast", "."],
    ["Tubular", "adenoma", "of", "the", "colon", "."],
    ["Hyperplastic", "polyp", "of", "the", "colon", "."],
    ["Seborrheic", "keratosis", ",", "irritated", "."],
    ["Carcinoma", "in", "situ", "of", "the", "breast", "."],
] * 20


def test_vocabulary_lowercases_counts_and_keeps_pad_unk_first(tmp_path):
    vocab = Vocabulary.build([["The", "colon"], ["the", "COLON", "polyp"], ["the"]], min_freq=2)
    assert vocab.tokens == [PAD, UNK, "the", "colon"]  # most frequent first; "polyp" seen once is <unk>
    assert vocab.encode(["The", "polyp", "Colon"]) == [2, UNK_ID, 3]
    assert vocab.encode(["the", "colon", "the"], max_len=2) == [2, 3]
    assert vocab.normalise(["COLON", "adenoma"]) == ["colon", UNK]
    vocab.save(tmp_path / "vocab.json")
    again = Vocabulary.load(tmp_path / "vocab.json")
    assert again.tokens == vocab.tokens and again.min_freq == 2


def test_vocabulary_breaks_count_ties_alphabetically():
    assert Vocabulary.build([["b", "a", "c", "a"]]).tokens == [PAD, UNK, "a", "b", "c"]


def test_trained_vectors_are_deterministic_per_seed():
    vocab = Vocabulary.build(CORPUS, min_freq=2)
    config = Word2VecConfig(dim=8, epochs=3, seed=7)
    first = train_vectors(CORPUS, vocab, config)
    assert first.shape == (len(vocab), 8) and first.dtype == np.float32
    assert np.array_equal(first, train_vectors(CORPUS, vocab, config))
    assert not np.array_equal(first, train_vectors(CORPUS, vocab, Word2VecConfig(dim=8, epochs=3, seed=8)))
    assert not first[PAD_ID].any()  # <pad> stays zero
    assert first[vocab.index["carcinoma"]].any()


def test_rare_tokens_train_the_unk_vector():
    corpus = [["colon", "polyp", f"rare{i}"] for i in range(50)]
    vocab = Vocabulary.build(corpus, min_freq=2)
    assert "rare1" not in vocab.index
    vectors = train_vectors(corpus, vocab, Word2VecConfig(dim=4, epochs=1))
    assert vectors[UNK_ID].any()


def _write_text_vectors(path, rows):
    lines = [f"{len(rows)} {len(rows[0][1])}"] + [w + " " + " ".join(f"{x:g}" for x in v) for w, v in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_load_word2vec_text_file_matches_casing_and_fills_missing(tmp_path):
    rows = [("Carcinoma", [1.0, 2.0, 3.0]), ("carcinoma", [9.0, 9.0, 9.0]), ("colon", [0.5, -0.5, 0.0]),
            ("adenoma", [-1.0, 0.0, 1.0])]
    path = tmp_path / "vectors.txt"
    _write_text_vectors(path, rows)
    vocab = Vocabulary([PAD, UNK, "carcinoma", "colon", "polyp"])
    matrix, info = load_vectors(path, vocab, seed=3)
    assert matrix.shape == (5, 3)
    assert matrix[2].tolist() == [9.0, 9.0, 9.0]  # exact match beats the lower-cased one
    assert matrix[3].tolist() == [0.5, -0.5, 0.0]
    assert not matrix[PAD_ID].any()
    assert matrix[4].any() and matrix[UNK_ID].any()  # missing words get seeded random vectors
    assert info["found"] == 2 and info["missing"] == 2 and info["binary"] is False and info["dim"] == 3
    again, _ = load_vectors(path, vocab, seed=3)
    assert np.array_equal(matrix, again)

    cased = Vocabulary([PAD, UNK, "adenoma"])
    path2 = tmp_path / "upper.txt"
    _write_text_vectors(path2, [("Adenoma", [1.0, 1.0])])
    assert load_vectors(path2, cased)[0][2].tolist() == [1.0, 1.0]  # a file with only a cased form matches


def test_load_word2vec_binary_file(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=4)
    kv.add_vectors(["colon", "polyp"], np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32))
    kv.save_word2vec_format(str(tmp_path / "vectors.bin"), binary=True)
    matrix, info = load_vectors(tmp_path / "vectors.bin", Vocabulary([PAD, UNK, "polyp", "colon"]))
    assert info["binary"] is True
    assert matrix[2].tolist() == [5, 6, 7, 8] and matrix[3].tolist() == [1, 2, 3, 4]


def test_bad_vectors_files_say_what_to_do(tmp_path):
    with pytest.raises(EmbeddingError, match="no such vectors file"):
        load_vectors(tmp_path / "missing.txt", Vocabulary([PAD, UNK]))
    (tmp_path / "bad.txt").write_text("hello world\n", encoding="utf-8")
    with pytest.raises(EmbeddingError, match="not a word2vec"):
        load_vectors(tmp_path / "bad.txt", Vocabulary([PAD, UNK]))


def test_save_vectors(tmp_path):
    matrix = np.arange(6, dtype=np.float32).reshape(3, 2)
    save_vectors(tmp_path / "v.npy", matrix)
    assert np.array_equal(np.load(tmp_path / "v.npy"), matrix)


def test_the_demo_vectors_script_writes_the_same_loadable_file_twice(tmp_path):
    """scripts/demo_vectors.py at a small size: a word2vec binary file training reads, the same bytes on a rerun."""
    from scriptkit import load_script

    script = load_script("demo_vectors")
    config = script.DemoVectorsConfig(reports=60, dim=8, epochs=2)
    made = script.build(config, tmp_path / "a.bin")
    script.build(config, tmp_path / "b.bin")
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    vocab = Vocabulary(["<pad>", "<unk>", "colon", "no-such-word"])
    matrix, info = load_vectors(tmp_path / "a.bin", vocab)
    assert info["binary"] and info["dim"] == 8 and info["file_words"] == made["words"] and info["found"] == 1
    assert matrix.shape == (4, 8) and not matrix[0].any()
