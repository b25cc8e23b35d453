"""Report files: rows/columns of json, csv, md; a real PNG; predictions.jsonl round trip and re-scoring."""

from __future__ import annotations

import csv
import json

import pytest

from mgpt_eval import (
    EvalSettings,
    evaluate_predictions,
    read_predictions,
    score_predictions_file,
    write_predictions,
    write_report,
)


def row(name, epoch, b1, chair_i=0.1, ci=True):
    scores = {
        "BLEU-1": b1,
        "BLEU-2": b1 * 0.8,
        "BLEU-3": b1 * 0.6,
        "BLEU-4": b1 * 0.5,
        "METEOR": 0.2,
        "ROUGE-L": 0.5,
        "CIDEr": 0.9,
        "CHAIRi": chair_i,
        "CHAIRs": 0.3,
    }
    return {
        "name": name,
        "epoch": epoch,
        "n_images": 20,
        "scores": scores,
        "tokenizer": "ptb",
        "ci": {"BLEU-1": {"low": b1 - 0.02, "high": b1 + 0.04}} if ci else {},
        "unavailable": {"SPICE": "no jars"},
    }


def test_write_report_files(tmp_path):
    rows = [
        row("epoch_1", 1, 0.39),
        row("baseline", -1, 0.3175, chair_i=float("nan")),
        row("epoch_0", 0, 0.35),
    ]
    paths = write_report(
        tmp_path / "eval", rows, meta={"split": "test", "decoding": {"num_beams": 1}, "confidence": 0.95}
    )
    assert {p.name for p in paths.values()} == {"results.json", "results.csv", "results.md", "metrics.png"}

    data = json.loads(paths["results.json"].read_text())  # strict JSON: NaN became null
    assert [r["name"] for r in data["rows"]] == ["baseline", "epoch_0", "epoch_1"]
    assert data["rows"][0]["scores"]["CHAIRi"] is None
    assert data["rows"][0]["scores"]["BLEU-1"] == 0.3175  # raw scale in files
    assert data["meta"]["split"] == "test" and data["meta"]["decoding"] == {"num_beams": 1}
    assert data["meta"]["metric_availability"]["SPICE"] == "no jars"
    assert data["meta"]["metric_availability"]["CIDEr"] == "available"

    with paths["results.csv"].open() as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == ["baseline", "epoch_0", "epoch_1"]
    assert table[0]["epoch"] == "-1" and float(table[0]["BLEU-1"]) == 0.3175
    assert float(table[2]["BLEU-1_ci_high"]) == pytest.approx(0.43)
    assert table[0]["CHAIRi"] == "" and table[0]["METEOR_ci_low"] == ""
    assert {"SPICE", "CHAIRs", "CIDEr_ci_low"} <= set(table[0])

    md = paths["results.md"].read_text().splitlines()
    header = next(line for line in md if line.startswith("| checkpoint"))
    assert header == (
        "| checkpoint | epoch | B1 | B2 | B3 | B4 | METEOR | ROUGE-L | CIDEr | SPICE | CHAIRi | CHAIRs |"
    )
    body = [line for line in md if line.startswith("| ") and "---" not in line and line != header]
    assert len(body) == 3
    assert body[0].startswith("| baseline | pretrained | 31.75 ± 3.00 |")  # ×100, ± half-width
    assert "| 90.00 | n/a | n/a | 30.00 |" in body[0]  # CIDEr, SPICE n/a, CHAIRi NaN → n/a
    assert any("SPICE n/a: no jars" in line for line in md)

    png = paths["metrics.png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_write_report_raw_scale_table(tmp_path):
    paths = write_report(tmp_path, [row("baseline", None, 0.3175, ci=False)], meta={}, scale_100=False)
    md = paths["results.md"].read_text()
    assert "| baseline | pretrained | 0.3175 | 0.2540 |" in md


def test_write_report_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="at least one row"):
        write_report(tmp_path, [], meta={})
    with pytest.raises(ValueError, match="'scores'"):
        write_report(tmp_path, [{"name": "x"}], meta={})


def test_predictions_round_trip_and_validation(tmp_path, caption_set):
    references, candidates = caption_set
    records = [
        {"image_id": k, "candidate": candidates[k], "references": references[k], "extra": 1}
        for k in references
    ]
    path = write_predictions(tmp_path / "predictions.jsonl", records)
    assert read_predictions(path) == records
    with pytest.raises(ValueError, match="duplicate"):
        write_predictions(tmp_path / "dup.jsonl", records + records[:1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image_id": "a", "candidate": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing field\(s\) \['references'\]"):
        read_predictions(bad)


@pytest.mark.java
def test_results_json_equals_rescoring_the_predictions_file(tmp_path, caption_set):
    """The numbers in results.json are pycocoevalcap's on the predictions.jsonl written next to them."""
    references, candidates = caption_set
    records = [{"image_id": k, "candidate": candidates[k], "references": references[k]} for k in references]
    metrics = ["BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"]  # METEOR equality is covered in test_metrics
    settings = EvalSettings(metrics=metrics, bootstrap_resamples=200)
    result_row = evaluate_predictions(records, name="epoch_0", epoch=0, settings=settings)
    preds = write_predictions(tmp_path / "epoch_0" / "predictions.jsonl", records)
    paths = write_report(tmp_path, [result_row], meta={"split": "test"})
    saved = json.loads(paths["results.json"].read_text())["rows"][0]
    rescored = score_predictions_file(preds, metrics=metrics)
    for name in metrics:
        assert saved["scores"][name] == rescored.scores[name], name
        assert saved["ci"][name]["low"] <= saved["scores"][name] <= saved["ci"][name]["high"]
    assert saved["chair"]["ground_truth_source"] == "reference_captions"
    assert saved["scores"]["CHAIRs"] == pytest.approx(1 / 6)  # img4: "a dog sitting on a couch" (a pizza)
