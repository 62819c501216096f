"""Where hiericd keeps things: the one module that knows the folder layout.

Everything lives under one root, ``HIERICD_HOME`` (default ``./var``)::

    rounds/<round_id>/        coding rounds (BRAT exports) copied or generated here
    merged/<round_id>/        merged annotations + provenance
    reports/<round_id>/       data-quality reports (HTML, PNG, JSON summary)
    datasets/<version>/       sentence- and report-level Parquet + manifest
    models/<run>/             trained model folders
    mlflow/                   sqlite tracking/registry store + artifacts, decisions/ of the promotion gate
    airflow/                  AIRFLOW_HOME (sqlite metadata DB, logs)
    bench/                    benchmark scratch space

Other modules take paths as arguments; only the CLI, the DAGs and the MLflow
helpers ask the catalog where things are. Files are written through
:mod:`hiericd_core.files` (temp file + rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "HIERICD_HOME"
DEFAULT_HOME = "var"


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
        return self.rounds / round_id

    def merged(self, round_id: str) -> Path:
        return self.root / "merged" / round_id

    def report(self, round_id: str) -> Path:
        return self.root / "reports" / round_id

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def dataset(self, version: str) -> Path:
        return self.datasets / version

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, run: str) -> Path:
        return self.models / run

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

    def ensure(self) -> Catalog:
        """Create the top-level folders; return ``self``."""
        for path in (self.rounds, self.root / "merged", self.root / "reports", self.datasets,
                     self.models, self.mlflow_artifacts, self.airflow_home):
            path.mkdir(parents=True, exist_ok=True)
        return self
