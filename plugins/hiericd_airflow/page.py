"""The rounds page: what the coding lead checks after each round, read from the catalog.

:func:`collect` reads the files the pipeline writes (``reports/<id>/summary.json``,
``merged/<id>/merge_summary.json`` and ``pending.txt``,
``datasets/<version>/manifest.json``) and the registry's champion and
challenger; :func:`render` turns that into HTML (jinja2); :func:`create_app`
serves the page and the files it links (the data-quality reports, the Great
Expectations Data Docs, the BRAT files of reports pending adjudication and
the promotion gate's decisions with their model cards). All three take a
catalog, so the page is tested without an Airflow server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from hiericd_core.catalog import Catalog, is_safe_id

URL_PREFIX = "/hiericd"
TEMPLATES = Path(__file__).parent / "templates"
PENDING_SHOWN = 50  # pending report ids listed per round (the rest are counted)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def datasets_by_round(catalog: Catalog) -> dict[str, list[dict]]:
    """Round id -> the data sets built from it (``version``, ``has_docs``), newest first."""
    found: dict[str, list[tuple[int, dict]]] = {}
    for manifest_file in catalog.datasets.glob("*/manifest.json"):
        manifest = _read_json(manifest_file)
        if manifest is None:
            continue
        folder = manifest_file.parent
        entry = {"version": folder.name, "has_docs": (folder / "data_docs" / "index.html").is_file()}
        for round_id in manifest.get("source_rounds", []):
            found.setdefault(round_id, []).append((manifest_file.stat().st_mtime_ns, entry))
    return {r: [e for _, e in sorted(items, key=lambda x: -x[0])] for r, items in found.items()}


def round_rows(catalog: Catalog) -> list[dict]:
    """One row per reported round, newest first (by round date, then id).

    A row: ``round_id``, ``date``, ``reports``, ``coders``, ``kappa`` (mean
    pairwise kappa, report × code presence; None with fewer than two coders),
    ``kappa_threshold``, ``below_threshold``, ``pending`` (reports waiting for
    the senior), ``queue`` (an adjudication queue folder exists), ``disputes``,
    ``quarantined``, ``report`` (the report has an ``index.html``),
    ``datasets``, ``code_system`` (as ``round.toml`` names it, e.g.
    ``CIE-10-ES``), ``pending_ids`` (the first :data:`PENDING_SHOWN` pending
    report ids whose BRAT files are in the queue) and ``problem`` (why figures
    are missing, or None).
    """
    from hiericd_core.report import code_system_label

    datasets = datasets_by_round(catalog)
    rows = []
    for summary_file in (catalog.root / "reports").glob("*/summary.json"):
        folder = summary_file.parent
        summary = _read_json(summary_file)
        if summary is None or not isinstance(summary.get("round_id"), str) or not is_safe_id(summary["round_id"]):
            # an id that is no safe id is never joined to a path: the row says so instead of the page failing
            rows.append({"round_id": folder.name, "date": "", "problem": f"{summary_file} is not a round summary",
                         "report": (folder / "index.html").is_file(), "datasets": datasets.get(folder.name, [])})
            continue
        round_id = summary["round_id"]
        merged = _read_json(catalog.merged(round_id) / "merge_summary.json")
        # the merge's count is the current one (the senior may have cleared the queue since the report)
        pending = merged["reports"]["pending"] if merged and "reports" in merged else summary.get("pending_reports")
        kappa, threshold = summary.get("mean_pairwise_kappa"), summary.get("kappa_threshold")
        rows.append({
            "round_id": round_id,
            "date": str(summary.get("date") or ""),
            "reports": summary.get("reports"),
            "coders": len(summary.get("coders") or []),
            "kappa": kappa,
            "kappa_threshold": threshold,
            "below_threshold": kappa is not None and threshold is not None and kappa < threshold,
            "agreement_status": summary.get("agreement_status"),
            "pending": pending,
            "queue": (catalog.merged(round_id) / "adjudication").is_dir(),
            "disputes": summary.get("disputes"),
            "quarantined": summary.get("quarantined"),
            "report": (folder / "index.html").is_file() and folder.name == round_id,
            "datasets": datasets.get(round_id, []),
            "code_system": code_system_label(summary.get("code_system") or "icd-10-cm"),
            "pending_ids": pending_ids(catalog, round_id),
            "problem": None if merged else "not merged yet (no merge_summary.json)",
        })
    return sorted(rows, key=lambda r: (r["date"], r["round_id"]), reverse=True)


def pending_ids(catalog: Catalog, round_id: str) -> list[str]:
    """The first :data:`PENDING_SHOWN` ids of ``merged/<round>/pending.txt`` whose queue holds their BRAT files."""
    queue = catalog.merged(round_id) / "adjudication"
    return [rid for rid in _pending(catalog, round_id) if (queue / f"{rid}.txt").is_file()][:PENDING_SHOWN]


def models(catalog: Catalog, status: Callable[..., dict] | None = None) -> dict:
    """Champion and challenger side by side: ``{"champion", "challenger", "metrics": [names], "error"}``.

    ``status`` defaults to :func:`hiericd_core.registry.status` (imported
    here: it imports MLflow); a registry that cannot be read gives ``error``.
    """
    if status is None:
        from hiericd_core.registry import status
    try:
        found = status(catalog=catalog)
    except Exception as exc:  # noqa: BLE001 - the page still lists the rounds when MLflow is unreadable
        return {"champion": None, "challenger": None, "metrics": [], "error": f"{type(exc).__name__}: {exc}"}
    sides = {side: found.get(side) for side in ("champion", "challenger")}
    names: list[str] = []
    for side in sides.values():
        for name in (side or {}).get("metrics") or {}:
            if name not in names:
                names.append(name)
    return {**sides, "metrics": names, "error": None, "tracking_uri": found.get("tracking_uri")}


def collect(catalog: Catalog, status: Callable[..., dict] | None = None) -> dict:
    """Everything the page shows: ``{"home", "rounds", "models"}``."""
    return {"home": str(catalog.root), "rounds": round_rows(catalog), "models": models(catalog, status)}


def render(catalog: Catalog, status: Callable[..., dict] | None = None) -> str:
    """The page's HTML (links are relative to the page, so it works under any prefix)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v, digits=3: "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float)
                                                                     else str(v))
    return env.get_template("rounds.html.j2").render(**collect(catalog, status))


def _pending(catalog: Catalog, round_id: str) -> list[str]:
    """The safe ids of ``merged/<round>/pending.txt``, in its order (none when it is missing)."""
    try:
        ids = (catalog.merged(round_id) / "pending.txt").read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return []
    return [rid for rid in ids if is_safe_id(rid)]


def _inside(base: Path, relative: str) -> Path | None:
    """``base / relative`` when it is a file inside ``base`` (no ``..`` escapes), else None."""
    base = base.resolve()
    target = (base / relative).resolve()
    return target if target.is_file() and base in target.parents else None


def create_app(catalog: Callable[[], Catalog] = Catalog.from_env, status: Callable[..., dict] | None = None,
               login: bool = True) -> FastAPI:
    """The FastAPI app of the page.

    Args:
        catalog: returns the catalog to show (called per request, so a changed
            ``HIERICD_HOME`` shows at once).
        status: the registry's status function (default: the MLflow registry).
        login: ask for the Airflow login (a ``_token`` cookie, as the UI sets
            it, or an ``Authorization: Bearer`` token); off in tests.

    Routes: ``/`` (the page), ``/reports/<round id>/<file>`` (a data-quality
    report and its figures), ``/datasets/<version>/docs/<file>`` (Data Docs),
    ``/merged/<round id>/adjudication/<report id>.txt|.ann`` (a pending
    report's text and its coders' annotations side by side, from the
    adjudication queue; the catalog's own layout, so the data-quality report's
    relative links work on disk and here alike),
    ``/decisions/<file>`` (the promotion gate's decisions and model cards).
    """
    async def airflow_user(request: Request) -> None:
        from airflow.api_fastapi.core_api.security import resolve_user_from_token

        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get("_token")
        await resolve_user_from_token(token)  # 401/403 without a valid Airflow token

    app = FastAPI(title="hiericd rounds", dependencies=[Depends(airflow_user)] if login else [])

    def serve(path: Path | None) -> FileResponse:
        if path is None:
            raise HTTPException(status_code=404, detail="no such file in the hiericd catalog")
        return FileResponse(path)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render(catalog(), status)

    def plain(name: str) -> str:
        if name in ("", ".", "..") or Path(name).name != name:
            raise HTTPException(status_code=404, detail="no such round or data set")
        return name

    @app.get("/reports/{round_id}/{name:path}")
    def report_file(round_id: str, name: str) -> FileResponse:
        return serve(_inside(catalog().report(plain(round_id)), name or "index.html"))

    @app.get("/datasets/{version}/docs/{name:path}")
    def data_docs(version: str, name: str) -> FileResponse:
        return serve(_inside(catalog().dataset(plain(version)) / "data_docs", name or "index.html"))

    @app.get("/merged/{round_id}/adjudication/{name}")
    def pending_file(round_id: str, name: str) -> FileResponse:
        # only a listed pending report's two BRAT files, whatever else the queue folder holds
        report_id, dot, suffix = name.rpartition(".")
        found = catalog()
        if not (dot and suffix in ("txt", "ann") and is_safe_id(round_id) and is_safe_id(report_id)
                and report_id in _pending(found, round_id)):
            raise HTTPException(status_code=404, detail="no such pending report")
        queued = found.merged(round_id) / "adjudication" / f"{report_id}.{suffix}"
        path = _inside(found.root, str(queued.relative_to(found.root)))  # resolved: no link leads out
        if path is None:
            raise HTTPException(status_code=404, detail="no such pending report")
        return FileResponse(path, media_type="text/plain; charset=utf-8")  # .ann would download otherwise

    @app.get("/decisions/{name:path}")
    def decision_file(name: str) -> FileResponse:
        return serve(_inside(catalog().decisions, name))

    return app
