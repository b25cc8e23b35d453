"""`run_ablation`: train and evaluate a preset's variants one after another, then `compare_runs` them.

The default variants are the bridge ablations of the seeds: MiniGPT-4's linear ``llama_proj`` (the
preset as it is), the paper's 3-layer MLP, MobileVLM's LDP on the encoder's whole token grid
(``vision.num_tokens = None``; on ``default`` 49 tokens → 16, as many as the linear run's LM sees)
and LoRA on the LM (MiniCPM-V). ``steps`` shortens every run to one epoch of that many iterations,
with the warmup scaled by the same factor, so a 2-core box can finish the table. A variant whose run
folder already holds ``eval/results.json`` is not run again: re-running the same command after an
interruption continues where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgpt_train.run_settings import Overrides, RunSettings, as_overrides, deep_merge

logger = logging.getLogger(__name__)

#: variant name → settings changed from the preset (nested overrides)
ABLATION_VARIANTS: dict[str, dict[str, Any]] = {
    "linear": {"bridge": {"projector": "linear"}},
    "mlp-3": {"bridge": {"projector": "mlp", "projector_layers": 3}},
    "ldp": {"bridge": {"projector": "ldp"}, "vision": {"num_tokens": None}},
    "lora": {"bridge": {"lm_tuning": "lora"}},
}


@dataclass(frozen=True)
class AblationResult:
    """The runs trained (by variant) and their comparison."""

    output_dir: Path
    runs: dict[str, Path]
    comparison: Any  # mgpt_train.compare.Comparison


def shortened(settings: RunSettings, steps: int) -> dict[str, Any]:
    """Overrides that make ``settings`` one epoch of ``steps`` iterations, the warmup scaled alike."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = settings.train
    total = t.max_epoch * t.iters_per_epoch if t.iters_per_epoch else None
    warmup = max(1, round(t.warmup_steps * steps / total)) if total else min(t.warmup_steps, steps)
    return {"train": {"max_epoch": 1, "iters_per_epoch": steps, "warmup_steps": min(warmup, steps),
                      "stop_at_step": None}}


def variant_settings(preset: str | Path, variant: str, *, steps: int | None = None,
                     overrides: Overrides = None) -> RunSettings:
    """The settings of one variant: preset → ``overrides`` → the variant's changes (→ ``steps``)."""
    if variant not in ABLATION_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(ABLATION_VARIANTS)}")
    base = deep_merge(as_overrides(overrides), ABLATION_VARIANTS[variant])
    settings = RunSettings.load(preset, base)
    if steps is not None:
        settings = RunSettings.load(preset, deep_merge(base, shortened(settings, steps)))
    return settings


def run_ablation(
    preset: str | Path = "default",
    *,
    variants: list[str] | None = None,
    steps: int | None = None,
    output_dir: Path | str | None = None,
    overrides: Overrides = None,
    progress: bool = True,
) -> AblationResult:
    """Train + evaluate each variant of ``preset`` into ``output_dir/<variant>/`` (default
    ``<train.output_dir>/ablation-<preset>``), then write ``output_dir/compare.{md,csv,json,png}``."""
    from tqdm.auto import tqdm

    from mgpt_train.compare import compare_runs
    from mgpt_train.run import train_run
    from mgpt_train.rundir import EVAL_DIR, resolve_output_dir

    names = list(variants or ABLATION_VARIANTS)
    unknown = [v for v in names if v not in ABLATION_VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(ABLATION_VARIANTS)}")
    # every variant's settings are validated before the first run starts
    planned = {v: variant_settings(preset, v, steps=steps, overrides=overrides) for v in names}
    first = next(iter(planned.values()))
    root = (Path(output_dir).expanduser().resolve() if output_dir is not None
            else resolve_output_dir(first.train.output_dir) / f"ablation-{Path(preset).stem}")
    runs: dict[str, Path] = {}
    with tqdm(total=len(names), desc="ablation", unit="run", disable=not progress, position=0) as bar:
        for variant, settings in planned.items():
            run_dir = root / variant
            bar.set_postfix(variant=variant, refresh=True)
            if (run_dir / EVAL_DIR / "results.json").is_file():
                logger.info("ablation: %s already trained and evaluated in %s, kept", variant, run_dir)
            else:
                settings = RunSettings.from_json_dict(deep_merge(settings.to_json_dict(), {
                    "train": {"output_dir": str(root), "run_name": variant}}))
                train_run(settings, evaluate=True, progress=progress)
            runs[variant] = run_dir
            bar.update(1)
    comparison = compare_runs(list(runs.values()), root)
    return AblationResult(root, runs, comparison)
