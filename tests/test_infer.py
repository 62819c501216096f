"""Inference: raw reports, a folder with bad files, evidence offsets, a data set split."""

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_train import TINY, small_dataset

from hiericd_core.baselines import PhraseDictionary
from hiericd_core.infer import InferenceConfig, Predictor, ReportPrediction
from hiericd_core.infer_dataset import add_phrase_memory, predict_dataset
from hiericd_core.train import train_model


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    dataset = small_dataset(tmp_path_factory)
    out = tmp_path_factory.mktemp("infer-model")
    train_model(dataset, out, TINY)
    return out, dataset


@pytest.fixture(scope="module")
def reports(model) -> list[dict]:
    _, dataset = model
    table = pq.read_table(dataset / "reports.parquet", columns=["report_id", "split", "text", "reason_for_visit"])
    return [r for r in table.to_pylist() if r["split"] == "test"][:6]


def check_evidence(result: ReportPrediction, text: str) -> None:
    assert result.codes, result
    for code in result.codes:
        assert text[code.sentence_start:code.sentence_end] == code.sentence_text
        assert 0 < code.probability <= 1
        assert 1 <= len(code.top_tokens) <= 5
        weights = [t.weight for t in code.top_tokens]
        assert weights == sorted(weights, reverse=True)
        for token in code.top_tokens:
            assert text[token.start:token.end] == token.token
            assert code.sentence_start <= token.start < token.end <= code.sentence_end


def test_predict_reports_with_evidence_and_bad_input(model, reports):
    predictor = Predictor.load(model[0], threads=1)
    batch = [{"report_id": r["report_id"], "text": r["text"], "reason_for_visit": r["reason_for_visit"]}
             for r in reports]
    batch.insert(2, {"report_id": "blank", "text": "  \n "})
    batch.append({"report_id": "none", "text": None})
    results = predictor.predict([*batch, "not a dict"], batch_size=4)
    assert [r.report_id for r in results] == [b["report_id"] for b in batch] + [f"report-{len(batch) + 1}"]
    assert results[2].problems == ["empty text: nothing to code"] and not results[2].codes
    assert "no text given" in results[-2].problems[0] and "not a report" in results[-1].problems[0]
    for r, b in zip(results, batch, strict=False):
        if r.problems:
            continue
        check_evidence(r, b["text"])
        assert r.focus_sentences and all(0 <= i < r.n_sentences for i in r.focus_sentences)
        assert all(code.sentence_idx in r.focus_sentences for code in r.codes)
        assert len({c.code for c in r.codes}) == len(r.codes)
    # one report alone gets the same answer as in a batch
    alone = predictor.predict([batch[0]])[0]
    assert [(c.code, c.sentence_idx) for c in alone.codes] == [(c.code, c.sentence_idx) for c in results[0].codes]
    assert alone.codes[0].probability == pytest.approx(results[0].codes[0].probability, abs=1e-5)


def _report_folder(tmp_path, reports):
    """``tmp_path/in`` holding the first three reports' ``.txt`` files; returns ``(folder, those reports)``."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = reports[:3]
    for r in good:
        (folder / f"{r['report_id']}.txt").write_text(r["text"], encoding="utf-8")
    return folder, good


def test_predict_folder_reports_bad_files_and_codes_the_rest(model, reports, tmp_path):
    predictor = Predictor.load(model[0], threads=1)
    folder, good = _report_folder(tmp_path, reports)
    (folder / f"{good[0]['report_id']}.ann").write_text("T1\tC50.9 0 5\tbroken", encoding="utf-8")  # ignored
    (folder / "empty.txt").write_bytes(b"")
    (folder / "latin1.txt").write_bytes("Carcinoma de células basales.".encode("latin-1"))
    (folder / "metadata.csv").write_text(
        "report_id,reason_for_visit\n" + "".join(f"{r['report_id']},\"{r['reason_for_visit']}\"\n" for r in good),
        encoding="utf-8")
    summary = predictor.predict_folder(folder, tmp_path / "out" / "predictions.tsv", tmp_path / "out" / "ev.jsonl")
    assert summary["files"] == 5 and summary["coded"] == 3
    problems = {p["file"]: p["problem"] for p in summary["problems"]}
    assert set(problems) == {"empty.txt", "latin1.txt"}
    assert "empty" in problems["empty.txt"] and "not UTF-8" in problems["latin1.txt"]
    lines = (tmp_path / "out" / "predictions.tsv").read_text(encoding="utf-8").splitlines()
    assert lines == sorted(lines) and len(lines) == summary["codes"] > 0
    assert {line.split("\t")[0] for line in lines} == {r["report_id"] for r in good}
    assert all(len(line.split("\t")) == 2 for line in lines)
    evidence = [json.loads(x) for x in (tmp_path / "out" / "ev.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(e["report_id"] for e in evidence) == sorted([r["report_id"] for r in good] + ["empty"])
    texts = {r["report_id"]: r["text"] for r in good}
    for e in evidence:
        for code in e["codes"]:
            for token, _, start, end in code["top_tokens"]:
                assert texts[e["report_id"]][start:end] == token
    # the same as predicting the reports directly, reasons for visit included
    direct = predictor.predict([{"report_id": r["report_id"], "text": r["text"],
                                 "reason_for_visit": r["reason_for_visit"]} for r in good])
    assert sorted(f"{r.report_id}\t{c.code}" for r in direct for c in r.codes) == lines


def test_predict_folder_reads_metadata_strictly_a_stray_quote_costs_its_own_row(model, reports, tmp_path):
    predictor = Predictor.load(model[0], threads=1)
    folder, good = _report_folder(tmp_path, reports)
    rows = [f"{r['report_id']},\"{r['reason_for_visit']}\"\n" for r in good]
    rows[0] = f"{good[0]['report_id']},\"{good[0]['reason_for_visit']}\n"  # the quote never closes
    (folder / "metadata.csv").write_text("report_id,reason_for_visit\n" + "".join(rows), encoding="utf-8")
    summary = predictor.predict_folder(folder, tmp_path / "p.tsv")
    (problem,) = summary["problems"]
    assert problem["file"] == "metadata.csv" and problem["problem"].startswith("line 2: malformed CSV")
    assert problem["problem"].endswith("row left out")
    # the rows after it keep their reasons: the same codes as predicting with exactly those reasons
    direct = predictor.predict([{"report_id": r["report_id"], "text": r["text"],
                                 "reason_for_visit": "" if i == 0 else r["reason_for_visit"]}
                                for i, r in enumerate(good)])
    assert sorted(f"{r.report_id}\t{c.code}" for r in direct for c in r.codes) == \
        (tmp_path / "p.tsv").read_text(encoding="utf-8").splitlines()


def test_worker_processes_give_the_same_results(model, reports, monkeypatch, tmp_path):
    import shutil
    from dataclasses import asdict

    import hiericd_core.infer as infer

    monkeypatch.setattr(infer, "WORKER_CHUNK", 4)  # chunks are cut here, in the calling process
    batch = [{"report_id": r["report_id"], "text": r["text"], "reason_for_visit": r["reason_for_visit"]}
             for r in reports] * 2
    batch.insert(5, {"text": "   "})  # named by its position in the whole input, whatever chunk it lands in
    alone = Predictor.load(model[0], threads=1).predict(batch)
    with Predictor.load(model[0], threads=2, workers=2) as predictor:
        assert predictor.workers == 2
        together = predictor.predict(batch)
    assert predictor.workers == 1  # closed
    assert [r.to_json() for r in together] == [r.to_json() for r in alone]
    assert alone[5].report_id == "report-6" and alone[5].problems
    assert all(r.to_json() == asdict(r) for r in alone)
    # a worker that cannot load the model: an error naming the folder, not a hang
    broken = tmp_path / "broken"
    shutil.copytree(model[0], broken)
    predictor = Predictor.load(broken, threads=1)
    (broken / "tagger.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="inference workers did not start"):
        predictor.start_workers(2)
    assert predictor.workers == 1 and predictor.predict(batch[:1])[0].codes  # still codes in this process


def test_predict_dataset_gives_what_the_evaluation_needs(model):
    model_dir, dataset = model
    result = predict_dataset(model_dir, dataset, split="test", threads=1)
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert len(result.codes) == len(result.gold) == manifest["splits"]["test"]["reports"]
    assert all(codes for codes in result.codes.values())  # the most probable sentence at least
    assert len(result.sentences["report_id"]) == manifest["splits"]["test"]["sentences"]
    assert sum(result.sentences["is_focus"]) == manifest["splits"]["test"]["focus_sentences"]
    assert all(len(v) == len(result.sentences["report_id"]) for v in result.sentences.values())
    rows = result.classifier_rows
    assert len(rows["code"]) == manifest["splits"]["test"]["classifier_rows"]
    for weights, mask in zip(rows["attention"], rows["attention_mask"], strict=True):
        assert len(weights) == len(mask) and sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert set(rows["predicted"]) <= set(result.labels) and result.variant == "supervised_r4v"


# ---------------------------------------------------------------- beyond the paper: the phrase memory


@pytest.fixture(scope="module")
def memory_model(model, tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the model folder with a phrase memory from the training reports' sentence masks."""
    import shutil

    model_dir, dataset = model
    out = tmp_path_factory.mktemp("memory-model") / "m"
    shutil.copytree(model_dir, out)
    info = add_phrase_memory(out, dataset, InferenceConfig(phrase_memory="report"))
    assert info["phrases"] > 10 and info["config"]["phrase_memory"] == "report"
    return out, dataset


def _sentence_texts(dataset, split="test") -> dict[str, list[str]]:
    s = pq.read_table(dataset / "sentences.parquet", filters=[("split", "=", split)],
                      columns=["report_id", "sentence_idx", "text"]).to_pylist()
    out: dict[str, list[str]] = {}
    for row in sorted(s, key=lambda r: (r["report_id"], r["sentence_idx"])):
        out.setdefault(row["report_id"], []).append(row["text"])
    return out


def test_phrase_memory_codes_join_the_classifier_codes(memory_model):
    model_dir, dataset = memory_model
    memory = PhraseDictionary.load(model_dir)
    assert memory.fold and memory.reliability  # folded and calibrated by add_phrase_memory
    texts = _sentence_texts(dataset)
    paper = predict_dataset(model_dir, dataset, "test", threads=1, config=InferenceConfig())
    # inference.json is the folder's default: the phrase memory over every sentence
    union = predict_dataset(model_dir, dataset, "test", threads=1)
    only_phrases = predict_dataset(model_dir, dataset, "test", threads=1,
                                   config=InferenceConfig(phrase_memory="report", min_probability=1.01))
    for rid, sentences in texts.items():
        found = {code for text in sentences for *_, code in memory.find(text)}
        assert union.codes[rid] == paper.codes[rid] | found, rid
        # no classifier code passes the cut: the phrase codes, or one classifier code when none is found
        if found:
            assert only_phrases.codes[rid] == found, rid
        else:
            assert len(only_phrases.codes[rid]) == 1 and only_phrases.codes[rid] <= set(paper.labels), rid
    assert any(union.codes[rid] != paper.codes[rid] for rid in texts)  # the memory adds codes


def test_phrase_memory_rules_by_hand(memory_model):
    model_dir, dataset = memory_model
    predictor = Predictor.load(model_dir, threads=1)
    assert predictor.config == InferenceConfig(phrase_memory="report")
    texts = {r["report_id"]: r["text"] for r in pq.read_table(
        dataset / "reports.parquet", filters=[("split", "=", "test")], columns=["report_id", "text"]).to_pylist()}
    reports = [{"report_id": rid, "text": text} for rid, text in sorted(texts.items())[:25]]
    rules = {
        "focus": InferenceConfig(phrase_memory="focus"),
        "unmatched": InferenceConfig(phrase_memory="report", classifier_where="unmatched"),
        "category": InferenceConfig(phrase_memory="report", same_category=True, max_codes_per_sentence=3,
                                    extra_probability=0.0),
        "pruned": InferenceConfig(phrase_memory="report", phrase_min_reliability=0.9),
        "focus_below": InferenceConfig(phrase_memory="report", phrase_focus_below=0.7),
    }
    for name, config in rules.items():
        p = Predictor.load(model_dir, threads=1, config=config)
        for result in p.predict(reports):
            text = texts[result.report_id]
            check_evidence(result, text)
            phrase_at: dict[int, set[str]] = {}
            sentences = p.segmenter().segment(text)
            for i, s in enumerate(sentences):
                phrase_at[i] = {code for *_, code in p.phrases.find(s.text)}
            for code in result.codes:
                if code.source == "phrase":
                    assert code.code in phrase_at[code.sentence_idx]
                    if name == "focus":
                        assert code.sentence_idx in result.focus_sentences
                    if name == "pruned":
                        assert code.probability >= 0.9
                    if name == "focus_below" and code.sentence_idx not in result.focus_sentences:
                        assert code.probability >= 0.7
                else:
                    assert code.sentence_idx in result.focus_sentences
                    if name == "unmatched" and len(result.codes) > 1:
                        assert not phrase_at[code.sentence_idx]
                    if name == "category":
                        same = {c for c in phrase_at[code.sentence_idx] if c[:3] == code.code[:3]}
                        assert not same or code.code in same
    with pytest.raises(ValueError, match="phrase_memory 'sometimes'"):
        InferenceConfig(phrase_memory="sometimes")
    with pytest.raises(ValueError, match="unknown inference setting"):
        InferenceConfig.from_dict({"phrase_memroy": "report"})


def test_a_phrase_memory_needs_its_phrases(model, tmp_path):
    model_dir, _ = model
    with pytest.raises(FileNotFoundError, match="no phrases.json"):
        Predictor.load(model_dir, config=InferenceConfig(phrase_memory="focus"))


# ---------------------------------------------------------------- hiericd predict: bad input, warnings


def _cli(*args):
    from typer.testing import CliRunner

    from hiericd_core.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


SPANISH = ("Paciente de 45 años que acude por dolor abdominal en la fosa ilíaca derecha. Se realiza una ecografía "
           "que muestra los signos de una apendicitis aguda y se indica la cirugía por el servicio de urgencias.\n")


def test_predict_warns_about_another_language_unknown_words_and_missing_reasons(model, reports, tmp_path):
    model_dir, _ = model
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "es.txt").write_text(SPANISH, encoding="utf-8")
    (folder / "en.txt").write_text(reports[0]["text"], encoding="utf-8")
    code, output = _cli("predict", model_dir, folder, "--out", tmp_path / "p.tsv", "--evidence", tmp_path / "e.jsonl")
    assert code == 0
    assert "warning: 1 of 2 report(s) read as another language than the model's (English (en)), e.g. es" in output
    assert "warning: no metadata.csv: the model (supervised_r4v) was trained with reasons for visit" in output
    evidence = {e["report_id"]: e for e in map(json.loads, (tmp_path / "e.jsonl").read_text().splitlines())}
    assert evidence["es"]["text_checks"]["language"] == "es" and evidence["en"]["text_checks"]["language"] == "en"
    assert any("reads as Spanish (es)" in w for w in evidence["es"]["warnings"])
    assert any("of the words are unknown to the model" in w for w in evidence["es"]["warnings"])
    assert evidence["en"]["warnings"] == []
    checks = evidence["es"]["text_checks"]
    assert checks["unknown_words"] / checks["words"] > 0.5
    # mostly unknown words over the whole input: one line with the rate
    (folder / "en.txt").unlink()
    code, output = _cli("predict", model_dir, folder, "--out", tmp_path / "p.tsv")
    assert code == 0 and re.search(r"warning: \d+% of the words are unknown to the model \(over 50%\)", output)
    # a metadata.csv without the column says so
    (folder / "metadata.csv").write_text("report_id,age\nes,45\n", encoding="utf-8")
    code, output = _cli("predict", model_dir, folder, "--out", tmp_path / "p.tsv")
    assert "warning: no reason_for_visit in metadata.csv" in output


def test_predict_reads_a_round_folder_and_checks_its_language(model, tmp_path):
    import shutil

    model_dir, dataset = model
    round_dir = tmp_path / "round"
    shutil.copytree(dataset.parent / "round", round_dir, ignore=shutil.ignore_patterns("coders", "senior", "truth"))
    code, output = _cli("predict", model_dir, round_dir, "--out", tmp_path / "p.tsv", "--scores")
    assert code == 0, output
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    n = len(list((round_dir / "texts").glob("*.txt")))
    assert f"{n} report(s) coded" in output and "warning" not in output  # its metadata.csv gives the reasons
    assert lines == sorted(lines) and {len(line.split("\t")) for line in lines} == {3}
    assert all(0 < float(line.split("\t")[2]) <= 1 for line in lines)
    toml = round_dir / "round.toml"
    toml.write_text(toml.read_text().replace('language = "en"', 'language = "es"'))
    code, output = _cli("predict", model_dir, round_dir, "--out", tmp_path / "p.tsv")
    assert code == 0 and "warning: the round's language is Spanish (es) (round.toml), the model was trained on " \
                          "English (en) reports" in output


def test_predict_skips_a_txt_folder_and_codes_a_report_over_spacys_limit(model, reports, tmp_path):
    model_dir, _ = model
    folder = tmp_path / "in"
    (folder / "folder.txt").mkdir(parents=True)
    long = reports[0]["text"] + "\n" + "No further findings.\n" * 60_000
    assert len(long) > 1_000_000
    (folder / "long.txt").write_text(long, encoding="utf-8")
    (folder / "tab\there.txt").write_text(reports[1]["text"], encoding="utf-8")  # would break predictions.tsv
    code, output = _cli("predict", model_dir, folder, "--out", tmp_path / "p.tsv", "--evidence", tmp_path / "e.jsonl")
    assert code == 0 and "1 report(s) coded" in output
    assert "skipped folder.txt: a folder, not a report file" in output
    assert "here.txt: a tab or line break in the file name; rename it" in output
    assert {line.split("\t")[0] for line in (tmp_path / "p.tsv").read_text().splitlines()} == {"long"}
    evidence = json.loads((tmp_path / "e.jsonl").read_text())
    assert evidence["report_id"] == "long" and evidence["codes"]
    for c in evidence["codes"]:
        assert long[c["sentence_start"]:c["sentence_end"]] == c["sentence_text"]


def test_a_truncated_checkpoint_is_named_by_predict(model, reports, tmp_path):
    import shutil

    model_dir, _ = model
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    data = (broken / "classifier.pt").read_bytes()
    (broken / "classifier.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(reports[0]["text"], encoding="utf-8")
    code, output = _cli("predict", broken, tmp_path / "in", "--out", tmp_path / "p.tsv")
    assert code == 2
    assert f"error: {broken / 'classifier.pt'}: not a readable model file (" in output
    assert output.endswith("retrain or copy it again")
    (broken / "classifier.pt").write_bytes(data)
    (broken / "vocab.json").write_text("{not json", encoding="utf-8")
    code, output = _cli("predict", broken, tmp_path / "in", "--out", tmp_path / "p.tsv")
    assert code == 2 and f"error: {broken / 'vocab.json'}: not a readable model file (" in output


def test_one_report_the_segmenter_chokes_on_does_not_sink_the_batch(model, reports, monkeypatch):
    predictor = Predictor.load(model[0], threads=1)
    segmenter = predictor.segmenter()
    real = segmenter.segment

    def choke(text):
        if text.startswith("CHOKE"):
            raise ValueError("boom")
        return real(text)

    monkeypatch.setattr(segmenter, "segment", choke)
    results = predictor.predict([{"report_id": "bad", "text": "CHOKE on this"},
                                 {"report_id": "good", "text": reports[0]["text"]}])
    assert results[0].problems == ["the text could not be split into sentences (ValueError); nothing coded"]
    assert results[1].codes and not results[1].problems


# ---------------------------------------------------------------- the served pipeline (in this process)


def _served(model_dir):
    from hiericd_core.pyfunc import HiericdPipeline

    pipeline = HiericdPipeline()
    pipeline.predictor = Predictor.load(model_dir, threads=1)
    return pipeline


def test_an_oversized_report_gets_a_problem_row_and_the_others_their_codes(model, reports):
    import pandas as pd

    from hiericd_core.pyfunc import MAX_REPORT_CHARS

    pipeline = _served(model[0])
    frame = pd.DataFrame([{"report_id": "big", "text": "Fever.\n" * (MAX_REPORT_CHARS // 7 + 1)},
                          {"report_id": "ok", "text": reports[0]["text"]},
                          {"report_id": None, "text": reports[1]["text"]}])
    rows = pipeline.predict(None, frame)
    assert list(rows["report_id"].drop_duplicates()) == ["big", "ok", "report-3"]
    big = rows[rows["report_id"] == "big"].to_dict("records")
    assert len(big) == 1 and big[0]["code"] == "" and big[0]["probability"] == 0.0
    assert "too long to serve" in json.loads(big[0]["evidence"])["problems"][0]
    assert (rows[rows["report_id"] == "ok"]["code"] != "").all()


def test_a_failing_model_gives_problem_rows_without_traceback_or_paths(model, reports, monkeypatch):
    import pandas as pd

    pipeline = _served(model[0])
    real = pipeline.predictor.predict

    def fail_on_bad(batch, *args, **kwargs):
        if any(r["report_id"] == "bad" for r in batch):
            raise RuntimeError(f"shape mismatch in {model[0]}/classifier.pt")
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(pipeline.predictor, "predict", fail_on_bad)
    rows = pipeline.predict(None, pd.DataFrame([{"report_id": "bad", "text": "x y z"},
                                                {"report_id": "ok", "text": reports[0]["text"]}]))
    bad = rows[rows["report_id"] == "bad"].to_dict("records")
    assert json.loads(bad[0]["evidence"]) == {
        "problems": ["could not be coded (internal error RuntimeError; see the server log)"]}
    assert str(model[0]) not in rows.to_json() and "Traceback" not in rows.to_json()
    assert (rows[rows["report_id"] == "ok"]["code"] != "").all()


# ---------------------------------------------------------------- ranked codes


def _ranking_scores(predictor: Predictor, text: str, reason: str) -> dict[str, float]:
    """The ranking rule's candidate score, worked out apart: max over sentences of p(focus) · p(code)."""
    from hiericd_core.infer import SegmentedReport

    sentences = predictor.segmenter().segment(text)
    r4v = [t.text for s in predictor.segmenter().segment(reason) for t in s.tokens] if reason else []
    (focus,) = predictor.focus_probabilities([SegmentedReport("x", sentences, r4v)])
    probs, _ = predictor.classify([[t.text for t in s.tokens] for s in sentences], [r4v] * len(sentences))
    return {code: max(float(f) * float(p[k]) for f, p in zip(focus, probs, strict=True))
            for k, code in enumerate(predictor.labels)}


@pytest.mark.parametrize("which", ["paper", "memory"])
def test_ranking_puts_the_predicted_codes_first_then_candidates_by_focus_weighted_probability(
        which, model, memory_model, reports):
    model_dir = model[0] if which == "paper" else memory_model[0]
    predictor = Predictor.load(model_dir, threads=1)
    batch = [{"report_id": r["report_id"], "text": r["text"], "reason_for_visit": r["reason_for_visit"]}
             for r in reports]
    plain = predictor.predict(batch)
    depth = len(predictor.labels) // 2
    ranked = predictor.predict(batch, ranked=depth)
    for before, after, report in zip(plain, ranked, batch, strict=True):
        assert [r.to_json()["codes"] for r in (before, after)] == [before.to_json()["codes"]] * 2  # codes unchanged
        assert not before.ranking and 0 < len(after.ranking) <= depth
        n = len(after.codes)
        assert [(r.code, r.score, r.predicted) for r in after.ranking[:n]] == \
            [(c.code, c.probability, True) for c in after.codes][:depth]
        candidates = after.ranking[n:]
        assert all(not r.predicted for r in candidates)
        assert len({r.code for r in after.ranking}) == len(after.ranking)
        expected = _ranking_scores(predictor, report["text"], report["reason_for_visit"])
        for r in candidates:
            assert r.score == pytest.approx(expected[r.code], abs=1e-5)
        assert [r.score for r in candidates] == sorted((r.score for r in candidates), reverse=True)
        # the candidates are the best of the codes not predicted
        left = sorted((s for c, s in expected.items() if c not in {r.code for r in after.ranking}), reverse=True)
        if left and candidates:
            assert candidates[-1].score >= left[0] - 1e-5
    # a depth below the number of predicted codes keeps the best predicted ones
    (one,) = predictor.predict(batch[:1], ranked=1)
    assert [(r.code, r.predicted) for r in one.ranking] == [(one.codes[0].code, True)]


def test_predict_folder_writes_the_ranking_in_rank_order(model, reports, tmp_path):
    predictor = Predictor.load(model[0], threads=1)
    folder = tmp_path / "in"
    folder.mkdir()
    for r in reports[:3]:
        (folder / f"{r['report_id']}.txt").write_text(r["text"], encoding="utf-8")
    summary = predictor.predict_folder(folder, tmp_path / "r.tsv", ranked=4, scores=True)
    lines = [line.split("\t") for line in (tmp_path / "r.tsv").read_text().splitlines()]
    direct = predictor.predict([{"report_id": r["report_id"], "text": r["text"]} for r in reports[:3]], ranked=4)
    expected = [[r.report_id, c.code, f"{c.score:.6f}"] for r in sorted(direct, key=lambda r: r.report_id)
                for c in r.ranking]
    assert lines == expected and summary["codes"] == len(lines)
    assert all(sum(1 for row in lines if row[0] == r.report_id) == 4 for r in direct)  # label space > 4 codes
    predictor.predict_folder(folder, tmp_path / "r2.tsv", ranked=4)
    assert (tmp_path / "r2.tsv").read_text().splitlines() == ["\t".join(row[:2]) for row in expected]


def test_predict_dataset_ranks_every_code_and_keeps_the_codes(model):
    model_dir, dataset = model
    with_ranking = predict_dataset(model_dir, dataset, split="test", threads=1)
    without = predict_dataset(model_dir, dataset, split="test", threads=1, ranked=False)
    assert with_ranking.codes == without.codes and not without.ranked
    assert set(with_ranking.ranked) == set(with_ranking.codes)
    for rid, ranking in with_ranking.ranked.items():
        codes = with_ranking.codes[rid]
        assert set(ranking[: len(codes)]) == codes and set(ranking) == set(with_ranking.labels) | codes
