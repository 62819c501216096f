"""The whole pipeline (segmenter → tagger → classifier → evidence) as one MLflow pyfunc model.

The logged model carries the model folder written by
:func:`hiericd_core.train.train_model` as its artifact ``model_dir``; loading it
loads a :class:`~hiericd_core.infer.Predictor` from that folder, so the served
model codes reports exactly as ``hiericd predict`` does.

Input: a data frame with columns ``report_id``, ``text`` and, optionally,
``reason_for_visit``. Output: one row per predicted code, most probable first
within a report::

    report_id | code | probability | evidence (JSON string)

``evidence`` holds the focus sentence (index, offsets into the report text,
text) and the heaviest attention tokens (``token``, ``weight``, ``start``,
``end``). A report that gets no code (no text, no words, longer than
:data:`MAX_REPORT_CHARS`) still gets one row, with an empty code, probability 0
and ``{"problems": [...]}`` as evidence, so every report sent comes back, and
one bad report never fails the others.

No stack trace and no server path goes into a response: MLflow's scoring
server puts the traceback of any exception :meth:`HiericdPipeline.predict`
raises into the response body (and an ``MlflowException``'s message gets the
whole input prepended), so ``predict`` does not raise for what a report holds;
a failure of the model itself is logged on the server and each report gets a
row whose problem names only the kind of error.

Serving needs ``hiericd_core`` importable (``mlflow models serve --env-manager
local`` from the project's venv): the wrapper is pickled by reference to this
module, and the model folder's checkpoints are plain ``torch.save`` dicts.
"""

from __future__ import annotations

import json
import logging

import mlflow.pyfunc
import pandas as pd

COLUMNS = ("report_id", "code", "probability", "evidence")
# characters of one served report: longer ones take tens of seconds to segment, past the server's request
# timeout (a 504 for the whole batch); ``hiericd predict`` codes them (in chunks: hiericd_core.segment)
MAX_REPORT_CHARS = 1_000_000

logger = logging.getLogger(__name__)


def evidence_json(code) -> str:
    """The evidence of one :class:`~hiericd_core.infer.CodePrediction` as a JSON string."""
    return json.dumps({
        "sentence_idx": code.sentence_idx, "sentence_start": code.sentence_start, "sentence_end": code.sentence_end,
        "sentence_text": code.sentence_text,
        "top_tokens": [{"token": t.token, "weight": round(float(t.weight), 6), "start": t.start, "end": t.end}
                       for t in code.top_tokens],
    }, ensure_ascii=False)


def prediction_rows(results) -> list[dict]:
    """Rows of the output table from :class:`~hiericd_core.infer.ReportPrediction` objects."""
    rows: list[dict] = []
    for result in results:
        if not result.codes:
            rows.append({"report_id": result.report_id, "code": "", "probability": 0.0,
                         "evidence": json.dumps({"problems": result.problems or ["no code predicted"]})})
        rows += [{"report_id": result.report_id, "code": c.code, "probability": float(c.probability),
                  "evidence": evidence_json(c)} for c in result.codes]
    return rows


class HiericdPipeline(mlflow.pyfunc.PythonModel):
    """Codes report texts with the model folder logged as the ``model_dir`` artifact."""

    def load_context(self, context) -> None:
        from hiericd_core.infer import Predictor

        self.model_dir = context.artifacts["model_dir"]
        self.predictor = Predictor.load(self.model_dir)

    # a DataFrame hint: MLflow checks inputs against the logged signature instead of the hint
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Code the reports of ``model_input`` (a data frame, or a list of report dicts).

        Returns:
            a data frame with the columns of :data:`COLUMNS`.
        """
        from hiericd_core.infer import ReportPrediction

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        # a report without id is named by its place in the request, whichever reports are coded with it
        reports = [{"report_id": _report_id(r.get("report_id")),
                    "text": r.get("text") if isinstance(r.get("text"), str) else None,
                    "reason_for_visit": r.get("reason_for_visit") if isinstance(r.get("reason_for_visit"), str)
                    else ""}
                   for r in frame.to_dict("records")]
        for i, report in enumerate(reports):
            report["report_id"] = report["report_id"] or f"report-{i + 1}"
        results: list = [None] * len(reports)
        todo = []
        for i, report in enumerate(reports):
            size = len(report["text"] or "") + len(report["reason_for_visit"])
            if size > MAX_REPORT_CHARS:
                results[i] = ReportPrediction(report["report_id"], problems=[
                    f"too long to serve ({size:,} characters, at most {MAX_REPORT_CHARS:,}): code it with "
                    "hiericd predict"])
            else:
                todo.append(i)
        for i, result in zip(todo, self._predict_safely([reports[i] for i in todo]), strict=True):
            results[i] = result
        return pd.DataFrame(prediction_rows(results), columns=list(COLUMNS))

    def _predict_safely(self, reports: list[dict]) -> list:
        """The predictor's results; when the batch fails, report by report, a failing one with a problem row."""
        from hiericd_core.infer import ReportPrediction

        try:
            return self.predictor.predict(reports)
        except Exception:  # noqa: BLE001 - the traceback goes to the server log, never into the response
            logger.exception("coding a batch of %d report(s) failed; coding them one by one", len(reports))
        out = []
        for report in reports:
            try:
                out += self.predictor.predict([report])
            except Exception as exc:  # noqa: BLE001 - as above
                logger.exception("coding report %r failed", report.get("report_id"))
                out.append(ReportPrediction(report["report_id"], problems=[
                    f"could not be coded (internal error {type(exc).__name__}; see the server log)"]))
        return out


def _report_id(value) -> str:
    """A report id cell as text: missing (None, NaN) is empty."""
    if isinstance(value, str):
        return value
    return "" if value is None or value != value else str(value)  # NaN != NaN


def signature():
    """Input and output schema of the pipeline model (``reason_for_visit`` optional)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string", "report_id"), ColSpec("string", "text"),
                     ColSpec("string", "reason_for_visit", required=False)])
    outputs = Schema([ColSpec("string", "report_id"), ColSpec("string", "code"), ColSpec("double", "probability"),
                      ColSpec("string", "evidence")])
    return ModelSignature(inputs=inputs, outputs=outputs)
