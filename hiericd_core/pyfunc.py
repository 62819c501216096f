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
``end``). A report that gets no code (no text, no words) still gets one row,
with an empty code, probability 0 and ``{"problems": [...]}`` as evidence, so
every report sent comes back.

Serving needs ``hiericd_core`` importable (``mlflow models serve --env-manager
local`` from the project's venv): the wrapper is pickled by reference to this
module, and the model folder's checkpoints are plain ``torch.save`` dicts.
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd

COLUMNS = ("report_id", "code", "probability", "evidence")


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
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        reports = [{"report_id": "" if pd.isna(r.get("report_id")) else str(r.get("report_id")),
                    "text": r.get("text") if isinstance(r.get("text"), str) else None,
                    "reason_for_visit": r.get("reason_for_visit") if isinstance(r.get("reason_for_visit"), str)
                    else ""}
                   for r in frame.to_dict("records")]
        return pd.DataFrame(prediction_rows(self.predictor.predict(reports)), columns=list(COLUMNS))


def signature():
    """Input and output schema of the pipeline model (``reason_for_visit`` optional)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string", "report_id"), ColSpec("string", "text"),
                     ColSpec("string", "reason_for_visit", required=False)])
    outputs = Schema([ColSpec("string", "report_id"), ColSpec("string", "code"), ColSpec("double", "probability"),
                      ColSpec("string", "evidence")])
    return ModelSignature(inputs=inputs, outputs=outputs)
