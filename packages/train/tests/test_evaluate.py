"""evaluate_run in one pass: one model (weights swapped), each image decoded and encoded once, one METEOR
process; the captions equal those of a model built afresh for each checkpoint, as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mgpt_train.modeling
from mgpt_train.eval_captioning import CaptionPlan, caption_with_plans, choose_engine, passes
from mgpt_train.evaluate import evaluate_run
from mgpt_train.run_settings import RunSettings


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run whose LM is tuned too (``lm_tuning = "full"``): checkpoints are the seeded initial
    model plus seeded noise on every trainable matrix, so they caption differently, and not with the
    untrained tiny LM's constant end-of-text."""
    from mgpt_train.checkpointing import write_checkpoint_dir
    from mgpt_train.modeling import build_model
    from mgpt_train.rundir import SETTINGS_FILE, write_json

    root = tmp_path_factory.mktemp("full_run")
    run_dir = root / "runs" / "full"
    settings = RunSettings.load(Path(__file__).parents[3] / "configs" / "tiny.toml",
                                {"data": {"data_dir": str(root / "data")}, "bridge": {"lm_tuning": "full"},
                                 "train": {"output_dir": str(root / "runs"), "run_name": "full"}})
    write_json(run_dir / SETTINGS_FILE, settings.to_json_dict())
    initial = build_model(settings).trainable_state_dict()
    generator = torch.Generator().manual_seed(0)
    for epoch in range(2):
        trainable = {k: v + (0.2 * torch.randn(v.shape, generator=generator) if v.ndim == 2 else 0)
                     for k, v in initial.items()}
        write_checkpoint_dir(run_dir / "checkpoints" / f"epoch_{epoch}", trainable,
                             {"epoch": epoch + 1, "step_in_epoch": 0, "global_step": epoch + 1},
                             settings.to_json_dict())
    return run_dir


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """Count `build_model` calls in this process."""
    made: list[int] = []
    build = mgpt_train.modeling.build_model

    def counting(*args, **kwargs):
        made.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(mgpt_train.modeling, "build_model", counting)
    return made


def _settings(run_dir: Path, **eval_overrides) -> RunSettings:
    return RunSettings.from_run_dir(run_dir, {"eval": {"bootstrap_resamples": 0, **eval_overrides}})


def _rows(settings: RunSettings) -> list[dict]:
    from mgpt_train.predict import eval_rows

    return eval_rows(settings, "test", None)


def _fresh_model_captions(settings: RunSettings, checkpoint: Path | None, rows: list[dict],
                          batch_size: int = 8) -> list[str]:
    """What `predict_local` did before the one-pass eval: a model built for this checkpoint alone, its
    batches decoded, transformed and generated from pixels under the run's autocast."""
    from mgpt_data import ImagePreprocessor, normalize_pixels
    from mgpt_data.batches import rows_to_batch
    from mgpt_train.modeling import autocast
    from mgpt_train.settings import resolve_precision

    model = mgpt_train.modeling.build_model(settings, checkpoint=checkpoint).eval()
    pre = ImagePreprocessor(model.preprocess.as_dict())
    out: list[str] = []
    for start in range(0, len(rows), batch_size):
        kept = pre(rows_to_batch(rows[start:start + batch_size]))
        pixels = torch.from_numpy(normalize_pixels(kept["pixels"], pre.spec))
        with autocast(resolve_precision(settings.train.precision, "cpu"), "cpu"):
            out += model.generate(pixels=pixels)
    return out


def test_one_pass_gives_each_checkpoint_its_own_captions(run_dir: Path, builds: list[int],
                                                         monkeypatch) -> None:
    from pycocoevalcap.meteor import meteor

    from mgpt_eval import load_gallery, score_predictions_file
    from mgpt_train.captioning import caption_images
    from mgpt_train.inference.loading import InferenceModel

    encoded: list[int] = []
    meteors: list[int] = []
    init, meteor_init = InferenceModel.__init__, meteor.Meteor.__init__

    def hooked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.model.encoder.register_forward_hook(lambda m, inputs, output: encoded.append(len(output)))

    def counted(self, *args, **kwargs):
        meteors.append(1)
        meteor_init(self, *args, **kwargs)

    monkeypatch.setattr(InferenceModel, "__init__", hooked)
    monkeypatch.setattr(meteor.Meteor, "__init__", counted)
    settings = _settings(run_dir, engine="local", batch_size=8)
    result = evaluate_run(run_dir, settings)
    made = len(builds)

    names = [row["name"] for row in result.rows]
    assert names == ["baseline", "epoch_0", "epoch_1"]
    gallery = json.loads((run_dir / "eval" / "gallery.json").read_text())
    n_gallery = len(gallery["images"])
    rows = _rows(settings)
    assert made == 1 and sum(encoded) == len(rows) + n_gallery  # one model, each image encoded once
    assert meteors == [1] or not meteors  # one METEOR process for 3 rows + 2 gallery models (none: no java)
    assert json.loads(result.paths["results.json"].read_text())["meta"]["engine"] == "local"

    checkpoints = {"baseline": None, **{f"epoch_{k}": run_dir / "checkpoints" / f"epoch_{k}" for k in (0, 1)}}
    seen = {}
    for name, checkpoint in checkpoints.items():
        records = [json.loads(line) for line in
                   (run_dir / "eval" / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert [r["image_id"] for r in records] == [str(r["image_id"]) for r in rows]
        captions = [r["candidate"] for r in records]
        assert captions == _fresh_model_captions(settings, checkpoint, rows), name
        seen[name] = tuple(captions)
        row = result.rows[names.index(name)]
        again = score_predictions_file(run_dir / "eval" / "predictions" / f"{name}.jsonl")
        assert {k: row["scores"][k] for k in again.scores} == pytest.approx(again.scores, abs=1e-12)
    assert len(set(seen.values())) == 3 and all(seen["epoch_0"] + seen["epoch_1"])  # they differ and speak

    assert list(gallery["models"]) == ["baseline", "epoch_1"]
    photos = load_gallery()
    for name in gallery["models"]:
        model = mgpt_train.modeling.build_model(settings, checkpoint=checkpoints[name]).eval()
        expected = caption_images(model, [p.image for p in photos])  # the PIL photos, as before
        assert list(gallery["models"][name]["captions"].values()) == expected, name
    assert len(set(expected)) > len(photos) // 2  # the photos get captions of their own


def test_kept_weights_or_one_pass_per_checkpoint_give_the_same_captions(run_dir: Path, builds: list[int],
                                                                        monkeypatch) -> None:
    import mgpt_train.inference.loading as loading

    settings = _settings(run_dir).with_absolute_paths()
    rows = _rows(settings)
    plans = [CaptionPlan("baseline", None),
             CaptionPlan("epoch_1", run_dir / "checkpoints" / "epoch_1"),
             CaptionPlan("epoch_0", run_dir / "checkpoints" / "epoch_0", splits=("val",))]  # captions nothing
    one = caption_with_plans(settings, rows, plans, engine="local", batch_size=1)
    assert len(builds) == 1 and len(passes(plans)) == 1
    monkeypatch.setattr(loading, "MAX_KEPT_PARAMS", 1)  # full LM tuning: no room for several copies
    assert passes(plans) == [[p] for p in plans]
    each = caption_with_plans(settings, rows, plans, engine="local", batch_size=1)
    assert len(builds) == 1 + 3
    assert one.captions == each.captions and one.captions["epoch_0"] == {}
    assert len(one.captions["baseline"]) == len(rows) and one.captions["baseline"] != one.captions["epoch_1"]


def test_kept_checkpoints_are_swapped_without_reading_files(run_dir: Path, monkeypatch) -> None:
    import mgpt_train.checkpointing as checkpointing
    from mgpt_train.inference.loading import InferenceModel, resolve_source

    model = InferenceModel(resolve_source(run_dir), device="cpu")
    epochs = [run_dir / "checkpoints" / f"epoch_{k}" for k in (0, 1)]
    expected = {p: checkpointing.read_trainable(p) for p in epochs}
    assert model.keep([None, *epochs])
    monkeypatch.setattr(checkpointing, "read_trainable", lambda path: pytest.fail(f"read {path}"))
    for path in [epochs[0], None, epochs[1], epochs[0]]:
        model.use(path)
        if path is not None:
            state = model.model.trainable_state_dict()
            assert all(torch.equal(state[k], v) for k, v in expected[path].items())
    assert model.checkpoint == epochs[0]


def test_auto_engine_is_local_for_small_cpu_evals_and_the_pool_otherwise(tiny_run_dir: Path) -> None:
    def engine(n: int, **sections) -> str:
        return choose_engine(RunSettings.from_run_dir(tiny_run_dir, sections), n)[0]

    assert engine(240) == "local"  # 60 images x 4 models on CPU
    assert engine(10**6) == "ray"
    assert engine(10, train={"use_gpu": True}) == "ray"
    assert engine(10, train={"address": "auto"}) == "ray"
    assert engine(10**6, eval={"engine": "local"}) == "local"
    assert engine(10, eval={"engine": "ray", "ray_min_captions": 0}) == "ray"


@pytest.mark.ray
def test_ray_actor_pool_gives_the_fresh_model_captions(ray_session, run_dir: Path) -> None:
    settings = _settings(run_dir).with_absolute_paths()
    rows = _rows(settings)
    plans = [CaptionPlan(n, None if n == "baseline" else run_dir / "checkpoints" / n)
             for n in ("baseline", "epoch_0", "epoch_1")]
    pool = caption_with_plans(settings, rows, plans, engine="ray", batch_size=1, actors=1)
    keys = [("test", str(r["image_id"])) for r in rows]
    for plan in plans:
        expected = _fresh_model_captions(settings, plan.checkpoint, rows, batch_size=1)
        assert [pool.captions[plan.name][k] for k in keys] == expected, plan.name
    assert pool.engine == "ray" and any(all(c) for c in pool.captions["epoch_1"].values())
