"""Model cards of registered pipeline versions, and the evidence pieces they show."""

import json

import pytest
from test_registry import champion_store, registry_models, store_client

from hiericd_core import registry
from hiericd_core.modelcard import highlight, render_card, write_model_card


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        catalog, run_id = champion_store(tmp_path_factory)
        mp.setenv("HIERICD_HOME", str(catalog.root))
        yield catalog, run_id, registry_models(tmp_path_factory)


def test_model_card_shows_data_metrics_beside_baselines_evidence_and_limits(champion, tmp_path):
    catalog, run_id, models = champion
    info = write_model_card("champion", tmp_path, catalog=catalog)
    assert info["run_id"] == run_id and info["version"] == 1
    md = (tmp_path / "model_card.md").read_text()
    html = (tmp_path / "model_card.html").read_text()
    manifest = json.loads((models["dataset"] / "manifest.json").read_text())
    evaluation = json.loads((models["good"] / "evaluation-test.json").read_text())
    figures = json.loads(models["agreement"].read_text())
    kappas = [p["kappa"] for p in figures["units"]["report_code"]["pairs"]]
    assert md.startswith("# Model card: hiericd-pipeline version 1")
    assert "aliases: challenger, champion" in md
    assert f"Data set `{manifest['version']}`" in md and f"label space: {manifest['label_space_size']} codes" in md
    assert f"| {figures['round_id']} | {sum(kappas) / len(kappas):.3f} |" in md
    for name, scores in evaluation["end_to_end"].items():
        row = f"| {name} |" if not name.startswith("hiericd") else f"| **{name}** |"
        assert f"{row} {scores['micro']['precision']:.3f} | {scores['micro']['recall']:.3f} | " \
               f"{scores['micro']['f1']:.3f} |" in md, name
    assert f"focus F1 {evaluation['tagger']['focus']['f1']:.3f}" in md
    assert "No ablation was run" in md and "## Intended use" in md and "## Limits" in md
    # evidence: the first test report by id, its codes and attention tokens, as the run logged them
    bundle = registry.card_bundle(run_id, catalog=catalog)
    examples = bundle["examples"]
    assert examples and examples[0]["report_id"] == min(e["report_id"] for e in examples)
    first = examples[0]
    assert f"### {first['report_id']}" in md and f"Coders' codes: {', '.join(first['gold'])}" in md
    for code in first["codes"]:
        assert f"**{code['code']}**" in md
        assert all(f"`{t['token']}`" in md for t in code["top_tokens"])
    # the HTML has the same rows, the figures inline and the attention marks
    assert html.count("data:image/png;base64,") == 2 and "<mark style=" in html
    assert f"<td>{figures['round_id']}</td>" in html
    # both files are logged with the run
    logged = {a.path for a in store_client(catalog).list_artifacts(run_id, "model_card")}
    assert logged == {"model_card/model_card.html", "model_card/model_card.md"}


def test_versions_aliases_and_run_ids_name_the_same_card(champion, tmp_path):
    catalog, run_id, _ = champion
    for key in ("1", "v1", 1, run_id, "challenger"):
        assert write_model_card(key, tmp_path / str(key), catalog=catalog, log=False)["run_id"] == run_id
    with pytest.raises(registry.RegistryError, match="no hiericd-pipeline version or run '9'"):
        write_model_card("9", tmp_path / "nine", catalog=catalog, log=False)


def test_ablation_beside_the_model_appears_in_the_card(champion):
    catalog, run_id, _ = champion
    bundle = registry.card_bundle(run_id, catalog=catalog)
    # the shape hiericd_core.ablation writes
    bundle["ablation"] = {"split": "test", "table": "| variant | micro_f1 |\n| --- | ---: |\n| pooling | 0.123 |\n",
                          "rows": [{"variant": "pooling", "trained_as": "pooling", "micro_f1": 0.123},
                                   {"variant": "supervised_r4v", "trained_as": "supervised_r4v", "micro_f1": 0.456}]}
    html, md = render_card(bundle)
    assert "No ablation" not in md and "| pooling | 0.123 |" in md
    assert '<tr class="ours"><td>supervised_r4v</td>' in html and "<td>0.456</td>" in html
    bundle["ablation"] = {"note": "another shape"}
    assert '"note": "another shape"' in render_card(bundle)[1]
    # HTML is escaped, Markdown is not
    bundle["examples"][0]["reason_for_visit"] = "a < b & c"
    html, md = render_card(bundle)
    assert "a &lt; b &amp; c" in html


def test_highlight_cuts_the_sentence_at_the_evidence_tokens():
    sentence, start = "Colon, polypectomy: Tubular adenoma.", 17
    tokens = [{"token": "adenoma", "weight": 0.44, "start": 45, "end": 52},
              {"token": "Tubular", "weight": 0.45, "start": 37, "end": 44}]
    pieces = highlight(sentence, start, tokens)
    assert "".join(p["text"] for p in pieces) == sentence
    assert [(p["text"], p["weight"]) for p in pieces if p["weight"] is not None] == [("Tubular", 0.45),
                                                                                    ("adenoma", 0.44)]
    assert highlight("abc", 0, []) == [{"text": "abc", "weight": None}]


def test_attention_shading_keeps_dark_text_readable_and_codes_carry_their_titles():
    from hiericd_core.modelcard import _environment

    example = {"report_id": "R1", "reason_for_visit": "", "gold": ["C44.01"], "codes": [{
        "code": "C44.01", "correct": True, "probability": 0.9, "sentence_idx": 0, "sentence_start": 0,
        "sentence_end": 20, "pieces": [{"text": "Basal", "weight": 0.3}, {"text": " cell ", "weight": None},
                                       {"text": "carcinoma", "weight": 0.15}]}]}
    html = _environment().get_template("model_card.evidence.html.j2").render(examples=[example], standalone=True)
    # the heaviest token gets the deepest shade, still at most 0.6 opaque, and the text on it stays dark
    assert 'background: rgba(255, 176, 0, 0.60)" title="attention 0.300">Basal' in html
    assert 'background: rgba(255, 176, 0, 0.34)" title="attention 0.150">carcinoma' in html
    assert "color: #111" in html and "color: #fff" not in html
    assert html.count("Basal cell carcinoma of skin of lip") == 2  # the coders' code and the predicted one
