"""End to end over the literal CLI (`uv run apps/cli ...`) on the tiny preset: train → checkpoints →
metrics.jsonl on the schedule → eval report equal to pycocoevalcap on the predictions → caption."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mgpt_train.schedule import linear_warmup_cosine_lr

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or "uv"


def _cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "MGPT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [UV, "run", "apps/cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nSTDOUT\n{proc.stdout[-4000:]}\nSTDERR\n{proc.stderr[-6000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    _cli(
        "train",
        "--preset",
        "tiny",
        "--data-dir",
        str(root / "data"),
        "--output-dir",
        str(root / "runs"),
        "--run-name",
        "tiny",
        "--set",
        "eval.bootstrap_resamples=20",
    )
    return root / "runs" / "tiny"


def test_train_writes_one_checkpoint_per_epoch(tiny_run: Path) -> None:
    settings = json.loads((tiny_run / "settings.json").read_text())
    epochs = settings["train"]["max_epoch"]
    for k in range(epochs):
        ckpt = tiny_run / "checkpoints" / f"epoch_{k}"
        assert (ckpt / "trainable.safetensors").is_file() and (ckpt / "train_state.pt").is_file()
    from safetensors.torch import load_file

    trainable = load_file(tiny_run / "checkpoints" / f"epoch_{epochs - 1}" / "trainable.safetensors")
    assert set(trainable) == {"projector.weight", "projector.bias"}  # only the bridge is saved


def test_metrics_lr_column_follows_the_schedule(tiny_run: Path) -> None:
    t = json.loads((tiny_run / "settings.json").read_text())["train"]
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == t["max_epoch"] * t["iters_per_epoch"]
    for r in rows:
        expected = linear_warmup_cosine_lr(
            r["epoch"],
            r["step"],
            t["iters_per_epoch"],
            t["max_epoch"],
            t["init_lr"],
            t["min_lr"],
            t["warmup_lr"],
            t["warmup_steps"],
        )
        assert r["lr"] == pytest.approx(expected, rel=1e-12)


def test_eval_report_equals_pycocoevalcap_on_the_predictions(tiny_run: Path) -> None:
    from mgpt_eval import score_predictions_file

    results = json.loads((tiny_run / "eval" / "results.json").read_text())
    names = [row["name"] for row in results["rows"]]
    assert names[0] == "baseline" and names[1:] == ["epoch_0", "epoch_1"]
    assert (tiny_run / "eval" / "metrics.png").stat().st_size > 1000
    assert "| baseline" in (tiny_run / "eval" / "results.md").read_text()
    for row in results["rows"]:
        again = score_predictions_file(tiny_run / "eval" / "predictions" / f"{row['name']}.jsonl")
        for metric in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"):
            assert row["scores"][metric] == pytest.approx(again.scores[metric], abs=1e-12), metric


def test_caption_command_uses_the_best_checkpoint(tiny_run: Path) -> None:
    image = next(
        (
            Path(json.loads((tiny_run / "settings.json").read_text())["data"]["data_dir"])
            / "flickr30k-images"
        ).glob("*.jpg")
    )
    out = _cli("caption", str(image), "--run", str(tiny_run), "--json", "--max-new-tokens", "4")
    captions = json.loads(out.stdout)
    assert captions[0]["image"] == str(image) and isinstance(captions[0]["caption"], str)
    best = json.loads((tiny_run / "checkpoints" / "best.json").read_text())  # written by the evaluation
    assert f"checkpoint: {(tiny_run / best['checkpoint']).resolve()}" in out.stderr


def test_eval_rejects_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [UV, "run", "apps/cli", "eval", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
