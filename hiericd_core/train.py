"""Training the paper's two models on a data set folder.

:func:`train_model` learns word vectors (or reads the user's), trains the
sentence tagger on every sentence of the training reports and the ICD
classifier on the classifier rows, each with Adam and early stopping on the
dev split's macro F1 (the best epoch's weights are kept), and writes a model
folder:

* ``tagger.pt``, ``classifier.pt`` — checkpoints with their configs (see
  :mod:`hiericd_core.models`); the classifier's carries ``labels`` (the label
  space in index order), ``variant`` (the one trained) and
  ``variant_requested``;
* ``vocab.json``, ``vectors.npy`` — see :mod:`hiericd_core.embeddings`;
* ``train_config.json`` — the resolved :class:`TrainConfig`;
* ``metrics.json`` — per-epoch history, best dev metrics, the variant used,
  the data set's version and language. It holds no timings, so two runs with
  the same seed write the same bytes; timings are in the returned dict;
* ``stages/{prepare,tagger,classifier}.json`` — what each stage handed on
  (with its timing).

Training runs in four stages that talk only through the model folder, so
the two models can train in separate processes (the Airflow training DAG
runs them as parallel tasks): :func:`prepare_stage` (vocabulary, word
vectors, resolved config), :func:`tagger_stage` and :func:`classifier_stage`
(each a checkpoint plus its result under ``stages/``) and
:func:`finish_stage` (``metrics.json``). :func:`train_model` runs them in
turn.

A data set without reasons for visit (CodiEsp) trains the ``*_r4v`` variants'
counterparts without them, and the tagger without the reason's half of its
features; ``metrics.json`` and the checkpoint say so.

Runs are deterministic on CPU for a given seed and thread count: torch's
deterministic algorithms, seeded shuffling and dropout, one-thread word2vec,
and ``threads`` torch threads (default: the usable CPUs, at most
:data:`MAX_DEFAULT_THREADS`), set by each stage whatever the process started
with and recorded in ``train_config.json``; a run in an Airflow task, the CLI
or a test writes the same bytes. Each epoch logs one INFO line (loss, dev
figures, seconds) through :mod:`logging`, which Airflow's task logs capture.

The data set is never loaded whole: each stage reads the columns it needs
from the Parquet files in Arrow batches and keeps token ids as int32 arrays
(:mod:`hiericd_core.trainsets`); word2vec streams its corpus from the files on
every pass. What grows with the data is the encoded training
and dev splits (a few bytes per token) and, with frozen vectors, the
tagger's cached sentence features (``4 · emb_dim`` bytes per sentence: about
7 KB per synthetic report of 18 sentences at the default 100 dimensions).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from hiericd_core.models.classifier import VARIANTS, without_r4v
from hiericd_core.trainsets import (
    CLASSIFIER_EXAMPLES,
    TRAINED_SPLITS,
    ClassifierSplit,
    TaggerSplit,
    TrainError,
    TrainingTokens,
    check_dataset,
    count_rows,
    read_classifier_splits,
    read_tagger_splits,
    train_has_reasons,
)

Callback = Callable[[str, int, dict], None]
MAX_DEFAULT_THREADS = 4

logger = logging.getLogger(__name__)


def default_threads() -> int:
    """Torch threads when the config names none: the CPUs this process may run on, at most ``MAX_DEFAULT_THREADS``.

    More threads than that slow these small LSTMs down rather than speed them up. Not
    :func:`~hiericd_core.parallel.usable_cpus`, which answers 1 in a daemonic process (a Celery worker's
    child, where Airflow runs the training tasks) because it may not start worker processes: threads it may.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_DEFAULT_THREADS)


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; ``train_config.json`` holds the resolved one."""

    seed: int = 13
    # torch's intra-op threads: a run is deterministic for a given count, not across counts (a matrix product's
    # sums are split by thread), so the resolved count is written to train_config.json with the rest
    threads: int = field(default_factory=default_threads)
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when there is one); deterministic on CPU only
    # optimisation (both models)
    lr: float = 1e-3
    batch_size: int = 32  # reports for the tagger, sentences for the classifier
    tagger_epochs: int = 100
    classifier_epochs: int = 30
    patience: int = 5  # epochs without a dev macro F1 gain of at least min_delta before stopping
    # False: no dev split needed; each model trains exactly its epochs and keeps the last (a final fit on
    # train + dev with epoch counts chosen by cross-validation, hiericd_core.tune)
    early_stopping: bool = True
    min_delta: float = 0.001  # smaller gains still update the best weights but do not reset the patience
    # words
    emb_dim: int = 100  # taken from the file when vectors_path is given
    min_freq: int = 2
    vectors_path: str | None = None  # a word2vec text/binary file; None: train word2vec on the training split
    w2v_epochs: int = 5
    w2v_window: int = 5
    freeze_embeddings: bool = True
    max_tokens: int = 64  # tokens kept per sentence and per reason for visit
    # models
    tagger_hidden: int = 256
    tagger_bidirectional: bool = False
    tagger_r4v: bool = True
    variant: str = "supervised_r4v"
    classifier_hidden: int = 256
    # a forward and a backward LSTM, classifier_hidden // 2 each (see models/classifier.py); False: the
    # forward-only LSTM, as the paper describes it
    classifier_bidirectional: bool = True
    attention_size: int = 128
    lambda_att: float = 100.0
    # supervised variants: the attention loss trains the attention layer only, the scores reading detached
    # LSTM states (models/classifier.py); True: it reaches the LSTM too (end to end)
    attention_to_encoder: bool = False
    # "single": the paper's rows, focus sentences with one code; "phrases": one row per coded phrase of every
    # focus sentence, multi-code sentences included, each with its own phrase as attention target
    classifier_examples: str = "single"
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise TrainError(f"threads = {self.threads}: give at least one torch thread")
        if self.variant not in VARIANTS:
            raise TrainError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise TrainError(f"unknown device {self.device!r}; choose cpu, cuda, cuda:N or auto")
        if self.classifier_examples not in CLASSIFIER_EXAMPLES:
            raise TrainError(f"classifier_examples = {self.classifier_examples!r}; choose one of "
                             f"{', '.join(CLASSIFIER_EXAMPLES)}")
        if self.classifier_bidirectional and self.classifier_hidden % 2:
            raise TrainError(f"classifier_hidden = {self.classifier_hidden}: a bidirectional classifier splits it "
                             "between its two directions, so it must be even (or set classifier_bidirectional = false)")

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        """Read the ``[train]`` table of a TOML file (or its top level when it has none).

        A relative ``vectors_path`` is taken relative to the TOML file's folder.

        Raises:
            TrainError: unreadable TOML or an unknown key (the message names the file and key).
        """
        from hiericd_core.settings import read_settings

        data = read_settings(path, "train", cls, TrainError, "training", paths=("vectors_path",))
        return cls(**data)


def _batches(n: int, size: int, generator=None, lengths: list[int] | None = None) -> list[list[int]]:
    """Index batches: in order without ``generator``; else shuffled, and with ``lengths`` bucketed.

    Bucketing shuffles, sorts each pool of 50 batches' worth of items by
    length, cuts it into batches and shuffles the batches: items of a batch
    have similar lengths, so little of the padded LSTM's work is wasted
    (an epoch runs about twice as fast), and the order still changes with
    every epoch.
    """
    import torch

    if generator is None:
        return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    order = torch.randperm(n, generator=generator).tolist()
    if lengths is None:
        return [order[i: i + size] for i in range(0, n, size)]
    batches = []
    pool = size * 50
    for start in range(0, n, pool):
        chunk = sorted(order[start: start + pool], key=lambda i: lengths[i])
        batches += [chunk[i: i + size] for i in range(0, len(chunk), size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


# ---------------------------------------------------------------- the loop


def _fit(stage: str, model, config: TrainConfig, epochs: int, train_epoch: Callable[[int], dict],
         evaluate: Callable[[], dict], callback: Callback | None, progress: bool) -> dict:
    """Run epochs until ``patience`` epochs bring no dev macro F1 gain of ``min_delta``; keep the best weights.

    The best weights are those of the best dev macro F1 whatever the gain; only
    gains of at least ``min_delta`` over the last such gain reset the patience,
    so a plateau of tiny wiggles (the tagger's, near 0.99) ends the stage.
    """
    from tqdm import tqdm

    history: list[dict] = []
    best_f1, best_epoch, best_state, best_dev = -1.0, 0, None, {}
    anchor_f1, anchor_epoch = -1.0, 0  # the last gain of at least min_delta
    stopped = "max_epochs"
    bar = tqdm(range(1, epochs + 1), desc=stage, unit="epoch", disable=not progress)
    for epoch in bar:
        clock = time.perf_counter()
        model.train()
        train = train_epoch(epoch)
        model.eval()
        if not config.early_stopping:  # a fixed number of epochs, the last kept: no dev split to judge on
            history.append({"epoch": epoch, **train})
            if callback is not None:
                callback(stage, epoch, train)
            bar.set_postfix(loss=f"{train['loss']:.4f}")
            logger.info("%s epoch %d/%d: loss %.4f, %.1f s", stage, epoch, epochs, train["loss"],
                        time.perf_counter() - clock)
            best_epoch, stopped = epoch, "fixed_epochs"
            continue
        dev = evaluate()
        record = {"epoch": epoch, **train, "dev": dev}
        history.append(record)
        if callback is not None:
            callback(stage, epoch, {**train, **{f"dev_{k}": v for k, v in dev.items()}})
        if dev["macro_f1"] > best_f1:
            best_f1, best_epoch, best_dev = dev["macro_f1"], epoch, dev
            best_state = copy.deepcopy(model.state_dict())
        if dev["macro_f1"] >= anchor_f1 + config.min_delta:
            anchor_f1, anchor_epoch = dev["macro_f1"], epoch
        bar.set_postfix(loss=f"{train['loss']:.4f}", dev_f1=f"{dev['macro_f1']:.4f}", best=best_epoch)
        # one line per epoch: an Airflow task log (which captures logging, not the bar) shows the run's course
        logger.info("%s epoch %d/%d: loss %.4f, %s, best epoch %d, %.1f s", stage, epoch, epochs, train["loss"],
                    ", ".join(f"dev {k} {v:.4f}" for k, v in dev.items() if isinstance(v, float)), best_epoch,
                    time.perf_counter() - clock)
        if epoch - anchor_epoch >= config.patience:
            stopped = "patience"
            break
    bar.close()
    logger.info("%s stopped (%s) after %d epoch(s); kept epoch %d, dev macro F1 %.4f", stage, stopped, len(history),
                best_epoch, best_f1)
    if best_state is not None and config.early_stopping:
        model.load_state_dict(best_state)
    model.eval()
    return {"history": history, "best_epoch": best_epoch, "best_dev": best_dev, "stopped": stopped}


def torch_device(config: TrainConfig):
    """The torch device ``config.device`` names ("auto": the first GPU when there is one, else the CPU).

    Raises:
        TrainError: a GPU was asked for and torch sees none.
    """
    import torch

    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"device {config.device!r} asked for, but torch sees no GPU; use device = \"cpu\"")
    return torch.device(config.device)


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _train_tagger(config: TrainConfig, tagger_cfg, reports: dict[str, TaggerSplit], weights, callback,
                  progress: bool, vectors):
    import torch

    from hiericd_core.evaluate import tagger_scores
    from hiericd_core.models.tagger import IGNORE, SentenceTagger, batch_reports

    torch.manual_seed(config.seed)
    device = torch_device(config)
    model = SentenceTagger(tagger_cfg, weights)
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(vectors))
    model.to(device)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    train, dev = reports["train"], reports["dev"]
    lengths = train.n_sentences().tolist()
    emb = tagger_cfg.emb_dim
    # frozen vectors make the features fixed, so they are computed once: per sentence its mean word vector
    # (sentences, E) and per report its reason's (reports, E), the two halves of the (S, 2E) features, stored
    # unpadded and apart (half the memory of whole feature rows)
    cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def fill_cache(items: TaggerSplit) -> tuple[torch.Tensor, torch.Tensor]:
        sentence_part = torch.zeros((len(items.focus), emb), device=device)
        reason_part = torch.zeros((len(items) if tagger_cfg.use_r4v else 0, emb), device=device)
        starts = items.report_starts.tolist()
        with torch.no_grad():
            for chunk in _batches(len(items), 256, None):
                b = _to(batch_reports([items.report(i) for i in chunk], [items.r4v[i] for i in chunk]), device)
                f = model.features(b["sentences"], b["r4v"])  # (B, S, F)
                for j, i in enumerate(chunk):
                    sentence_part[starts[i]: starts[i + 1]] = f[j, : starts[i + 1] - starts[i], :emb]
                    if tagger_cfg.use_r4v:
                        reason_part[i] = f[j, 0, emb:]
        return sentence_part, reason_part

    def features(items: TaggerSplit, split: str, index: list[int]):
        """(features (B, S, F), n_sentences (B,))."""
        if not tagger_cfg.freeze_embeddings:
            b = _to(batch_reports([items.report(i) for i in index], [items.r4v[i] for i in index]), device)
            return model.features(b["sentences"], b["r4v"]), b["n_sentences"]
        if split not in cache:
            cache[split] = fill_cache(items)
        sentence_part, reason_part = cache[split]
        starts = items.report_starts
        rows = [sentence_part[starts[i]: starts[i + 1]] for i in index]  # each (S_i, E)
        if tagger_cfg.use_r4v:
            rows = [torch.cat([r, reason_part[i].expand(len(r), emb)], dim=-1)
                    for r, i in zip(rows, index, strict=True)]
        return (torch.nn.utils.rnn.pad_sequence(rows, batch_first=True),
                torch.tensor([len(r) for r in rows], dtype=torch.long, device=device))

    def train_epoch(epoch: int) -> dict:
        total, n = 0.0, 0
        for index in _batches(len(train), config.batch_size, generator, lengths):
            feats, n_sent = features(train, "train", index)
            labels = torch.full(feats.shape[:2], IGNORE, dtype=torch.long)  # (B, S)
            for j, i in enumerate(index):
                focus = train.report_focus(i)
                labels[j, : len(focus)] = torch.from_numpy(focus)
            loss = model.loss(model(feats, n_sent), labels.to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, n = total + loss.item() * len(index), n + len(index)
        return {"loss": total / max(n, 1)}

    def evaluate() -> dict:
        gold, pred = [], []
        with torch.no_grad():
            for index in _batches(len(dev), 256, None):
                feats, n_sent = features(dev, "dev", index)
                focus = model(feats, n_sent).argmax(-1)  # (B, S)
                for j, i in enumerate(index):
                    truth = dev.report_focus(i).tolist()
                    gold += truth
                    pred += focus[j, : len(truth)].tolist()
        s = tagger_scores(gold, pred)
        return {"macro_f1": s.macro.f1, "focus_f1": s.focus.f1, "focus_precision": s.focus.precision,
                "focus_recall": s.focus.recall, "accuracy": s.micro.f1, "sentences": s.sentences}

    result = _fit("tagger", model, config, config.tagger_epochs, train_epoch, evaluate, callback, progress)
    return model.cpu(), result


def _train_classifier(config: TrainConfig, classifier_cfg, rows: dict[str, ClassifierSplit], labels: list[str],
                      callback, progress: bool, vectors):
    import torch

    from hiericd_core.evaluate import classifier_scores
    from hiericd_core.models.classifier import ICDClassifier, batch_sentences

    torch.manual_seed(config.seed)
    device = torch_device(config)
    model = ICDClassifier(classifier_cfg)
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(vectors))
    model.to(device)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed + 1)
    train, dev = rows["train"], rows["dev"]
    lengths = train.tokens.lengths().tolist()

    def batch(items: ClassifierSplit, index: list[int]) -> dict:
        return _to(batch_sentences([items.tokens[i] for i in index], [items.r4v[i] for i in index],
                                   items.labels[index].tolist(), [items.masks[i] for i in index]), device)

    def train_epoch(epoch: int) -> dict:
        sums, n = {"loss": 0.0, "cross_entropy": 0.0, "attention_loss": 0.0}, 0
        for index in _batches(len(train), config.batch_size, generator, lengths):
            b = batch(train, index)
            logits, alpha = model(b["tokens"], b["lengths"], b["r4v"], b["r4v_lengths"])
            loss, ce, att = model.loss(logits, alpha, b["labels"], b["phrase_mask"])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            for key, value in (("loss", loss), ("cross_entropy", ce), ("attention_loss", att)):
                sums[key] += value.item() * len(index)
            n += len(index)
        return {k: v / max(n, 1) for k, v in sums.items()}

    def evaluate() -> dict:
        gold, pred = [], []
        with torch.no_grad():
            for index in _batches(len(dev), 256, None):
                b = batch(dev, index)
                logits, _ = model(b["tokens"], b["lengths"], b["r4v"], b["r4v_lengths"])
                pred += logits.argmax(-1).tolist()
                gold += b["labels"].tolist()
        s = classifier_scores([labels[g] for g in gold], [labels[p] for p in pred])
        return {"macro_f1": s.macro_f1, "accuracy": s.accuracy, "weighted_f1": s.weighted_f1, "rows": s.rows}

    result = _fit("classifier", model, config, config.classifier_epochs, train_epoch, evaluate, callback, progress)
    return model.cpu(), result


# ---------------------------------------------------------------- the stages

# What the stages leave in the model folder for each other (they may run in
# different processes, e.g. parallel Airflow tasks): prepare's words and
# settings, each model stage's result with its timing; finish folds them into
# ``metrics.json``.
STAGES_DIR = "stages"


def _stage_file(out_dir: Path, stage: str) -> Path:
    return out_dir / STAGES_DIR / f"{stage}.json"


def _read_stage(out_dir: Path, stage: str, before: str) -> dict:
    path = _stage_file(out_dir, stage)
    if not path.is_file():
        raise TrainError(f"{out_dir}: no {STAGES_DIR}/{stage}.json; run the {stage} stage before {before}")
    return json.loads(path.read_text(encoding="utf-8"))


def _load_prepared(out_dir: Path, stage: str):
    """What prepare wrote: ``(prepared, config, vocab, vectors)``. Each model stage then re-reads and encodes
    the part of the data set it needs with the vocabulary: encoding is cheap next to training, and
    deterministic, so it is redone rather than passed around in pickles."""
    from hiericd_core.embeddings import Vocabulary

    prepared = _read_stage(out_dir, "prepare", f"the {stage} stage")
    config = TrainConfig(**json.loads((out_dir / "train_config.json").read_text(encoding="utf-8")))
    vocab = Vocabulary.load(out_dir / "vocab.json")
    vectors = np.load(out_dir / "vectors.npy", allow_pickle=False)
    check_dataset(Path(prepared["dataset_dir"]))
    return prepared, config, vocab, vectors


def prepare_stage(dataset_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None) -> dict:
    """Stage 1: vocabulary and word vectors from the training split; the resolved config.

    Writes ``vocab.json``, ``vectors.npy``, ``train_config.json`` and
    ``stages/prepare.json`` into ``out_dir``, and removes the results of any
    earlier run there (checkpoints, stage results, ``metrics.json``), so the
    later stages never mix two runs.

    Returns:
        ``stages/prepare.json``'s contents: the data set, labels, variant, vocabulary size, vectors, counts
        and ``seconds``.

    Raises:
        TrainError: the folder is not a data set, or a split has nothing to train or judge on.
    """
    from hiericd_core.embeddings import Vocabulary, Word2VecConfig, load_vectors, save_vectors, train_vectors
    from hiericd_core.files import atomic_write_json
    from hiericd_core.models import torch_threads

    config = config or TrainConfig()
    dataset_dir, out_dir = Path(dataset_dir).resolve(), Path(out_dir)
    clock = time.perf_counter()
    check_dataset(dataset_dir)
    label_space = json.loads((dataset_dir / "label_space.json").read_text(encoding="utf-8"))
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    labels = list(label_space["codes"])
    if not labels:
        raise TrainError(f"{dataset_dir}: the label space is empty; lower min_count when building the data set")

    with torch_threads(config.threads, deterministic=True):
        r4v_available = train_has_reasons(dataset_dir)
        variant = config.variant if r4v_available else without_r4v(config.variant)

        # words: vocabulary from the training split, vectors trained or read; the tokens are streamed from
        # the Parquet files on each pass, never held in memory
        train_tokens = TrainingTokens(dataset_dir)
        vocab = Vocabulary.build(train_tokens, config.min_freq)
        if config.vectors_path:
            vectors, vectors_info = load_vectors(config.vectors_path, vocab, config.seed)
        else:
            w2v = Word2VecConfig(dim=config.emb_dim, window=config.w2v_window, epochs=config.w2v_epochs,
                                 seed=config.seed)
            vectors = train_vectors(train_tokens, vocab, w2v)
            vectors_info = {"trained": asdict(w2v)}
        config = replace(config, emb_dim=int(vectors.shape[1]))

    counts = count_rows(dataset_dir)
    for split in TRAINED_SPLITS if config.early_stopping else ("train",):
        if not counts[split]["reports"] or not counts[split]["classifier_rows"]:
            raise TrainError(f"{dataset_dir}: the {split} split has {counts[split]['reports']} reports and "
                             f"{counts[split]['classifier_rows']} classifier rows; build the data set from more "
                             "reports")

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("tagger.pt", "classifier.pt", "metrics.json", f"{STAGES_DIR}/tagger.json",
                  f"{STAGES_DIR}/classifier.json"):
        (out_dir / stale).unlink(missing_ok=True)
    vocab.save(out_dir / "vocab.json")
    save_vectors(out_dir / "vectors.npy", vectors)
    atomic_write_json(out_dir / "train_config.json", asdict(config))
    prepared = {
        "dataset_dir": str(dataset_dir),
        "data": {"dataset_version": manifest.get("version"), "language": manifest.get("language", "en"),
                 "segmenter": manifest.get("segmenter")},
        "labels": labels,
        "variant_requested": config.variant,
        "variant": variant,
        "r4v_available": r4v_available,
        "tagger_uses_r4v": config.tagger_r4v and r4v_available,
        "vocab_size": len(vocab),
        "vectors": vectors_info,
        "train": counts["train"],
        "seconds": time.perf_counter() - clock,
    }
    atomic_write_json(_stage_file(out_dir, "prepare"), prepared)
    return prepared


def tagger_stage(out_dir: str | Path, callback: Callback | None = None, progress: bool = False) -> dict:
    """Stage 2a: train the sentence tagger from what :func:`prepare_stage` wrote.

    Writes ``tagger.pt`` and ``stages/tagger.json`` (the early-stopping
    result and ``seconds``), which it also returns. Independent of
    :func:`classifier_stage`: the two may run at the same time.
    """
    from hiericd_core.files import atomic_write_json
    from hiericd_core.models import TaggerConfig, save_checkpoint, torch_threads
    from hiericd_core.models.tagger import class_weights

    out_dir = Path(out_dir)
    clock = time.perf_counter()
    prepared, config, vocab, vectors = _load_prepared(out_dir, "tagger")
    tagged = read_tagger_splits(Path(prepared["dataset_dir"]), vocab, prepared["r4v_available"], config.max_tokens)
    n_focus = prepared["train"]["focus_sentences"]
    # CUDA's index backward is not deterministic: there, runs differ in the last digits
    with torch_threads(config.threads, deterministic=torch_device(config).type == "cpu"):
        tagger_cfg = TaggerConfig(vocab_size=len(vocab), emb_dim=config.emb_dim, hidden=config.tagger_hidden,
                                  bidirectional=config.tagger_bidirectional, dropout=config.dropout,
                                  use_r4v=prepared["tagger_uses_r4v"], freeze_embeddings=config.freeze_embeddings)
        weights = class_weights(n_focus, prepared["train"]["sentences"] - n_focus)
        tagger, result = _train_tagger(config, tagger_cfg, tagged, weights, callback, progress, vectors)
    save_checkpoint(out_dir / "tagger.pt", tagger, max_tokens=config.max_tokens, **prepared["data"])
    result = {"result": result, "seconds": time.perf_counter() - clock}
    atomic_write_json(_stage_file(out_dir, "tagger"), result)
    return result


def classifier_stage(out_dir: str | Path, callback: Callback | None = None, progress: bool = False) -> dict:
    """Stage 2b: train the ICD classifier from what :func:`prepare_stage` wrote.

    Writes ``classifier.pt`` and ``stages/classifier.json`` (the
    early-stopping result and ``seconds``), which it also returns.
    """
    from hiericd_core.files import atomic_write_json
    from hiericd_core.models import ClassifierConfig, save_checkpoint, torch_threads

    out_dir = Path(out_dir)
    clock = time.perf_counter()
    prepared, config, vocab, vectors = _load_prepared(out_dir, "classifier")
    labels, variant = prepared["labels"], prepared["variant"]
    rows = read_classifier_splits(Path(prepared["dataset_dir"]), vocab, {c: i for i, c in enumerate(labels)},
                                  prepared["r4v_available"], config.max_tokens, config.classifier_examples)
    with torch_threads(config.threads, deterministic=torch_device(config).type == "cpu"):
        classifier_cfg = ClassifierConfig(variant=variant, vocab_size=len(vocab), emb_dim=config.emb_dim,
                                          hidden=config.classifier_hidden, attention_size=config.attention_size,
                                          lambda_att=config.lambda_att, dropout=config.dropout, n_labels=len(labels),
                                          freeze_embeddings=config.freeze_embeddings,
                                          bidirectional=config.classifier_bidirectional,
                                          attention_to_encoder=config.attention_to_encoder)
        classifier, result = _train_classifier(config, classifier_cfg, rows, labels, callback, progress, vectors)
    save_checkpoint(out_dir / "classifier.pt", classifier, labels=labels, variant=variant,
                    variant_requested=config.variant, max_tokens=config.max_tokens, **prepared["data"])
    result = {"result": result, "seconds": time.perf_counter() - clock}
    atomic_write_json(_stage_file(out_dir, "classifier"), result)
    return result


def finish_stage(out_dir: str | Path) -> dict:
    """Stage 3: fold the stages' results into ``metrics.json``.

    Returns:
        The contents of ``metrics.json`` plus ``seconds`` (timings per stage) and ``out_dir``.

    Raises:
        TrainError: a stage has not run (the message names it).
    """
    from hiericd_core.files import atomic_write_json

    out_dir = Path(out_dir)
    prepared = _read_stage(out_dir, "prepare", "finish")
    tagger = _read_stage(out_dir, "tagger", "finish")
    classifier = _read_stage(out_dir, "classifier", "finish")
    metrics = {
        **prepared["data"],
        **{k: prepared[k] for k in ("variant_requested", "variant", "r4v_available", "tagger_uses_r4v",
                                    "vocab_size", "vectors")},
        "label_space_size": len(prepared["labels"]),
        "train": prepared["train"],
        "tagger": tagger["result"],
        "classifier": classifier["result"],
    }
    atomic_write_json(out_dir / "metrics.json", metrics)
    seconds = {"vectors": prepared["seconds"], "tagger": tagger["seconds"], "classifier": classifier["seconds"]}
    return {**metrics, "seconds": seconds, "out_dir": str(out_dir)}


def train_model(dataset_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None,
                callback: Callback | None = None, progress: bool = False) -> dict:
    """Train the tagger and the classifier on a data set folder and write the model folder.

    Runs :func:`prepare_stage`, :func:`tagger_stage`,
    :func:`classifier_stage` and :func:`finish_stage` in turn (the Airflow
    training DAG runs the two model stages side by side).

    Args:
        dataset_dir: a folder written by :func:`hiericd_core.datasets.write_dataset`.
        out_dir: the model folder to write (created; files in it are replaced).
        config: the knobs; default :class:`TrainConfig()`.
        callback: called as ``callback(stage, epoch, metrics)`` after each epoch,
            ``stage`` being ``"tagger"`` or ``"classifier"``.
        progress: show progress bars.

    Returns:
        The contents of ``metrics.json`` plus ``seconds`` (timings per step) and ``out_dir``.

    Raises:
        TrainError: the folder is not a data set, or a split has nothing to train or judge on.
    """
    prepare_stage(dataset_dir, out_dir, config)
    tagger_stage(out_dir, callback, progress)
    classifier_stage(out_dir, callback, progress)
    return finish_stage(out_dir)
