"""Every run the CLI starts is a public package function that works without `mgpt_cli` (issue: one place
for each concern). A fresh interpreter imports them from their packages, checks that `mgpt_cli` was never
imported, and calls each on the tiny preset: prepare → inspect → train (+ eval) → eval again → caption."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    from mgpt_bridge import inspect_model
    from mgpt_data.check import prepare_data_dir
    from mgpt_train import RunSettings, caption_images, evaluate_run, load_captioner, train_run

    root = Path(sys.argv[1])
    settings = RunSettings.load("tiny", {
        "data": {"data_dir": str(root / "data")}, "eval": {"bootstrap_resamples": 0},
        "train": {"output_dir": str(root / "runs"), "run_name": "api", "workers": 1, "max_epoch": 1}})
    out = {}
    out["prepare"] = prepare_data_dir(settings.data, engine="local", progress=False)["kept"]
    out["inspect"] = inspect_model(settings.vision, settings.bridge, preset="tiny")["params"]["trainable"]
    outcome = train_run(settings, progress=False)
    names = [r["name"] for r in outcome.evaluation.rows]
    out["train"] = [outcome.iterations, outcome.last_checkpoint.name, names]
    again = evaluate_run(outcome.run_dir, checkpoints=["last"], gallery=False)
    out["eval"] = [r["name"] for r in again.rows]
    image = next((root / "data" / "flickr30k-images").glob("*.jpg"))
    from PIL import Image
    model = load_captioner(RunSettings.from_run_dir(outcome.run_dir), outcome.last_checkpoint)
    out["caption"] = caption_images(model, [Image.open(image).convert("RGB")], max_new_tokens=3)
    out["cli_imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "mgpt_cli")
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.timeout(900)
def test_run_functions_work_without_the_cli(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["cli_imported"] == []
    assert out["prepare"] == 20 and out["inspect"] > 0
    assert out["train"] == [2, "epoch_0", ["baseline", "epoch_0"]]
    assert out["eval"] == ["baseline", "epoch_0"]
    assert len(out["caption"]) == 1 and isinstance(out["caption"][0], str)
