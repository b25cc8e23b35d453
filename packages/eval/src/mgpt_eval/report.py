"""The evaluation report of a run: results.json, results.csv, results.md and metrics.png.

Rows come from ``evaluate.make_row`` / ``evaluate_predictions`` (one per checkpoint, raw scale):
``{"name", "epoch" (-1 = untrained baseline), "n_images", "scores": {metric: value|None},
"ci": {metric: {"low", "high"}}, "unavailable": {metric: reason}, ...}``.
JSON and CSV keep the raw scale (0–1, CIDEr 0–10); the Markdown table (and chart) multiply by 100
when ``scale_100`` (the seed's table uses raw fractions: pass ``scale_100=False`` to compare).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

from mgpt_eval.chart import plot_metrics
from mgpt_eval.names import CAPTION_METRICS, CHAIR_METRICS, DEFAULT_METRICS, SHORT_NAMES

TABLE_METRICS = (*DEFAULT_METRICS, *CHAIR_METRICS)  # always shown, "n/a" when absent
ALL_METRICS = (*CAPTION_METRICS, *CHAIR_METRICS)


def atomic_write(path: Path, data: str | bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def sanitise(obj):
    """NaN/inf → None recursively, so results.json is strict JSON."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {str(k): sanitise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitise(v) for v in obj]
    return obj


def sort_rows(rows: list[dict]) -> list[dict]:
    """Baseline (epoch -1/None) first, then by epoch; stable for equal epochs."""
    for i, row in enumerate(rows):
        if "name" not in row or not isinstance(row.get("scores"), dict):
            raise ValueError(f"row {i} needs 'name' and a 'scores' dict, got keys {sorted(row)}")
    return sorted(rows, key=lambda r: -1 if r.get("epoch") is None else int(r["epoch"]))


def report_metrics(rows: list[dict]) -> list[str]:
    """Table columns: the standard set plus any other metric a row scored or named unavailable."""
    present = {m for r in rows for m in [*r["scores"], *r.get("unavailable", {})]}
    return [m for m in ALL_METRICS if m in TABLE_METRICS or m in present]


def metric_availability(rows: list[dict], metrics: list[str]) -> dict[str, str]:
    """``"available"`` or the (first) reason a metric was unavailable."""
    out: dict[str, str] = {}
    for m in metrics:
        reasons = [r["unavailable"][m] for r in rows if m in r.get("unavailable", {})]
        scored = any(_finite(r["scores"].get(m)) is not None for r in rows)
        out[m] = "available" if scored and not reasons else (reasons[0] if reasons else "not computed")
    return out


def _csv_text(rows: list[dict], metrics: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["name", "epoch", "n_images", *[f"{m}{s}" for m in metrics for s in ("", "_ci_low", "_ci_high")]]
    )
    for r in rows:
        cells = [r["name"], r.get("epoch", -1), r.get("n_images", "")]
        for m in metrics:
            ci = r.get("ci", {}).get(m, {})
            cells += [_finite(v) for v in (r["scores"].get(m), ci.get("low"), ci.get("high"))]
        writer.writerow(["" if c is None else c for c in cells])
    return buf.getvalue()


def metric_cell(row: dict, metric: str, scale: float) -> str:
    value = _finite(row["scores"].get(metric))
    if value is None:
        return "n/a"
    digits = 2 if scale == 100.0 else 4
    text = f"{value * scale:.{digits}f}"
    ci = row.get("ci", {}).get(metric)
    if ci and _finite(ci.get("low")) is not None and _finite(ci.get("high")) is not None:
        text += f" ± {(ci['high'] - ci['low']) / 2 * scale:.{digits}f}"
    return text


def _markdown(rows: list[dict], metrics: list[str], meta: dict, availability: dict, scale: float) -> str:
    lines = ["# Caption evaluation", ""]
    for key in ("split", "n_images", "decoding", "tokenizer"):
        if key in meta:
            lines.append(f"- {key}: {json.dumps(meta[key]) if isinstance(meta[key], dict) else meta[key]}")
    scale_note = "×100" if scale == 100.0 else "raw (0–1; CIDEr 0–10)"
    lines += [f"- scale: {scale_note}", ""]
    header = ["checkpoint", "epoch", *[SHORT_NAMES[m] for m in metrics]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(["---"] * len(header)) + " |")
    for r in rows:
        epoch = "pretrained" if r.get("epoch", -1) in (None, -1) else str(r["epoch"])
        cells = [r["name"], epoch, *[metric_cell(r, m, scale) for m in metrics]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if any(r.get("ci") for r in rows):
        conf = meta.get("confidence", 0.95)
        lines.append(
            f"± is half the width of the {conf:.0%} percentile-bootstrap interval over images "
            "(exact intervals are in results.json / results.csv)."
        )
    for m, status in availability.items():
        if status != "available":
            lines.append(f"- {m} n/a: {status}")
    lines.append("CHAIRi/CHAIRs: lower is better.")
    return "\n".join(lines) + "\n"


def write_report(
    eval_dir: str | Path, rows: list[dict], *, meta: dict | None = None, scale_100: bool = True
) -> dict[str, Path]:
    """Write results.json, results.csv, results.md and metrics.png into ``eval_dir``; returns paths."""
    if not rows:
        raise ValueError("write_report needs at least one row")
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    rows = sort_rows(list(rows))
    metrics = report_metrics(rows)
    availability = metric_availability(rows, metrics)
    meta = dict(meta or {})
    meta.setdefault("n_images", max(int(r.get("n_images", 0)) for r in rows))
    meta.setdefault("tokenizer", sorted({r.get("tokenizer", "ptb") for r in rows}))
    meta["metric_availability"] = availability
    meta["scale"] = "raw: 0-1, CIDEr 0-10 (tables x100 when scale_100)"
    scale = 100.0 if scale_100 else 1.0
    paths = {name: eval_dir / name for name in ("results.json", "results.csv", "results.md", "metrics.png")}
    payload = sanitise({"meta": meta, "metrics": metrics, "rows": rows})
    atomic_write(paths["results.json"], json.dumps(payload, indent=2, allow_nan=False) + "\n")
    atomic_write(paths["results.csv"], _csv_text(rows, metrics))
    atomic_write(paths["results.md"], _markdown(rows, metrics, meta, availability, scale))
    atomic_write(paths["metrics.png"], plot_metrics(rows, metrics, scale=scale))
    return paths
