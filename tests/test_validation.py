"""Data-set validation: a good synthetic data set passes, corrupted copies fail by name and row."""

import json
import math
import re
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hiericd_core.validation import (
    ValidationError,
    check_dataset,
    split_share_bounds,
    validate_dataset,
)

MASK_LENGTH = "expect_column_pair_values_to_be_equal(column_A=mask_len, column_B=n_tokens)"
FOCUS_MASK = "expect_column_values_to_be_between(column=mask_sum, min_value=1) where is_focus == True"
IN_LABEL_SPACE = ("expect_column_values_to_be_in_set(column=codes_in_label_space, value_set=[True]) "
                  "where classifier_row == True")
ONE_SPLIT = "expect_column_values_to_be_between(column=report_splits, min_value=1, max_value=1)"
REPORT_SPLIT = "expect_column_pair_values_to_be_equal(column_A=split, column_B=report_split)"
TEXT_NOT_NULL = "expect_column_values_to_not_be_null(column=text)"
MIN_COUNT = "expect_column_values_to_be_between(column=train_count, min_value=3)"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from hiericd_core.datasets import DatasetConfig, build_dataset, write_dataset
    from hiericd_core.merge import merge_round
    from hiericd_core.merge_write import write_merge
    from hiericd_core.rounds import load_round
    from hiericd_core.synth import generate_round

    tmp = tmp_path_factory.mktemp("validation")
    generate_round(tmp / "round", 300, seed=1)
    coding_round = load_round(tmp / "round")
    write_merge(merge_round(coding_round), coding_round, tmp / "merged")
    built = build_dataset([tmp / "merged"], DatasetConfig(min_count=3, workers=1))
    return write_dataset(built, tmp / "ds")


@pytest.fixture(scope="module")
def good_report(dataset, tmp_path_factory):
    docs = tmp_path_factory.mktemp("docs") / "data_docs"
    return check_dataset(dataset, docs), docs


def corrupt(dataset, tmp_path, table_name, change):
    """Copy the data set and rewrite one Parquet table as ``change(rows)`` leaves it (same schema)."""
    folder = tmp_path / "bad"
    shutil.copytree(dataset, folder, ignore=shutil.ignore_patterns("validation.json", "data_docs"))
    table = pq.read_table(folder / table_name)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / table_name)
    return folder


def failing(folder):
    with pytest.raises(ValidationError) as caught:
        check_dataset(folder)
    report = caught.value.report
    assert not report.success
    assert str(caught.value) == report.message()
    return report, {outcome.name for outcome in report.failures}


def first(rows, test):
    return next(index for index, row in enumerate(rows) if test(row))


def test_good_dataset_passes_and_writes_docs(dataset, good_report):
    report, docs = good_report
    assert report.success, report.message()
    assert len(report.results) > 60 and all(outcome.success for outcome in report.results)
    assert {outcome.suite for outcome in report.results} == {"sentences", "reports", "label_space", "splits"}
    index = (docs / "index.html").read_text(encoding="utf-8")
    for suite in ("sentences", "reports", "label_space", "splits"):
        assert suite in index
        assert (docs / "expectations" / f"{suite}.html").is_file()
    saved = json.loads((dataset / "validation.json").read_text(encoding="utf-8"))
    assert saved["success"] is True
    assert saved["suites"]["sentences"]["failed"] == 0
    assert "passed validation" in report.message()


def test_split_share_bounds_by_hand():
    bounds = split_share_bounds(300, (0.70, 0.15, 0.15), z=3.29, floor=0.02)
    half_train = 3.29 * math.sqrt(0.7 * 0.3 / 300)  # 0.08705
    half_dev = 3.29 * math.sqrt(0.15 * 0.85 / 300)  # 0.06782
    assert bounds["train_share_min"] == pytest.approx(0.70 - half_train)
    assert bounds["train_share_max"] == pytest.approx(0.70 + half_train)
    assert bounds["test_share_min"] == pytest.approx(0.15 - half_dev)
    big = split_share_bounds(1_000_000)  # the floor wins on large data sets
    assert big["train_share_min"] == pytest.approx(0.68)
    assert big["dev_share_max"] == pytest.approx(0.17)


def test_short_attention_mask_names_the_row(dataset, tmp_path):
    holder = {}

    def shorten(rows):  # drop a trailing 0, so only the length changes
        index = first(rows, lambda r: len(r["tokens"]) > 2 and r["attention_mask"][-1] == 0)
        rows[index]["attention_mask"] = rows[index]["attention_mask"][:-1]
        holder.update(rows[index])

    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", shorten))
    assert names == {MASK_LENGTH}
    (outcome,) = report.failures
    assert outcome.unexpected_count == 1
    assert outcome.failing_rows == [{"report_id": holder["report_id"], "sentence_idx": holder["sentence_idx"]}]
    n = len(holder["tokens"])
    assert outcome.failing_values == [{"mask_len": n - 1, "n_tokens": n}]
    message = report.message()
    assert MASK_LENGTH in message and "Attention-mask length equals the token count" in message
    assert f"report_id={holder['report_id']} sentence_idx={holder['sentence_idx']}" in message


def test_report_in_two_splits(dataset, tmp_path):
    holder = {}

    def move_one_sentence(rows):
        index = first(rows, lambda r: r["split"] == "train" and r["sentence_idx"] == 1)
        rows[index]["split"] = "test"
        holder.update(rows[index])

    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", move_one_sentence))
    assert names == {ONE_SPLIT, REPORT_SPLIT}
    by_name = {outcome.name: outcome for outcome in report.failures}
    assert {row["report_id"] for row in by_name[ONE_SPLIT].failing_rows} == {holder["report_id"]}
    assert by_name[REPORT_SPLIT].failing_rows == [{"report_id": holder["report_id"], "sentence_idx": 1}]
    assert f"report_id={holder['report_id']}" in report.message()


def test_classifier_code_outside_label_space(dataset, tmp_path):
    holder = {}

    def recode(rows):
        index = first(rows, lambda r: r["classifier_row"])
        rows[index]["codes"] = ["Z99.89"]
        holder.update(rows[index])

    label_codes = json.loads((dataset / "label_space.json").read_text())["codes"]
    assert "Z99.89" not in label_codes
    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", recode))
    assert names == {IN_LABEL_SPACE}
    (outcome,) = report.failures
    assert outcome.failing_rows == [{"report_id": holder["report_id"], "sentence_idx": holder["sentence_idx"]}]
    assert "every code is in the label space" in report.message()


def test_null_text(dataset, tmp_path):
    def blank(rows):
        rows[3]["text"] = None

    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", blank))
    assert names == {TEXT_NOT_NULL}
    (outcome,) = report.failures
    assert outcome.failing_rows[0]["sentence_idx"] == 3
    assert outcome.unexpected_count == 1


def test_focus_sentence_with_empty_mask(dataset, tmp_path):
    holder = {}

    def unmask(rows):
        index = first(rows, lambda r: r["is_focus"])
        rows[index]["attention_mask"] = [0] * len(rows[index]["attention_mask"])
        holder.update(rows[index])

    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", unmask))
    assert names == {FOCUS_MASK}
    (outcome,) = report.failures
    assert outcome.failing_rows == [{"report_id": holder["report_id"], "sentence_idx": holder["sentence_idx"]}]
    assert outcome.failing_values == [{"mask_sum": 0}]
    assert "at least one masked token" in report.message()


def test_label_count_below_minimum(dataset, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(dataset, folder, ignore=shutil.ignore_patterns("validation.json", "data_docs"))
    label_space = json.loads((folder / "label_space.json").read_text())
    code = label_space["codes"][0]
    label_space["train_counts"][code] = label_space["min_count"] - 1
    (folder / "label_space.json").write_text(json.dumps(label_space))
    report, names = failing(folder)
    assert names == {MIN_COUNT}
    (outcome,) = report.failures
    assert outcome.failing_rows == [{"code": code}]
    assert f"code={code}" in report.message()
    saved = json.loads((folder / "validation.json").read_text())
    assert saved["success"] is False and saved["suites"]["label_space"]["failed"] == 1


def test_split_shares_follow_the_manifest_fractions(dataset, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(dataset, folder, ignore=shutil.ignore_patterns("validation.json", "data_docs"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["fractions"] = [0.5, 0.25, 0.25]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report, names = failing(folder)
    train = next(o for o in report.failures if "column=in_train" in o.name)
    assert train.observed == pytest.approx(0.71, abs=0.05)
    assert "observed: 0.7" in report.message()


def test_missing_column_is_named(dataset, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(dataset, folder, ignore=shutil.ignore_patterns("validation.json", "data_docs"))
    table = pq.read_table(folder / "sentences.parquet")
    pq.write_table(table.drop_columns(["multi_code"]), folder / "sentences.parquet")
    report = validate_dataset(folder)
    assert not report.success
    schema = next(o for o in report.failures if o.name.startswith("expect_table_columns_to_match_set"))
    assert schema.suite == "sentences"
    assert schema.observed["missing"] == ["multi_code"]
    assert "multi_code" in report.message()


def test_invalid_suite_file_is_named(dataset, tmp_path):
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "broken.json").write_text(json.dumps({
        "name": "broken", "meta": {"hiericd": {"table": "reports.parquet"}},
        "expectations": [{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "n_codes"}}]}))
    with pytest.raises(ValueError, match=r"broken\.json: expectation 0 \(expect_column_values_to_be_betwen\)"):
        validate_dataset(dataset, suites_dir=suites)


def share(outcomes, split):
    """The split-share outcome (its name carries the filled-in bounds)."""
    (outcome,) = [o for o in outcomes if o.name.startswith(f"expect_column_mean_to_be_between(column=in_{split},")]
    return outcome


def _moved(dataset, tmp_path, round_splits, to="dev", source="test"):
    """A copy with the ``source`` split's reports (every report for ``source=None``) moved to ``to`` in
    both tables, and the manifest's round_splits set."""
    def move(rows):
        for row in rows:
            if source is None or row["split"] == source:
                row["split"] = to

    folder = corrupt(dataset, tmp_path, "reports.parquet", move)
    table = pq.read_table(folder / "sentences.parquet")
    rows = table.to_pylist()
    move(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / "sentences.parquet")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["round_splits"] = round_splits
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_split_by_round_skips_the_proportion_check(dataset, tmp_path):
    (round_id,) = set(pq.read_table(dataset / "reports.parquet")["round_id"].to_pylist())
    # a hash split with no test report fails the test share (and dev's, now about 0.30)
    report, _ = failing(_moved(dataset, tmp_path / "hash", {}))
    assert not share(report.results, "test").success and not share(report.results, "dev").success
    assert share(report.results, "test").observed == 0.0
    # the same tables, the round placing every report: shares are what the round says, nothing fails
    report = check_dataset(_moved(dataset, tmp_path / "round", {round_id: "dev"}))
    assert share(report.results, "test").observed == 0.0
    assert "min_value=0, max_value=1" in share(report.results, "dev").name


def test_mixed_splits_check_only_the_hash_split_reports(dataset, tmp_path):
    reports = pq.read_table(dataset / "reports.parquet").to_pylist()
    n_train = sum(r["split"] == "train" for r in reports)
    n_dev = sum(r["split"] == "dev" for r in reports)

    def other_round(rows):  # the test reports come from a round that placed them in test
        for row in rows:
            if row["split"] == "test":
                row["round_id"] = "later-round"

    folder = corrupt(dataset, tmp_path, "reports.parquet", other_round)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"]["round_splits"] = {"later-round": "test"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report, _ = failing(folder)
    # among the hash-split reports (train + dev) the test share is 0 and the train share n_train / (n_train + n_dev)
    assert share(report.results, "test").observed == 0.0 and not share(report.results, "test").success
    assert share(report.results, "train").observed == pytest.approx(n_train / (n_train + n_dev))
    # the bounds use n = n_train + n_dev (split_share_bounds by hand)
    half = 3.29 * math.sqrt(0.7 * 0.3 / (n_train + n_dev))
    assert f"min_value={0.7 - half:.4g}" in share(report.results, "train").name


UNIQUE_ROW = "expect_compound_columns_to_be_unique(column_list=['report_id', 'sentence_idx'])"


def test_chunk_sizes_cut_between_reports_by_hand():
    from hiericd_core.validation_frames import chunk_sizes

    runs = {"a": 3, "b": 2, "c": 4, "d": 1}
    assert chunk_sizes(runs, 5) == [5, 5]  # a+b, c+d
    assert chunk_sizes(runs, 3) == [3, 6, 1]  # a, b+c, d
    assert chunk_sizes(runs, 100) == [10]
    assert chunk_sizes({}, 5) == [0]  # an empty table is one empty chunk


def test_chunked_validation_sums_what_whole_validation_finds(dataset, tmp_path, monkeypatch):
    """Chunks of ~400 rows (a dozen or more): the counts add up to the whole table's, and a fault far down the
    table is reported with its row, as whole-table validation reports it."""
    from hiericd_core import validation_frames

    holder = {}

    def shorten_late_row(rows):
        index = max(i for i, r in enumerate(rows) if len(r["tokens"]) > 2 and r["attention_mask"][-1] == 0)
        rows[index]["attention_mask"] = rows[index]["attention_mask"][:-1]
        holder.update(rows[index])

    folder = corrupt(dataset, tmp_path, "sentences.parquet", shorten_late_row)
    whole = validate_dataset(folder)
    n_rows = pq.ParquetFile(folder / "sentences.parquet").metadata.num_rows
    monkeypatch.setattr(validation_frames, "SENTENCE_CHUNK", 400)
    assert len(validation_frames.dataset_frames(folder, json.loads((folder / "label_space.json").read_text()))[
        "sentences.parquet"].sizes) >= n_rows // 400
    chunked = validate_dataset(folder)
    assert [(o.name, o.success, o.element_count, o.unexpected_count, o.failing_rows, o.failing_values)
            for o in chunked.results] == [(o.name, o.success, o.element_count, o.unexpected_count, o.failing_rows,
                                           o.failing_values) for o in whole.results]
    (failure,) = chunked.failures
    assert failure.name == MASK_LENGTH and failure.unexpected_count == 1
    assert failure.failing_rows == [{"report_id": holder["report_id"], "sentence_idx": holder["sentence_idx"]}]
    not_null = next(o for o in chunked.results
                    if o.suite == "sentences" and o.name == "expect_column_values_to_not_be_null(column=report_id)")
    assert not_null.element_count == n_rows


def test_a_duplicate_row_away_from_its_report_is_caught(dataset, tmp_path, monkeypatch):
    """A copy of the first row at the end scatters its report: validated whole, the duplicate is found even
    with chunks far smaller than the table."""
    from hiericd_core import validation_frames

    monkeypatch.setattr(validation_frames, "SENTENCE_CHUNK", 400)
    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", lambda rows: rows.append(rows[0])))
    assert UNIQUE_ROW in names


# ---------------------------------------------------------------- degenerate data sets

SPLIT_REPORTS = "expect_column_values_to_be_between(column=reports, min_value=1) where needs_reports == True"
SPLIT_FOCUS = "expect_column_values_to_be_between(column=focus_sentences, min_value=1) where for_training == True"
SPLIT_CLASSIFIER = ("expect_column_values_to_be_between(column=classifier_rows, min_value=1) "
                    "where for_training == True")
LABELS_PRESENT = "expect_table_row_count_to_be_between(min_value=1)"


def by_name(report):
    return {outcome.name: outcome for outcome in report.failures}


def test_a_data_set_without_classifier_rows_fails_for_train_and_dev(dataset, tmp_path):
    def no_classifier_rows(rows):
        for row in rows:
            row["classifier_row"] = False

    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", no_classifier_rows))
    assert names == {SPLIT_CLASSIFIER}
    outcome = by_name(report)[SPLIT_CLASSIFIER]
    assert outcome.failing_rows == [{"split": "train"}, {"split": "dev"}]
    assert outcome.failing_values == [{"classifier_rows": 0}, {"classifier_rows": 0}]
    assert "the ICD classifier has nothing to learn" in report.message()
    assert "split=train: classifier_rows=0" in report.message()


def test_a_data_set_without_focus_sentences_fails(dataset, tmp_path):
    def no_focus(rows):
        for row in rows:
            row.update(is_focus=False, codes=[], n_codes=0, multi_code=False, classifier_row=False,
                       attention_mask=[0] * len(row["attention_mask"]))

    report, names = failing(corrupt(dataset, tmp_path, "sentences.parquet", no_focus))
    assert names == {SPLIT_FOCUS, SPLIT_CLASSIFIER}
    assert by_name(report)[SPLIT_FOCUS].failing_values == [{"focus_sentences": 0}, {"focus_sentences": 0}]
    assert "the sentence tagger has nothing to learn" in report.message()


def test_an_empty_label_space_fails(dataset, tmp_path):
    folder = corrupt(dataset, tmp_path, "sentences.parquet",
                     lambda rows: [row.update(classifier_row=False) for row in rows])
    label_space = json.loads((folder / "label_space.json").read_text())
    label_space["codes"] = []  # what a min_count above every code's count gives
    (folder / "label_space.json").write_text(json.dumps(label_space))
    report, names = failing(folder)
    assert names == {LABELS_PRESENT, SPLIT_CLASSIFIER}
    outcome = by_name(report)[LABELS_PRESENT]
    assert outcome.suite == "label_space" and outcome.observed == 0
    assert "The label space has at least one code" in report.message()


def test_an_empty_split_fails_for_a_hash_split_only(dataset, tmp_path):
    (round_id,) = set(pq.read_table(dataset / "reports.parquet")["round_id"].to_pylist())
    # the hash made the splits: an empty test split is a fault
    report, names = failing(_moved(dataset, tmp_path / "hash", {}))
    assert SPLIT_REPORTS in names
    assert by_name(report)[SPLIT_REPORTS].failing_rows == [{"split": "test"}]
    assert "split=test: reports=0" in report.message()
    # the round placed every report (CodiEsp: train and dev rounds, no test): nothing to report
    report = check_dataset(_moved(dataset, tmp_path / "round", {round_id: "dev"}))
    (outcome,) = [o for o in report.results if o.name == SPLIT_REPORTS]
    assert outcome.success and outcome.element_count == 2  # train and dev are checked, test is not


def test_an_empty_train_split_fails_even_when_rounds_place_the_reports(dataset, tmp_path):
    (round_id,) = set(pq.read_table(dataset / "reports.parquet")["round_id"].to_pylist())
    folder = _moved(dataset, tmp_path, {round_id: "dev"}, source=None)
    report, names = failing(folder)
    assert by_name(report)[SPLIT_REPORTS].failing_rows == [{"split": "train"}]
    assert by_name(report)[SPLIT_FOCUS].failing_rows == [{"split": "train"}]


# ---------------------------------------------------------------- Data Docs

ASSET_URL = re.compile(r"""(?:src|href)\s*=\s*["']?https?://[^"'\s>]*""", re.I)
REMOTE_CSS_URL = re.compile(r"url\(\s*['\"]?https?://", re.I)


def test_data_docs_are_offline_and_byte_stable(dataset, tmp_path):
    trees = []
    for name in ("a", "b"):
        folder = tmp_path / name
        shutil.copytree(dataset, folder, ignore=shutil.ignore_patterns("validation.json", "data_docs"))
        check_dataset(folder, folder / "data_docs")
        trees.append({p.relative_to(folder).as_posix(): p.read_bytes()
                      for p in sorted(folder.rglob("*")) if p.is_file()})
    a, b = trees
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []
    pages = [name for name in a if name.endswith(".html")]
    assert "data_docs/index.html" in pages and len(pages) >= 9  # index, 4 suites, 4 validation runs
    for name in pages + [n for n in a if n.endswith(".css")]:
        text = a[name].decode("utf-8")
        remote = [url for url in ASSET_URL.findall(text) if "greatexpectations.io/" not in url]
        assert remote == [], name  # only GX's own home-page links may point outside
        assert not REMOTE_CSS_URL.search(text), name
        assert "<script" not in text, name
    # every local link of the index leads to a page of the site
    index = a["data_docs/index.html"].decode("utf-8")
    links = re.findall(r'href="([^"#]+)"', index)
    assert {f"expectations/{s}.html" for s in ("sentences", "reports", "label_space", "splits")} <= set(links)
    assert all(f"data_docs/{link}" in a for link in links)
    saved = json.loads(a["validation.json"])
    assert saved["docs_index"] == "data_docs/index.html" and "folder" not in saved
