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

__all__ = ["VARIANTS", "ClassifierConfig", "ICDClassifier", "ModelFileError", "SentenceTagger", "TaggerConfig",
           "load_checkpoint", "save_checkpoint", "torch_threads", "without_r4v"]

FORMAT = 1
_KINDS = {"sentence_tagger": (TaggerConfig, SentenceTagger), "icd_classifier": (ClassifierConfig, ICDClassifier)}


class ModelFileError(ValueError):
    """A file of a model folder that cannot be used (truncated, garbage, another format); names the file."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: not a readable model file ({reason}); retrain or copy it again")
        self.path = Path(path)


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
    """Rebuild the model in ``path`` (in eval mode); return it and the whole checkpoint dict.

    Raises:
        ModelFileError: the file is truncated, garbage, or not a hiericd checkpoint of this format.
        OSError: the file cannot be opened (missing, a folder, no permission).
    """
    import torch

    try:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # the environment, not the file's bytes: the CLI names the path and the fault
    except Exception as exc:  # noqa: BLE001 - torch raises anything from EOFError to RuntimeError on bad bytes
        raise ModelFileError(path, _short_reason(exc)) from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT or checkpoint.get("kind") not in _KINDS:
        raise ModelFileError(path, f"not a hiericd checkpoint of format {FORMAT}")
    config_cls, model_cls = _KINDS[checkpoint["kind"]]
    try:
        model = model_cls(config_cls(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:  # a config or weights from another version
        raise ModelFileError(path, _short_reason(exc)) from exc
    model.eval()
    return model, checkpoint


def _short_reason(exc: BaseException) -> str:
    """The first line of an exception's message, with its type: torch's messages run to many lines."""
    # the first sentence: torch goes on for a paragraph about weights_only and miniz
    first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


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
