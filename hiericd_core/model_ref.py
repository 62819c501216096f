"""A model as ``hiericd predict`` takes it: a model folder, or a registered pipeline version.

A registry reference is ``champion`` or ``challenger`` (aliases of
``hiericd-pipeline``), ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.
Its MLflow pyfunc model is downloaded from the store :mod:`hiericd_core.registry`
uses into a temporary folder, and the model folder it carries (its
``model_dir`` artifact, see :mod:`hiericd_core.pyfunc`) is what gets loaded.
A folder of that name, when one exists, wins: a path is never mistaken for a
reference.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hiericd_core.catalog import Catalog
from hiericd_core.registry_store import CHALLENGER, CHAMPION, PIPELINE, point_fluent_api, tracking_uri

_REFERENCE = re.compile(r"models:/(?P<name>[\w.-]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))")


class ModelRefError(Exception):
    """A registry reference that names no model (the message says how to see what there is)."""


def is_reference(text: str) -> bool:
    """Whether ``text`` is meant as a registry reference rather than a folder."""
    return text in (CHAMPION, CHALLENGER) or text.startswith("models:/")


def model_uri(reference: str) -> str:
    """The MLflow ``models:/`` URI of a reference (``champion`` → ``models:/hiericd-pipeline@champion``).

    Raises:
        ModelRefError: not a reference of a form above.
    """
    if reference in (CHAMPION, CHALLENGER):
        return f"models:/{PIPELINE}@{reference}"
    if not _REFERENCE.fullmatch(reference):
        raise ModelRefError(f"{reference!r}: not a model reference; use champion, challenger, "
                            f"models:/{PIPELINE}@ALIAS or models:/{PIPELINE}/VERSION")
    return reference


def download_model_folder(reference: str, dst: str | Path, catalog: Catalog | None = None) -> Path:
    """Download a registered pipeline version into ``dst``; return the model folder inside it.

    Raises:
        ModelRefError: no store, or no such model version or alias in it.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    uri, store = model_uri(reference), tracking_uri(catalog)
    if store.startswith("sqlite:///"):
        # opening a missing sqlite store would create an empty one: a reference must not write anything
        db = Path(store.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ModelRefError(f"{reference}: no MLflow store at {db}; register a model first (hiericd register) "
                                "or set HIERICD_HOME / MLFLOW_TRACKING_URI")
    # download_artifacts does not carry registry_uri down to the models:/ resolution (MLflow 3.17): without the
    # fluent URIs set it looks in ./mlflow.db and finds no model
    point_fluent_api(store)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=store,
                                                         registry_uri=store))
    except MlflowException as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelRefError(f"{reference}: no such model in {store} ({first}); see hiericd registry-status") from exc
    return _model_dir_artifact(local, reference)


@contextmanager
def model_folder(model: str | Path, catalog: Catalog | None = None) -> Iterator[Path]:
    """The model folder ``model`` names, downloaded into a temporary folder for a reference (removed after).

    Raises:
        ModelRefError: see :func:`download_model_folder`.
    """
    text = str(model)
    if not is_reference(text) or Path(text).exists():
        yield Path(text)
        return
    with tempfile.TemporaryDirectory(prefix="hiericd-model-") as tmp:
        yield download_model_folder(text, tmp, catalog)


def _model_dir_artifact(local: Path, reference: str) -> Path:
    """The ``model_dir`` artifact of a downloaded pyfunc model, as its ``MLmodel`` file records it."""
    import yaml

    try:
        meta = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
        path = meta["flavors"]["python_function"]["artifacts"]["model_dir"]["path"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ModelRefError(f"{reference}: not a hiericd pipeline model (no model_dir artifact in its "
                            "MLmodel); give a hiericd-pipeline version") from exc
    return local / path
