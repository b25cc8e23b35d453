"""Model variants through the real training path (tiny preset): fit → checkpoint → evaluate_run, the PEFT
adapter a training checkpoint writes, `train.init_from` and `train.parallel = "fsdp"`.

Default suite (four short fits, ~1 min each on 2 quiet cores):
- ``qformer-ldpv2-lora``: a tiny BLIP-2 stand-in with its Q-Former trained (pixels streamed: no cache),
  MobileVLM's LDPv2 (16 Q-Former tokens → 4), LoRA on the LM; 1 worker;
- ``mlp3-full``: the paper's 3-layer MLP, the LM fully tuned; 2 workers (DDP), and the same under FSDP2;
- ``init_from`` with lr 0 from the first run: the trainable weights come back bit for bit.
The full matrix (every projector, each LM tuning, the Q-Former), each stopped and resumed against an
uninterrupted run (losses ``==``), is ``-m slow`` (test_variants_slow.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from mgpt_train.checkpointing import read_checkpoint_dir, read_trainable
from mgpt_train.fit import fit
from mgpt_train.metrics_log import read_metrics

pytestmark = [pytest.mark.ray, pytest.mark.timeout(1800)]

STEPS = 2


@pytest.fixture(scope="session")
def blip2_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BLIP-2 snapshot with 16 query tokens (a 4×4 grid, so LDP can halve it)."""
    from mgpt_vision import tiny_blip2_model

    path = tmp_path_factory.mktemp("blip2") / "snapshot"
    tiny_blip2_model(num_query_tokens=16).save_pretrained(path)
    return path


def variant_overrides(name: str, blip2: Path) -> dict[str, dict[str, Any]]:
    """Settings of each variant on top of the test preset (shared with the slow matrix)."""
    qformer = {"encoder": "blip2", "weights_path": str(blip2), "freeze_qformer": False, "num_tokens": None}
    table: dict[str, dict[str, dict[str, Any]]] = {
        "linear": {},
        "mlp2": {"bridge": {"projector": "mlp", "projector_layers": 2}},
        "mlp3": {"bridge": {"projector": "mlp", "projector_layers": 3}},
        "ldp": {"vision": {"num_tokens": 16}, "bridge": {"projector": "ldp"}},
        "ldpv2": {"vision": {"num_tokens": 16}, "bridge": {"projector": "ldpv2"}},
        "lora": {"bridge": {"lm_tuning": "lora", "lora_r": 4}},
        "full": {"bridge": {"lm_tuning": "full"}},
        "qformer": {"vision": qformer},
        "qformer-ldpv2-lora": {"vision": qformer, "bridge": {"projector": "ldpv2", "lm_tuning": "lora",
                                                             "lora_r": 4}},
        "mlp3-full": {"bridge": {"projector": "mlp", "projector_layers": 3, "lm_tuning": "full"}},
    }
    return table[name]


def variant_settings(make_settings, out: Path, name: str, blip2: Path, **train: Any):
    sections = variant_overrides(name, blip2)
    train = {"workers": 1, "max_epoch": 1, "iters_per_epoch": STEPS, **train}
    return make_settings(out, **{**sections, "train": {**sections.get("train", {}), **train},
                                 "eval": {"bootstrap_resamples": 20}})


def losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl")]


@pytest.fixture(scope="module")
def qformer_lora_run(ray_session, make_settings, blip2_standin, tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    settings = variant_settings(make_settings, out, "qformer-ldpv2-lora", blip2_standin)
    fit(settings, out / "qformer-ldpv2-lora", progress=False)
    return settings, out / "qformer-ldpv2-lora"


@pytest.fixture(scope="module")
def mlp3_full_ddp(ray_session, make_settings, blip2_standin, tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    settings = variant_settings(make_settings, out, "mlp3-full", blip2_standin, workers=2)
    fit(settings, out / "ddp", progress=False)
    return settings, out / "ddp"


@pytest.mark.slow  # trains its own runs: minutes on 2 cores
def test_qformer_ldpv2_lora_trains_checkpoints_what_it_trains_and_evaluates(qformer_lora_run) -> None:
    from mgpt_bridge import read_contents
    from mgpt_train.evaluate import evaluate_run

    settings, run_dir = qformer_lora_run
    assert [r["global_step"] for r in read_metrics(run_dir / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert all(math.isfinite(x) for x in losses(run_dir))
    contents = read_contents(run_dir / "checkpoints" / "epoch_0" / "trainable.safetensors")
    assert (contents.projector, contents.lm_tuning, contents.lora_r, contents.encoder_trained) == (
        "ldpv2", "lora", 4, ("qformer",))
    summary = (run_dir / "summary.json").read_text()
    assert '"features_cache": null' in summary  # a trained Q-Former streams pixels
    initial = {k: v.clone() for k, v in _initial(settings).items()}
    trained = read_trainable(run_dir / "checkpoints" / "epoch_0")
    moved = {k.split(".")[0] + ("/lora" if "lora_" in k else "")
             for k in trained if not trained[k].equal(initial[k])}
    assert {"projector", "encoder", "lm/lora"} <= moved  # the Q-Former, the LDPv2 and the LoRA all trained
    result = evaluate_run(run_dir, gallery=False)
    assert [r["name"] for r in result.rows] == ["baseline", "epoch_0"]
    assert all(r["scores"]["CIDEr"] is not None for r in result.rows)


def _initial(settings) -> dict[str, torch.Tensor]:
    from mgpt_train.modeling import build_model

    return build_model(settings).trainable_state_dict()


@pytest.mark.slow  # trains its own runs: minutes on 2 cores
def test_the_adapter_folder_of_a_training_checkpoint_loads_with_peft(qformer_lora_run) -> None:
    from peft import PeftModel

    from mgpt_bridge import load_lm
    from mgpt_train.modeling import build_model

    settings, run_dir = qformer_lora_run
    checkpoint = run_dir / "checkpoints" / "epoch_0"
    ours = build_model(settings, checkpoint=checkpoint).eval()
    base, _ = load_lm(settings.bridge)  # a freshly built base LM, as a user of the adapter would have
    peft_lm = PeftModel.from_pretrained(base, checkpoint / "adapter").eval()
    ids = torch.randint(5, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = ours.lm(input_ids=ids).logits, peft_lm(input_ids=ids).logits
        untuned = load_lm(settings.bridge)[0].eval()(input_ids=ids).logits
    assert not torch.allclose(expected, untuned)  # the trained LoRA changes the logits
    assert torch.allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.slow  # trains its own runs: minutes on 2 cores
def test_init_from_with_lr_0_reproduces_the_source_weights_bit_for_bit(
        qformer_lora_run, make_settings, blip2_standin, tmp_path) -> None:
    source_settings, source_dir = qformer_lora_run
    settings = variant_settings(make_settings, tmp_path, "qformer-ldpv2-lora", blip2_standin, init_lr=0.0,
                                warmup_lr=0.0, min_lr=0.0, init_from=str(source_dir), seed=7)
    fit(settings, tmp_path / "stage2", progress=False)
    recorded = read_checkpoint_dir(tmp_path / "stage2" / "checkpoints" / "epoch_0")
    source = read_trainable(source_dir / "checkpoints" / "epoch_0")
    assert set(recorded[0]) == set(source)
    assert all(torch.equal(recorded[0][k], source[k]) for k in source)
    assert recorded[1]["global_step"] == STEPS and recorded[1]["optimizer"]["state"]  # fresh step count
    saved = (tmp_path / "stage2" / "settings.json").read_text()
    assert str(source_dir / "checkpoints" / "epoch_0") in saved  # the run dir resolved to its checkpoint


@pytest.mark.slow  # trains its own runs: minutes on 2 cores
def test_init_from_a_checkpoint_that_does_not_fit_fails_in_one_line(
        qformer_lora_run, make_settings, tmp_path) -> None:
    _, source_dir = qformer_lora_run
    settings = make_settings(tmp_path, train={"init_from": str(source_dir)})
    with pytest.raises(ValueError) as err:
        fit(settings, tmp_path / "mismatch", progress=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"init_from {source_dir / 'checkpoints' / 'epoch_0'}")
    assert ("checkpoint holds an ldpv2 projector and LoRA r=4 on q_proj,v_proj and a trained encoder "
            "qformer; this model has a linear projector and a frozen LM and a frozen encoder") in message
    assert not (tmp_path / "mismatch" / "checkpoints").exists()  # refused before Ray started anything


@pytest.mark.slow  # trains its own runs: minutes on 2 cores
def test_mlp3_with_a_fully_tuned_lm_trains_under_ddp(mlp3_full_ddp) -> None:
    settings, run_dir = mlp3_full_ddp
    trainable, state = read_checkpoint_dir(run_dir / "checkpoints" / "epoch_0")
    n_lm = sum(v.numel() for k, v in trainable.items() if k.startswith("lm."))
    assert n_lm == sum(p.numel() for p in _lm_params(settings))  # every LM weight is in the checkpoint
    assert {k for k in trainable if k.startswith("projector.")} == {f"projector.{i}.{p}" for i in (0, 2, 4)
                                                                    for p in ("weight", "bias")}
    assert state["world_size"] == 2


def _lm_params(settings):
    from mgpt_bridge import load_lm

    return list(load_lm(settings.bridge)[0].parameters())


@pytest.mark.slow  # trains its own runs: minutes on 2 cores
def test_fsdp_matches_ddp_and_writes_the_same_checkpoint_files(mlp3_full_ddp, make_settings, blip2_standin,
                                                                tmp_path) -> None:
    ddp_settings, ddp_dir = mlp3_full_ddp
    settings = variant_settings(make_settings, tmp_path, "mlp3-full", blip2_standin, workers=2,
                                parallel="fsdp")
    fit(settings, tmp_path / "fsdp", progress=False)
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(ddp_dir), rel=1e-5)
    sharded, sharded_state = read_checkpoint_dir(tmp_path / "fsdp" / "checkpoints" / "epoch_0")
    replicated, replicated_state = read_checkpoint_dir(ddp_dir / "checkpoints" / "epoch_0")
    assert {k: v.shape for k, v in sharded.items()} == {k: v.shape for k, v in replicated.items()}
    assert all(torch.allclose(sharded[k], replicated[k], rtol=1e-4, atol=1e-6) for k in replicated)
    moments = sharded_state["optimizer"]["state"]
    assert set(moments) == set(replicated_state["optimizer"]["state"])  # torch's own index layout, full size
    assert all(moments[i]["exp_avg"].shape == replicated_state["optimizer"]["state"][i]["exp_avg"].shape
               for i in moments)
    from mgpt_train.modeling import build_model

    build_model(settings, checkpoint=tmp_path / "fsdp" / "checkpoints" / "epoch_0")  # loads strictly


# ------------------------------------------------------------------------------------------ the full matrix
MATRIX = ["linear", "mlp2", "mlp3", "ldp", "ldpv2", "lora", "full", "qformer"]
# fsdp matters where the LM (or the Q-Former) trains; the bridge-only kinds run under ddp only
SHARDED = ["lora", "full", "qformer"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "parallel"), [(n, "ddp") for n in MATRIX] + [(n, "fsdp") for n in SHARDED])
def test_variant_stopped_and_resumed_equals_an_uninterrupted_run_then_evaluates(
        ray_session, make_settings, blip2_standin, tmp_path, name: str, parallel: str) -> None:
    """fit 3 steps straight; fit to step 2, stop, resume to 3: the same losses (``==``) and weights; eval."""
    from mgpt_train.evaluate import evaluate_run

    workers = 2 if parallel == "fsdp" else 1
    common = {"iters_per_epoch": 3, "workers": workers, "parallel": parallel}
    straight = variant_settings(make_settings, tmp_path, name, blip2_standin, **common)
    fit(straight, tmp_path / "straight", progress=False)
    stopped = variant_settings(make_settings, tmp_path, name, blip2_standin, stop_at_step=2, **common)
    fit(stopped, tmp_path / "resumed", progress=False)
    assert [r["global_step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl")] == [1, 2]
    fit(straight, tmp_path / "resumed", resume=True, progress=False)
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")
    resumed = read_trainable(tmp_path / "resumed" / "checkpoints" / "epoch_0")
    reference = read_trainable(tmp_path / "straight" / "checkpoints" / "epoch_0")
    assert set(resumed) == set(reference) and all(resumed[k].equal(reference[k]) for k in reference)
    result = evaluate_run(tmp_path / "resumed", gallery=False)
    assert [r["name"] for r in result.rows] == ["baseline", "epoch_0"]
