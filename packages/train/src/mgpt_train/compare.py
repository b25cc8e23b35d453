"""`compare_runs`: one table and one chart across run directories — each run's best checkpoint, its
bootstrap intervals, and the settings that differ between the runs (a diff of their settings.json)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgpt_train.checkpointing import BEST_METRIC, best_scored_row
from mgpt_train.rundir import EVAL_DIR, SETTINGS_FILE, read_json

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
SELECTION_METRIC = BEST_METRIC
#: settings that name a run rather than change it (left out of the differences)
RUN_IDENTITY = ("train.run_name", "train.output_dir")


@dataclass(frozen=True)
class Comparison:
    """What `compare_runs` wrote: one row per run, the differing settings, the files."""

    rows: list[dict[str, Any]]
    differences: list[str]
    paths: dict[str, Path]

    def format(self) -> str:
        """For a terminal: the table (compare.md), then each file written."""
        return "\n".join([self.paths["compare.md"].read_text().rstrip(),
                          *(f"  {name}: {path}" for name, path in self.paths.items())])


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def setting_differences(settings: list[dict[str, Any]]) -> list[str]:
    """Flattened setting keys whose values are not the same in every run (run names/folders left out)."""
    flat = [flatten(s) for s in settings]
    keys = sorted(set().union(*flat)) if flat else []
    missing = object()
    return [k for k in keys if k not in RUN_IDENTITY
            and len({json.dumps(f.get(k, missing), sort_keys=True, default=str) for f in flat}) > 1]


def best_row(results: dict[str, Any], metric: str = SELECTION_METRIC) -> dict[str, Any]:
    """The row of a run's ``eval/results.json`` to compare: its trained checkpoint with the highest
    ``metric`` (`checkpointing.best_scored_row`), else the baseline when nothing else was scored."""
    rows = results.get("rows") or []
    if not rows:
        raise ValueError("results.json has no rows")
    best = best_scored_row(rows, metric)
    return rows[0] if best is None else best


def _read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    results = run_dir / EVAL_DIR / RESULTS_FILE
    if not (run_dir / SETTINGS_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {SETTINGS_FILE})")
    if not results.is_file():
        raise FileNotFoundError(f"{run_dir} has no {EVAL_DIR}/{RESULTS_FILE}: evaluate it first "
                                f"(`mgpt eval {run_dir}`)")
    return read_json(run_dir / SETTINGS_FILE), read_json(results)


def _labels(run_dirs: list[Path]) -> list[str]:
    names = [p.name for p in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in run_dirs]


def compare_runs(
    run_dirs: list[Path | str], output_dir: Path | str | None = None, *, scale_100: bool = True
) -> Comparison:
    """Write ``compare.{json,csv,md,png}`` into ``output_dir`` (default: ``compare/`` beside the first
    run) for the best checkpoint of each run, naming the settings that differ between them."""
    from mgpt_eval.comparison import write_comparison

    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    dirs = [Path(p).expanduser().resolve() for p in run_dirs]
    if len(set(dirs)) != len(dirs):
        raise ValueError("a run directory is given twice")
    read = [_read_run(d) for d in dirs]
    differences = setting_differences([settings for settings, _ in read])
    rows, splits = [], set()
    for label, run_dir, (settings, results) in zip(_labels(dirs), dirs, read, strict=True):
        flat = flatten(settings)
        row = dict(best_row(results))
        rows.append({**row, "run": label, "run_dir": str(run_dir),
                     "settings": {k: flat.get(k) for k in differences}})
        splits.add(str(results.get("meta", {}).get("split")))
    out = Path(output_dir) if output_dir is not None else dirs[0].parent / "compare"
    meta = {"split": ", ".join(sorted(splits)), "selection": f"best {SELECTION_METRIC} per run",
            "runs": [str(d) for d in dirs]}
    paths = write_comparison(out, rows, differences, meta=meta, scale_100=scale_100)
    logger.info("compared %d runs (%s differ) → %s", len(rows), ", ".join(differences) or "nothing", out)
    return Comparison(rows, differences, paths)
