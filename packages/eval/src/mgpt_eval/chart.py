"""metrics.png: one line per metric against epoch, the untrained baseline at x = -1 ("pretrained").

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend switch), so it
works headless and inside Ray workers. Caption metrics on the left; CHAIR (lower is better) on the
right when any row has it. Shaded bands are the bootstrap intervals when rows carry them.
"""

from __future__ import annotations

import io
import math

from mgpt_eval.names import CHAIR_METRICS


def _x(row: dict) -> int:
    epoch = row.get("epoch")
    return -1 if epoch is None or int(epoch) < 0 else int(epoch)


def _value(row: dict, metric: str, key: str | None = None) -> float:
    if key is None:
        value = row["scores"].get(metric)
    else:
        value = row.get("ci", {}).get(metric, {}).get(key)
    return math.nan if value is None else float(value)


def plot_metrics(
    rows: list[dict], metrics: list[str], *, scale: float = 100.0, title: str | None = None
) -> bytes:
    """PNG bytes of the metric-vs-epoch chart for ``rows`` (sorted by epoch here)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = sorted(rows, key=_x)
    xs = [_x(r) for r in rows]
    caption = [
        m for m in metrics if m not in CHAIR_METRICS and any(not math.isnan(_value(r, m)) for r in rows)
    ]
    chair = [m for m in metrics if m in CHAIR_METRICS and any(not math.isnan(_value(r, m)) for r in rows)]
    panels = [("caption metrics (higher is better)", caption)]
    if chair:
        panels.append(("CHAIR (lower is better)", chair))
    fig = Figure(figsize=(6.5 * len(panels), 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for i, (panel_title, names) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for m in names:
            ys = [_value(r, m) * scale for r in rows]
            (line,) = ax.plot(xs, ys, marker="o", label=m)
            lows = [_value(r, m, "low") * scale for r in rows]
            highs = [_value(r, m, "high") * scale for r in rows]
            if not all(math.isnan(v) for v in lows):
                ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xticks(sorted(set(xs)))
        ax.set_xticklabels(["pretrained" if x < 0 else str(x) for x in sorted(set(xs))])
        ax.set_xlabel("epoch")
        ax.set_ylabel("score ×100" if scale == 100.0 else "score")
        ax.set_title(panel_title)
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize="small", loc="best")
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
