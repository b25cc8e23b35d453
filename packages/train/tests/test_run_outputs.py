"""What a run leaves besides metrics: tracker records read back with each tracker's own reader, checkpoint
retention with resume, and the best-checkpoint pointer.

Two real `train_run`s (1 worker, tiny preset, ~1 min each on 2 cores): one tracked with MLflow, one with
``keep_checkpoints=1`` stopped at step 2 and resumed. W&B and TensorBoard are driven from the first
run's recorded ``metrics.jsonl`` and evaluation, through the same `RunTracker` calls `train_run` makes.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
from pathlib import Path

import pytest

from mgpt_train.checkpointing import default_checkpoint, read_checkpoint_dir
from mgpt_train.evaluate import EvalResult
from mgpt_train.metrics_log import read_metrics
from mgpt_train.run import resume_settings, train_run
from mgpt_train.trackers import flatten
from mgpt_train.tracking import open_tracker

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

EVAL = {"bootstrap_resamples": 20}


@pytest.fixture(scope="module")
def tracked(ray_session, make_settings, tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked")
    settings = make_settings(out, train={"workers": 1, "tracker": "mlflow", "run_name": "mlflow"}, eval=EVAL)
    outcome = train_run(settings, progress=False)
    return settings, outcome


def _results(run_dir: Path) -> EvalResult:
    rows = json.loads((run_dir / "eval" / "results.json").read_text())["rows"]
    return EvalResult(rows, {"metrics.png": run_dir / "eval" / "metrics.png"})


def _expected(run_dir: Path) -> dict:
    """What every tracker must hold, from the run's own files."""
    records = read_metrics(run_dir / "metrics.jsonl")
    rows = json.loads((run_dir / "eval" / "results.json").read_text())["rows"]
    iters = json.loads((run_dir / "summary.json").read_text())["iters_per_epoch"]
    cider = {0 if r["epoch"] < 0 else (r["epoch"] + 1) * iters: r for r in rows}
    folder = run_dir / "eval" / "predictions"
    predictions = {r["name"]: [json.loads(x) for x in (folder / f"{r['name']}.jsonl").read_text().split("\n")
                               if x.strip()] for r in rows}
    return {"loss": {r["global_step"]: r["loss"] for r in records},
            "lr": {r["global_step"]: r["lr"] for r in records},
            "cider": {s: r["scores"]["CIDEr"] for s, r in cider.items()},
            "cider_low": {s: r["ci"]["CIDEr"]["low"] for s, r in cider.items()},
            "names": [r["name"] for r in rows], "predictions": predictions,
            "settings": json.loads((run_dir / "settings.json").read_text())}


def _check_table(columns: list[str], data: list[list[str]], want: dict) -> None:
    assert columns == ["image_id", "reference", *want["names"]]
    assert len(data) == min(8, len(want["predictions"]["baseline"]))
    for row in data:
        for name, cell in zip(want["names"], row[2:], strict=True):
            by_id = {str(p["image_id"]): p for p in want["predictions"][name]}
            assert cell == by_id[row[0]]["candidate"]
        assert row[1] == by_id[row[0]]["references"][0]


def _drive(settings, run_dir: Path, tracker: str) -> None:
    """The calls `train_run` makes, on a recorded run: settings, the followed metrics file, the evaluation."""
    tracked = settings.model_copy(update={"train": settings.train.model_copy(update={"tracker": tracker})})
    run = open_tracker(tracked, run_dir)
    run.log_settings(json.loads((run_dir / "settings.json").read_text()))
    with run.following(run_dir / "metrics.jsonl", interval=0.1):
        pass
    run.log_evaluation(_results(run_dir), run_dir)
    run.close()


def _copy_run(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("mlflow", "checkpoints"))
    (dest / "tracking.json").unlink()
    return dest


# ---------------------------------------------------------------------------------------------- MLflow
def test_mlflow_local_store_holds_the_run(tracked, tmp_path) -> None:
    from mlflow import MlflowClient

    _, outcome = tracked
    run_dir = outcome.run_dir
    want = _expected(run_dir)
    state = json.loads((run_dir / "tracking.json").read_text())
    uri = f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}"
    assert state["where"] == f"mlflow ui --backend-store-uri {uri}"
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "mlflow"
    assert run.data.params == flatten(want["settings"])  # every resolved setting
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert history == pytest.approx(want["loss"], rel=1e-12) and len(history) == 6
    lr = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/lr")}
    assert lr == pytest.approx(want["lr"], rel=1e-12)
    assert len(client.get_metric_history(run.info.run_id, "train/samples_per_sec")) == 6
    cider = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval/CIDEr")}
    assert cider == pytest.approx(want["cider"]) and sorted(cider) == [0, 3, 6]
    low = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval/CIDEr_ci_low")}
    assert low == pytest.approx(want["cider_low"])
    logged = Path(client.download_artifacts(run.info.run_id, "eval", str(tmp_path)))
    assert (logged / "metrics.png").read_bytes() == (run_dir / "eval" / "metrics.png").read_bytes()
    logged_settings = Path(client.download_artifacts(run.info.run_id, "settings.json", str(tmp_path)))
    assert json.loads(logged_settings.read_text()) == want["settings"]
    table = json.loads((logged / "sample_captions.json").read_text())
    _check_table(table["columns"], table["data"], want)


def test_best_checkpoint_is_recorded_and_used(tracked) -> None:
    _, outcome = tracked
    run_dir = outcome.run_dir
    best = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    rows = {r["name"]: r for r in outcome.evaluation.rows if r["epoch"] >= 0}
    top = max(r["scores"]["CIDEr"] for r in rows.values())
    assert best["metric"] == "CIDEr" and best["value"] == top and rows[best["name"]]["scores"]["CIDEr"] == top
    assert best["checkpoint"] == f"checkpoints/{best['name']}"  # relative: the run folder can move
    assert json.loads((run_dir / "summary.json").read_text())["best_checkpoint"] == best
    assert default_checkpoint(run_dir) == run_dir / "checkpoints" / best["name"]
    assert outcome.evaluation.best == best


# ---------------------------------------------------------------------------------------------- W&B
def _wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (``run-<id>.wandb``: LevelDB-log framing of protobuf Records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, header = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B"
    pos, buf, out = header, b"", []
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + header])
        if length == 0 and kind == 0:  # zero padding to the end of a block
            pos += left
            continue
        buf += data[pos + header:pos + header + length]
        pos += header + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def test_wandb_offline_run_files_hold_the_run(tracked, tmp_path, monkeypatch) -> None:
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no key anywhere → offline
    settings, outcome = tracked
    run_dir = _copy_run(outcome.run_dir, tmp_path / "run")
    want = _expected(run_dir)
    _drive(settings, run_dir, "wandb")
    [offline] = list((run_dir / "wandb").glob("offline-run-*"))
    assert json.loads((run_dir / "tracking.json").read_text())["where"] == f"wandb sync {offline}"
    records = _wandb_records(next(offline.glob("run-*.wandb")))
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    updates = [r.config for r in records if r.WhichOneof("record_type") == "config"]
    for update in updates:
        config.update({u.key: json.loads(u.value_json) for u in update.update})
    assert {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in config.items()
            if k in want["settings"]} == want["settings"]
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    loss = {h["global_step"]: h["train/loss"] for h in history if "train/loss" in h}
    assert loss == pytest.approx(want["loss"], rel=1e-12)
    cider = {h["global_step"]: h["eval/CIDEr"] for h in history if "eval/CIDEr" in h}
    assert cider == pytest.approx(want["cider"])
    low = {h["global_step"]: h["eval/CIDEr_ci_low"] for h in history if "eval/CIDEr_ci_low" in h}
    assert low == pytest.approx(want["cider_low"])
    [image] = [h for h in history if "eval/metrics/path" in h]  # a logged wandb.Image, flattened
    assert image["eval/metrics/_type"] == "image-file" and image["global_step"] == 6
    from PIL import Image

    with Image.open(offline / "files" / image["eval/metrics/path"]) as logged, \
            Image.open(run_dir / "eval" / "metrics.png") as png:
        assert logged.size == png.size
    [table_file] = list((offline / "files" / "media" / "table" / "eval").glob("sample_captions_*.table.json"))
    table = json.loads(table_file.read_text())
    _check_table(table["columns"], table["data"], want)


# ---------------------------------------------------------------------------------------------- TensorBoard
def test_tensorboard_event_files_hold_the_run(tracked, tmp_path) -> None:
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings, outcome = tracked
    run_dir = _copy_run(outcome.run_dir, tmp_path / "run")
    want = _expected(run_dir)
    _drive(settings, run_dir, "tensorboard")
    everything = {"scalars": 0, "images": 0, "tensors": 0}
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance=everything)
    events.Reload()
    loss = {e.step: e.value for e in events.Scalars("train/loss")}
    assert loss == pytest.approx(want["loss"], rel=1e-6)  # event files store float32
    assert {e.step: e.value for e in events.Scalars("train/lr")} == pytest.approx(want["lr"], rel=1e-6)
    assert {e.step: e.value for e in events.Scalars("eval/CIDEr")} == pytest.approx(want["cider"], rel=1e-6)
    assert {e.step: e.value for e in events.Scalars("eval/CIDEr_ci_low")} == pytest.approx(want["cider_low"],
                                                                                            rel=1e-6)
    [image] = events.Images("eval/metrics")
    with Image.open(io.BytesIO(image.encoded_image_string)) as logged, \
            Image.open(run_dir / "eval" / "metrics.png") as png:
        assert logged.size == png.size
    texts = {tag: events.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
             for tag in events.Tags()["tensors"]}
    settings_text = texts["settings/text_summary"]
    assert json.loads("\n".join(line[4:] for line in settings_text.splitlines())) == want["settings"]
    markdown = texts["eval/sample_captions/text_summary"]
    table = [[c.replace("\\|", "|") for c in re.split(r"(?<!\\) \| ", line[2:-2])]
             for line in markdown.split("\n")]
    flat = {name: [{**p, "candidate": p["candidate"].replace("\n", " ")} for p in preds]
            for name, preds in want["predictions"].items()}  # a markdown cell holds one line
    _check_table(table[0], table[2:], {**want, "predictions": flat})


# ---------------------------------------------------------------------------------------------- retention
@pytest.mark.slow  # two more runs
def test_keep_one_checkpoint_then_resume(tracked, make_settings, tmp_path) -> None:
    settings, straight = tracked
    kept = make_settings(tmp_path, eval=EVAL,
                         train={"workers": 1, "keep_checkpoints": 1, "stop_at_step": 2, "run_name": "kept",
                                "tracker": "tensorboard"})
    first = train_run(kept, evaluate=False, progress=False)
    ckpts = first.run_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.is_dir()) == ["step_2"]
    again = train_run(resume_settings(first.run_dir), resume_dir=first.run_dir, progress=False)
    # Ray kept the latest checkpoint only: step_2 and epoch_0 were removed as later ones arrived
    assert sorted(p.name for p in ckpts.iterdir() if p.is_dir()) == ["epoch_1"]
    files = sorted(p.name for p in ckpts.iterdir() if not p.is_dir())
    assert [f for f in files if not f.startswith(("checkpoint_manager", "."))] == ["best.json"]  # + Ray's
    losses = [r["loss"] for r in read_metrics(again.run_dir / "metrics.jsonl")]
    straight_losses = [r["loss"] for r in read_metrics(straight.run_dir / "metrics.jsonl")]
    assert losses == straight_losses  # resumed == uninterrupted
    resumed, state = read_checkpoint_dir(ckpts / "epoch_1")
    reference, _ = read_checkpoint_dir(straight.run_dir / "checkpoints" / "epoch_1")
    assert state["global_step"] == 6 and all(resumed[k].equal(reference[k]) for k in reference)
    # evaluation saw only the kept checkpoint, so it is the best one
    assert [r["name"] for r in again.evaluation.rows] == ["baseline", "epoch_1"]
    assert json.loads((ckpts / "best.json").read_text())["name"] == "epoch_1"
    assert default_checkpoint(again.run_dir) == ckpts / "epoch_1"
    # the tracked run went on: steps 1-2 from the first start, 3-6 after resume, each once
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(again.run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(straight_losses, rel=1e-6)
