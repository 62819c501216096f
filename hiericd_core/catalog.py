"""Where hiericd keeps things: the one module that knows the folder layout.

Everything lives under one root, ``HIERICD_HOME`` (default ``./var``)::

    rounds/<round_id>/        coding rounds (BRAT exports) copied or generated here
    merged/<round_id>/        merged annotations + provenance
    reports/<round_id>/       data-quality reports (HTML, PNG, JSON summary)
    datasets/<version>/       sentence- and report-level Parquet + manifest
    rejected/datasets/<version>/  data sets that failed their gate, kept for inspection
    models/<run>/             trained model folders
    mlflow/                   sqlite tracking/registry store + artifacts, decisions/ of the promotion gate
    airflow/                  AIRFLOW_HOME (sqlite metadata DB, logs)
    bench/                    benchmark scratch space
    cache/segments/           segmented reports by content hash (data set builds; safe to delete)

Other modules take paths as arguments; only the CLI, the DAGs and the MLflow
helpers ask the catalog where things are. Files are written through
:mod:`hiericd_core.files` (temp file + rename).

Round ids, data set versions and model runs come from users' files; each
path method checks its id with :func:`check_id` (one plain file name, see
:data:`SAFE_ID`) and that the path stays inside its folder, so no id can act
as a path. :mod:`hiericd_core.rounds` applies the same check to coder names
and report ids.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "HIERICD_HOME"
DEFAULT_HOME = "var"

# What a round id, coder name, report id, data set version or model run may
# be: one plain file name. It starts with a letter or digit (so neither a
# hidden file nor an option), holds no separator, and never ``..``.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_ID_RULE = ("letters, digits, '.', '_' and '-', starting with a letter or digit, "
                "at most 128 characters, no '..'")


class UnsafeIdError(ValueError):
    """An id from a user's files that cannot be used as a file or folder name."""


def is_safe_id(value: object) -> bool:
    """Whether ``value`` may name a file or folder of the catalog or of a round."""
    return isinstance(value, str) and SAFE_ID.fullmatch(value) is not None and ".." not in value


def check_id(value: object, what: str, where: str = "") -> str:
    """Return ``value`` when it is a safe id, else raise :class:`UnsafeIdError`.

    Ids come from users' files (``round.toml``, folder and file names); they
    become folder names under the catalog, so one that holds a separator or
    ``..`` would write outside it.

    Args:
        value: the id.
        what: what it is, for the message (``"[round] id"``, ``"coder folder"``).
        where: the file it came from, put first in the message.

    Raises:
        UnsafeIdError: naming ``where``, ``what``, the value and the rule.
    """
    if is_safe_id(value):
        return value  # type: ignore[return-value]  # is_safe_id checked the type
    prefix = f"{where}: " if where else ""
    subject = f"{what} {value!r}" if what else repr(value)
    raise UnsafeIdError(f"{prefix}{subject} is not a safe id; use {SAFE_ID_RULE}")


@dataclass(frozen=True)
class Catalog:
    """Paths of every artefact under one root folder."""

    root: Path

    @classmethod
    def from_env(cls, root: str | Path | None = None) -> Catalog:
        """Return the catalog at ``root``, else ``$HIERICD_HOME``, else ``./var``.

        The root is made absolute, because sqlite URIs and Airflow need
        absolute paths.
        """
        chosen = root if root is not None else os.environ.get(ENV_VAR, DEFAULT_HOME)
        return cls(Path(chosen).expanduser().resolve())

    @property
    def incoming(self) -> Path:
        """Where round folders are moved for the round DAG's sensor to pick up."""
        return self.root / "incoming"

    @property
    def rounds(self) -> Path:
        return self.root / "rounds"

    def round(self, round_id: str) -> Path:
        return _inside(self.rounds, round_id, "round id")

    def merged(self, round_id: str) -> Path:
        return _inside(self.root / "merged", round_id, "round id")

    def report(self, round_id: str) -> Path:
        return _inside(self.root / "reports", round_id, "round id")

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def dataset(self, version: str) -> Path:
        return _inside(self.datasets, version, "data set version")

    @property
    def rejected(self) -> Path:
        """Outputs that failed their gate, kept for inspection and never used (``rejected/datasets/<version>``)."""
        return self.root / "rejected"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, run: str) -> Path:
        return _inside(self.models, run, "model run")

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        """The embedded sqlite store (four slashes: an absolute path)."""
        return f"sqlite:///{(self.mlflow / 'mlflow.db').as_posix()}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow / "artifacts"

    @property
    def decisions(self) -> Path:
        """Promotion and rollback decisions of the model registry (one JSON file each)."""
        return self.mlflow / "decisions"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def airflow_sql_alchemy_conn(self) -> str:
        return f"sqlite:///{(self.airflow_home / 'airflow.db').as_posix()}"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    @property
    def segment_cache(self) -> Path:
        """Segmented reports by content hash (:class:`hiericd_core.datasets.SegmentCache`); deleting it is safe."""
        return self.root / "cache" / "segments"

    def ensure(self) -> Catalog:
        """Create the top-level folders; return ``self``."""
        for path in (self.rounds, self.root / "merged", self.root / "reports", self.datasets,
                     self.models, self.mlflow_artifacts, self.airflow_home):
            path.mkdir(parents=True, exist_ok=True)
        return self


def _inside(parent: Path, name: str, what: str) -> Path:
    """Return ``parent / name`` after checking ``name`` is a safe id that stays inside ``parent``.

    The pattern already rules out separators and ``..``; the resolved check
    also catches a ``name`` that is a symlink pointing out of ``parent``.
    """
    path = parent / check_id(name, what)
    if path.resolve().parent != parent.resolve():
        raise UnsafeIdError(f"{what} {name!r}: {path} leads outside {parent}; remove that link")
    return path
