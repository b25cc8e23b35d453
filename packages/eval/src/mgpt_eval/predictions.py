"""``predictions.jsonl``: one JSON object per image, ``{"image_id", "candidate", "references"}``.

The file a checkpoint's generation writes and the evaluation reads back, so the numbers in
``results.json`` can always be re-derived from it (``score_predictions_file``). Extra keys are kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mgpt_eval.metrics import MetricReport, score_captions

REQUIRED_FIELDS = ("image_id", "candidate", "references")


def validate_record(record: dict, where: str = "record") -> dict:
    """Check one prediction record; returns it with ``image_id`` as a string."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    if not isinstance(record["candidate"], str):
        raise ValueError(f"{where}: candidate must be a string")
    refs = record["references"]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise ValueError(f"{where}: references must be a non-empty list of strings")
    return {**record, "image_id": str(record["image_id"])}


def write_predictions(path: str | Path, records: Iterable[dict]) -> Path:
    """Write records as JSON lines, atomically (temp file + ``os.replace``); ids must be unique."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    lines = []
    for i, record in enumerate(records):
        record = validate_record(record, f"record {i}")
        if record["image_id"] in seen:
            raise ValueError(f"duplicate image_id {record['image_id']!r} in predictions")
        seen.add(record["image_id"])
        lines.append(json.dumps(record, ensure_ascii=False))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    os.replace(tmp, path)
    return path


def read_predictions(path: str | Path) -> list[dict]:
    """Read and validate a predictions.jsonl (blank lines ignored; duplicate ids are an error)."""
    path = Path(path)
    records: list[dict] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({err})") from err
            record = validate_record(obj, f"{path}:{lineno}")
            if record["image_id"] in seen:
                raise ValueError(f"{path}:{lineno}: duplicate image_id {record['image_id']!r}")
            seen.add(record["image_id"])
            records.append(record)
    if not records:
        raise ValueError(f"{path}: no predictions")
    return records


def predictions_to_inputs(records: Iterable[dict]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(references, candidates) dicts for ``score_captions`` / ``chair`` from prediction records."""
    references: dict[str, list[str]] = {}
    candidates: dict[str, str] = {}
    for record in records:
        references[record["image_id"]] = list(record["references"])
        candidates[record["image_id"]] = record["candidate"]
    return references, candidates


def score_predictions_file(
    path: str | Path, *, metrics: list[str] | None = None, spice_jars: str | Path | None = None
) -> MetricReport:
    """Re-score a predictions.jsonl with pycocoevalcap (what results.json must agree with)."""
    references, candidates = predictions_to_inputs(read_predictions(path))
    return score_captions(references, candidates, metrics=metrics, spice_jars=spice_jars)
