"""The word vectors ``make demo`` starts from: word2vec on a synthetic round the demo never sees.

``make demo`` trains on a first round of a few thousand reports; word2vec on
that round alone gives poor vectors for the rarer words, which are the words
that tell rare codes apart. A clinic would start from vectors trained on its
archive of reports; the demo's stand-in is a synthetic round of another seed
(so none of its reports is in the demo's rounds), tokenised as hiericd's data
sets tokenise, with word2vec as training runs it. The result is written as a
word2vec binary file (``data/demo/vectors.bin``, under 5 MB), which the demo's
training reads through ``vectors_path``.

Run from the repository root (a few minutes on two cores)::

    .venv/bin/python scripts/demo_vectors.py            # writes data/demo/vectors.bin
    .venv/bin/python scripts/demo_vectors.py --check    # rebuilds it and checks it is byte-identical

Every step is seeded (the round's seed, word2vec's seed, one word2vec
thread), so the same command writes the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "demo" / "vectors.bin"


class DemoVectorsConfig(NamedTuple):
    """How the shipped vectors are made; the demo's rounds use seeds 7 and 8.

    (A named tuple, not a dataclass: tests load scripts without registering them as modules, which dataclasses
    need.)
    """

    reports: int = 10000
    seed: int = 101
    min_freq: int = 2  # as TrainConfig's: rarer words are <unk> in training anyway
    dim: int = 100  # TrainConfig's emb_dim
    epochs: int = 10  # word2vec passes; more than training's 5: this runs once, not in every training


def corpus(dataset_dir: Path):
    """Every sentence's tokens and every reason for visit of the data set, all splits."""
    import pyarrow.parquet as pq

    sentences = pq.read_table(dataset_dir / "sentences.parquet", columns=["tokens"]).column("tokens").to_pylist()
    reasons = pq.read_table(dataset_dir / "reports.parquet", columns=["r4v_tokens"]).column("r4v_tokens").to_pylist()
    return [t for t in sentences + reasons if t]


def build(config: DemoVectorsConfig, out: Path) -> dict:
    """Generate the round, build its data set, train word2vec and write ``out``; return what was made."""
    from gensim.models import KeyedVectors

    from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset
    from hiericd_core.embeddings import PAD, UNK, Vocabulary, Word2VecConfig, train_vectors
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import write_merge
    from hiericd_core.rounds import load_round
    from hiericd_core.synth import generate_round

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_round(tmp / "round", config.reports, config.seed)
        loaded = load_round(tmp / "round")
        write_merge(merge_round(loaded), loaded, tmp / "merged")
        write_dataset(build_dataset([tmp / "merged"], DatasetConfig(min_count=1, workers=1)), tmp / "dataset")
        tokens = corpus(tmp / "dataset")
    vocab = Vocabulary.build(tokens, config.min_freq)
    matrix = train_vectors(tokens, vocab, Word2VecConfig(dim=config.dim, epochs=config.epochs, seed=config.seed))
    keep = [i for i, t in enumerate(vocab.tokens) if t not in (PAD, UNK)]
    vectors = KeyedVectors(config.dim)
    vectors.add_vectors([vocab.tokens[i] for i in keep], matrix[keep])
    out.parent.mkdir(parents=True, exist_ok=True)
    vectors.save_word2vec_format(str(out), binary=True)
    return {"words": len(keep), "dim": config.dim, "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="rebuild into a temporary file and compare with --out")
    args = parser.parse_args(argv)
    config = DemoVectorsConfig()
    if not args.check:
        made = build(config, args.out)
        print(f"{args.out}: {made['words']} words × {made['dim']}, {made['bytes']:,} bytes")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp) / "vectors.bin"
        build(config, again)
        same = again.read_bytes() == args.out.read_bytes()
    print(f"{args.out}: {'identical to a rebuild' if same else 'DIFFERS from a rebuild'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
