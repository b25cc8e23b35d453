"""One table and one chart across runs: compare.{json,csv,md} + compare.png.

Rows come from the runs' own reports (``write_report`` rows, raw scale, with their bootstrap
``ci``), one per run, plus ``run`` (its label) and ``settings`` (the values of the settings that
differ between the runs). The Markdown table names those settings as columns, so the table says
what was varied; the chart shows each caption metric as a group of bars, one per run, with the
bootstrap interval as error bars.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from mgpt_eval.names import CHAIR_METRICS, SHORT_NAMES
from mgpt_eval.report import atomic_write, metric_cell, report_metrics, sanitise

FILES = ("compare.json", "compare.csv", "compare.md", "compare.png")


def _value(row: dict[str, Any], metric: str, key: str | None = None) -> float:
    value = row["scores"].get(metric) if key is None else row.get("ci", {}).get(metric, {}).get(key)
    return math.nan if value is None else float(value)


def _setting(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _markdown(rows: list[dict], metrics: list[str], differences: list[str], meta: dict, scale: float) -> str:
    lines = ["# Comparison of runs", ""]
    if differences:
        lines.append("Settings that differ: " + ", ".join(f"`{d}`" for d in differences) + ".")
    else:
        lines.append("The runs' settings are identical (apart from their names and folders).")
    for key in ("split", "note"):
        if meta.get(key):
            lines.append(f"- {key}: {meta[key]}")
    lines.append("")
    header = ["run", "checkpoint", *differences, *[SHORT_NAMES[m] for m in metrics]]
    lines += ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for r in rows:
        cells = [r["run"], r["name"], *[_setting(r["settings"].get(d)) for d in differences],
                 *[metric_cell(r, m, scale) for m in metrics]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Each run's checkpoint is its best by CIDEr. ± is half the width of the 95 % "
              "percentile-bootstrap interval over images (exact bounds in compare.json / compare.csv)."]
    if any(m in CHAIR_METRICS for m in metrics):
        lines.append("CHAIRi/CHAIRs: lower is better.")
    return "\n".join(lines) + "\n"


def _csv_text(rows: list[dict], metrics: list[str], differences: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "checkpoint", "epoch", *differences,
                     *[f"{m}{s}" for m in metrics for s in ("", "_ci_low", "_ci_high")]])
    for r in rows:
        cells: list[Any] = [r["run"], r["name"], r.get("epoch", ""),
                            *[_setting(r["settings"].get(d)) for d in differences]]
        for m in metrics:
            values = (_value(r, m), _value(r, m, "low"), _value(r, m, "high"))
            cells += ["" if math.isnan(v) else v for v in values]
        writer.writerow(cells)
    return buf.getvalue()


def plot_comparison(rows: list[dict], metrics: list[str], *, scale: float = 100.0) -> bytes:
    """PNG bytes: per caption metric a group of bars (one per run) with bootstrap-interval error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [m for m in metrics if m not in CHAIR_METRICS and any(not math.isnan(_value(r, m)) for r in rows)]
    fig = Figure(figsize=(max(6.0, 1.2 * len(shown) * max(1, len(rows)) / 2 + 2), 4.5), dpi=100,
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [k + (i - (len(rows) - 1) / 2) * width for k in range(len(shown))]
        ys = [_value(r, m) * scale for m in shown]
        lows = [_value(r, m, "low") * scale for m in shown]
        highs = [_value(r, m, "high") * scale for m in shown]
        err = [[max(0.0, y - lo) if not math.isnan(lo) else 0.0 for y, lo in zip(ys, lows, strict=True)],
               [max(0.0, hi - y) if not math.isnan(hi) else 0.0 for y, hi in zip(ys, highs, strict=True)]]
        ax.bar(xs, ys, width=width, yerr=err, capsize=3, label=f"{r['run']} ({r['name']})")
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([SHORT_NAMES[m] for m in shown])
    ax.set_ylabel("score ×100" if scale == 100.0 else "score")
    ax.set_title("runs compared (best checkpoint each; bars: 95% bootstrap interval)")
    ax.grid(axis="y", alpha=0.3)
    if rows:
        ax.legend(fontsize="small", loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_comparison(
    out_dir: str | Path, rows: list[dict], differences: list[str], *, meta: dict | None = None,
    scale_100: bool = True,
) -> dict[str, Path]:
    """Write compare.json/.csv/.md/.png into ``out_dir`` (rows: report rows + ``run`` + ``settings``)."""
    if not rows:
        raise ValueError("write_comparison needs at least one run")
    for i, row in enumerate(rows):
        if "run" not in row or not isinstance(row.get("scores"), dict):
            raise ValueError(f"row {i} needs 'run' and a 'scores' dict, got keys {sorted(row)}")
        row.setdefault("settings", {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = report_metrics(rows)
    scale = 100.0 if scale_100 else 1.0
    meta = dict(meta or {})
    paths = {name: out_dir / name for name in FILES}
    payload = sanitise({"meta": meta, "differences": differences, "metrics": metrics, "rows": rows})
    atomic_write(paths["compare.json"], json.dumps(payload, indent=2, allow_nan=False) + "\n")
    atomic_write(paths["compare.csv"], _csv_text(rows, metrics, differences))
    atomic_write(paths["compare.md"], _markdown(rows, metrics, differences, meta, scale))
    atomic_write(paths["compare.png"], plot_comparison(rows, metrics, scale=scale))
    return paths
