"""The paper's two models and their checkpoints.

A checkpoint (``tagger.pt``, ``classifier.pt``) is a ``torch.save`` dict of
plain values, so it loads with ``weights_only=True`` and without outside
knowledge::

    {"format": 1, "kind": "sentence_tagger" | "icd_classifier",
     "config": {...the model config...}, "state_dict": {...},
     ...extra keys (labels, variant used, ...)}
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hiericd_core.models.classifier import VARIANTS, ClassifierConfig, ICDClassifier, without_r4v
from hiericd_core.models.tagger import SentenceTagger, TaggerConfig

__all__ = ["VARIANTS", "ClassifierConfig", "ICDClassifier", "SentenceTagger", "TaggerConfig", "load_checkpoint",
           "save_checkpoint", "torch_threads", "without_r4v"]

FORMAT = 1
_KINDS = {"sentence_tagger": (TaggerConfig, SentenceTagger), "icd_classifier": (ClassifierConfig, ICDClassifier)}


def save_checkpoint(path: str | Path, model: SentenceTagger | ICDClassifier, **extra: Any) -> Path:
    """Write ``model`` with its config (and ``extra`` plain values) atomically."""
    import io

    import torch

    from hiericd_core.files import atomic_write_bytes

    kind = "sentence_tagger" if isinstance(model, SentenceTagger) else "icd_classifier"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "kind": kind, "config": asdict(model.config), "state_dict": state, **extra},
               buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> tuple[SentenceTagger | ICDClassifier, dict]:
    """Rebuild the model in ``path`` (in eval mode); return it and the whole checkpoint dict."""
    import torch

    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    if checkpoint.get("format") != FORMAT or checkpoint.get("kind") not in _KINDS:
        raise ValueError(f"{path}: not a hiericd checkpoint of format {FORMAT}; retrain the model")
    config_cls, model_cls = _KINDS[checkpoint["kind"]]
    model = model_cls(config_cls(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, checkpoint


@contextmanager
def torch_threads(threads: int | None, deterministic: bool = False) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (None: leave as is), restoring the setting after.

    On a busy machine more threads than free cores slow the small matrix
    products of these LSTMs down many times over, so callers choose.
    """
    import torch

    before, was_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if deterministic and not was_deterministic:
            # only when changed: the call imports torch's compiler stack (seconds) the first time
            torch.use_deterministic_algorithms(False)
