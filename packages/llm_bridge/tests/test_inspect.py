"""`inspect_model`: the real recipe's shapes on the meta device, the tiny and default stacks for real."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mgpt_bridge import BridgeSettings, format_report, inspect_model
from mgpt_vision import VisionSettings

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
RECIPE = "minigpt4_flickr30k"
TRAINABLE_7B = 4096 * 768 + 4096  # Linear(768→4096): 3,149,824


def inspect_preset(name: str, *, meta: bool = False, bridge: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset's [vision] and [bridge] tables (plus ``bridge`` overrides) through `inspect_model`."""
    tables = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    vision = VisionSettings(**tables.get("vision", {}))
    bridge_settings = BridgeSettings(**{**tables.get("bridge", {}), **(bridge or {})})
    return inspect_model(vision, bridge_settings, meta=meta, preset=name)


def test_meta_recipe_reports_the_real_shapes() -> None:
    report = inspect_preset(RECIPE, meta=True)
    params = report["params"]
    assert params["trainable"] == TRAINABLE_7B == 3_149_824
    assert params["trainable_tensors"] == {"projector.weight": [4096, 768], "projector.bias": [4096]}
    assert params["trainable_by_part"] == {"projector": TRAINABLE_7B}
    enc, lm = report["encoder"], report["lm"]
    d = enc["details"]
    assert (d["vision_tokens"], d["vision_width"], d["vision_depth"], d["vision_heads"]) == (
        257,
        1408,
        39,
        16,
    )
    assert (d["qformer_queries"], d["qformer_width"]) == (32, 768)
    assert (enc["name"], enc["tokens"], enc["width"], enc["frozen"]) == ("blip2_qformer", 32, 768, True)
    assert (lm["layers"], lm["hidden"], lm["vocab"], lm["model_type"]) == (32, 4096, 32000, "llama")
    assert lm["params"] == 6_738_415_616  # LLaMA-7B
    assert (lm["dtype"], lm["tuning"], lm["frozen"]) == ("bfloat16", "frozen", True)
    assert report["image_tokens"] == 32 and report["projector"]["layers"] == [[768, 4096]]
    assert params["total"] == enc["params"] + lm["params"] + TRAINABLE_7B
    mem = report["memory_bytes"]["total"]
    assert mem["bf16"] == mem["fp16"] == 2 * params["total"] and mem["fp32"] == 4 * params["total"]
    # int8: LM linear weights (all but lm_head and the embeddings) drop to one byte
    lm_linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert report["memory_bytes"]["lm"]["int8"] == 2 * lm["params"] - lm_linear
    assert report["meta"] is True and report["device"] == "meta"


def test_tiny_builds_real_modules() -> None:
    report = inspect_preset("tiny")
    proj = report["projector"]
    assert report["meta"] is False and report["device"] == "cpu"
    assert report["encoder"]["name"] == "tiny_cnn" and report["encoder"]["frozen"] is True
    assert report["lm"]["name"] == "tiny-llama" and report["lm"]["frozen"] is True
    assert (
        report["params"]["trainable"]
        == proj["params"]
        == proj["in_features"] * proj["out_features"] + proj["out_features"]
    )
    assert f"number of trainable parameters: {proj['params']}" in format_report(report)


def test_set_overrides_reach_the_model() -> None:
    report = inspect_preset(RECIPE, meta=True, bridge={"projector": "mlp"})
    assert report["projector"]["layers"] == [[768, 4096], [4096, 4096]]
    assert report["params"]["trainable"] == TRAINABLE_7B + 4096 * 4096 + 4096


def test_default_loads_real_weights_and_trains_only_the_bridge() -> None:
    report = inspect_preset("default")  # EfficientNet-Lite0 + SmolLM2-135M, offline
    assert (
        report["encoder"]["name"] == "tf_efficientnet_lite0"
        and report["lm"]["name"] == "smollm2-135m-instruct"
    )
    assert (report["encoder"]["tokens"], report["encoder"]["width"], report["lm"]["hidden"]) == (
        16,
        1280,
        576,
    )
    assert report["params"]["trainable_by_part"] == {"projector": 1280 * 576 + 576}
    assert report["encoder"]["frozen"] and report["lm"]["frozen"] and report["lm"]["dtype"] == "float32"




def test_memory_plan_of_the_7b_recipe_under_ddp_and_fsdp() -> None:
    """Weights + gradients + AdamW moments per GPU: fsdp splits all but the frozen encoder over the GPUs."""
    report = inspect_preset(RECIPE, meta=True)
    tables = tomllib.loads((CONFIGS / f"{RECIPE}.toml").read_text())
    from mgpt_bridge.memory_plan import memory_plan

    plan = memory_plan(VisionSettings(**tables["vision"]), BridgeSettings(**tables["bridge"]), 8)
    rows = {r["lm_tuning"]: r for r in plan["rows"]}
    assert set(rows) == {"frozen", "lora", "full"} and plan["gpus"] == 8
    lm_bytes, projector_bytes = 2 * report["lm"]["params"], 4 * TRAINABLE_7B  # bf16 LM, fp32 projector
    encoder_bytes = report["memory_bytes"]["encoder"]["configured"]
    assert rows["frozen"]["trainable"] == projector_bytes
    assert rows["full"]["trainable"] == projector_bytes + lm_bytes
    for row in rows.values():
        assert row["frozen_encoder"] == encoder_bytes
        assert row["ddp"] == row["weights"] + 3 * row["trainable"]  # every GPU holds it all
        sharded = row["weights"] - encoder_bytes + 3 * row["trainable"]
        assert row["fsdp"] == encoder_bytes + -(-sharded // 8) + row["largest_unit"]
    assert rows["full"]["ddp"] > 50 * 2**30 > 10 * 2**30 > rows["full"]["fsdp"]  # 52.5 GiB vs 9.0 GiB
