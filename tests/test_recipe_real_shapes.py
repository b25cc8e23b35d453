"""The published recipe (`minigpt4_flickr30k`): seed hyper-parameters, real shapes on the meta device, and
the same code path end to end on tiny stand-ins of the same structure (BLIP-2 snapshot + LLaMA dir on disk).

`build_recipe_standins` + `recipe_overrides` are meant for reuse (e.g. a `fit` run over the stand-ins).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

RECIPE = "minigpt4_flickr30k"
SEED_INSTRUCTIONS = [
    "<Img><ImageHere></Img> Describe this image in detail.",
    "<Img><ImageHere></Img> Take a look at this image and describe what you notice.",
    "<Img><ImageHere></Img> Please provide a detailed description of the picture.",
    "<Img><ImageHere></Img> Could you describe the contents of this image for me?",
]
LLAMA_GGUF = "ggml-vocab-llama-spm.gguf"

# Stand-in sizes: the recipe's structure (ViT with CLS + ln_vision, Q-Former with 32 queries cross-attending
# every 2nd layer: `mgpt_vision.tiny_blip2_model`, LLaMA decoder), with tiny widths.
TINY_LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}


# ------------------------------------------------------------------------------------------- stand-in helpers
@dataclass(frozen=True)
class RecipeStandIns:
    """Local dirs that take the place of the user's BLIP-2 snapshot and Vicuna-7B dir."""

    blip2_dir: Path
    lm_dir: Path
    tokenizer: str  # "llama-spm" (the LLaMA vocab) or "smollm2" (fallback when the vocab is absent)


def _llama_tokenizer(vocab_dir: Path):
    """The LLaMA SentencePiece vocab (GGUF) normalised as SentencePiece does (see test_vicuna_vocab.py)."""
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(vocab_dir, gguf_file=LLAMA_GGUF)
    tok.backend_tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tok.backend_tokenizer.pre_tokenizer = None
    return tok


def _fallback_tokenizer():
    from transformers import AutoTokenizer

    from mgpt_bridge import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def build_recipe_standins(root: Path, *, seed: int = 0, llama_vocab: Path | None = None) -> RecipeStandIns:
    """Write a tiny random BLIP-2 snapshot (``Blip2Model.save_pretrained``) and a tiny random
    ``LlamaForCausalLM`` + tokenizer (the LLaMA vocab in ``llama_vocab`` when given, else SmolLM2's)
    under ``root``; point the recipe at them with `recipe_overrides`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from mgpt_vision import tiny_blip2_model

    root = Path(root)
    torch.manual_seed(seed)
    tiny_blip2_model(patch_size=14, num_query_tokens=32, seed=seed).save_pretrained(root / "blip2")

    has_llama = llama_vocab is not None
    tok = _llama_tokenizer(llama_vocab) if has_llama else _fallback_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **TINY_LLAMA
    )
    LlamaForCausalLM(config).save_pretrained(root / "llm")
    tok.save_pretrained(root / "llm")
    return RecipeStandIns(root / "blip2", root / "llm", "llama-spm" if has_llama else "smollm2")


def recipe_overrides(standins: RecipeStandIns, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``RunSettings.load(RECIPE, overrides)`` overrides that put the stand-ins in place of real weights."""
    overrides: dict[str, dict[str, Any]] = {
        "vision": {"weights_path": str(standins.blip2_dir)},
        "bridge": {"lm_path": str(standins.lm_dir)},
    }
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return overrides


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory, llama_vocab_dir: Path) -> RecipeStandIns:
    return build_recipe_standins(tmp_path_factory.mktemp("recipe_standins"), llama_vocab=llama_vocab_dir)


# ------------------------------------------------------------------------------------------------ the preset
@pytest.fixture(scope="module")
def recipe():
    from mgpt_train.run_settings import RunSettings

    return RunSettings.load(RECIPE)


def test_recipe_preset_has_the_seed_hyper_parameters(recipe) -> None:
    t, b, v = recipe.train, recipe.bridge, recipe.vision
    assert (t.init_lr, t.min_lr, t.warmup_lr, t.warmup_steps) == (3e-5, 1e-5, 1e-6, 200)
    assert (t.weight_decay, tuple(t.betas)) == (0.05, (0.9, 0.999))
    assert (t.max_epoch, t.iters_per_epoch, t.batch_size, t.seed) == (5, 500, 2, 42)
    assert (t.workers, t.use_gpu, t.grad_accum_steps) == (7, True, 1)  # 2 per GPU × 7 GPUs
    assert (v.encoder, v.freeze_vision, v.freeze_qformer) == ("blip2", True, True)
    assert (b.lm, b.projector, b.lm_tuning, b.load_in_8bit) == ("hf", "linear", "frozen", False)
    tpl = b.template
    assert (tpl.style, tpl.prompt, tpl.end_sym, tpl.max_txt_len) == (
        "minigpt4",
        "###Human: {} ###Assistant: ",
        "###",
        160,
    )
    assert list(tpl.instructions) == SEED_INSTRUCTIONS
    assert recipe.data.sample_mode == "grounded"
    assert v.weights_path is None and b.lm_path is None  # real weights are the user's local paths


def test_recipe_meta_build_has_3149824_trainable_parameters(recipe) -> None:
    from mgpt_bridge import build_vlm

    model = build_vlm(recipe.vision, recipe.bridge, meta=True)
    trainable = {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"projector.weight": (4096, 768), "projector.bias": (4096,)}
    assert model.num_parameters(trainable_only=True) == 3_149_824
    assert (model.num_image_tokens, model.token_dim, model.lm_hidden) == (32, 768, 4096)
    lm = model.lm.config
    assert (lm.num_hidden_layers, lm.hidden_size, lm.vocab_size, lm.intermediate_size) == (
        32,
        4096,
        32000,
        11008,
    )
    vision = model.encoder.vision.module.config  # Blip2VisionModel: EVA ViT-g/14 as MiniGPT-4 uses it
    assert (vision.hidden_size, vision.num_hidden_layers, vision.image_size // vision.patch_size) == (
        1408,
        39,
        16,
    )


# ---------------------------------------------------------------------------------- same code path, tiny size
def test_standins_build_through_the_recipe_and_train_only_the_projector(standins) -> None:
    from mgpt_bridge import build_vlm
    from mgpt_train.run_settings import RunSettings

    settings = RunSettings.load(RECIPE, recipe_overrides(standins))
    model = build_vlm(settings.vision, settings.bridge)
    s = model.summary()
    assert (s["encoder"], s["image_tokens"], s["token_dim"]) == ("blip2_qformer", 32, 32)
    assert s["encoder_frozen"] and s["lm_frozen"] and s["dtype"] == "bfloat16"  # the preset's lm_dtype
    assert s["trainable_params"] == 32 * 64 + 64  # Linear(qformer width → LM hidden), as 768 → 4096
    assert model.preprocess.image_size == 28 and model.preprocess.mean[0] == pytest.approx(0.48145466)
    if standins.tokenizer == "llama-spm":
        assert model.tokenizer("###", add_special_tokens=False)["input_ids"] == [835]

    pixels = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    answers = ["A man in a blue shirt rides a bicycle down a busy street.", "Two dogs play in the snow."]
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.05
    )
    model.train()
    loss = model(answers=answers, pixels=pixels, instructions=SEED_INSTRUCTIONS[:2]).loss
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {"projector.weight", "projector.bias"}
    assert all(float(p.grad.abs().sum()) > 0 for n, p in model.named_parameters() if n in grads)
    optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"projector.weight", "projector.bias"}
    assert not model.encoder.training and not model.lm.training  # frozen parts stay in eval mode


# --------------------------------------------------------------------------- the recipe trained end to end
@pytest.mark.ray
def test_recipe_trains_end_to_end_on_cpu_with_standins(standins, ray_session, tmp_path) -> None:
    """The minigpt4_flickr30k preset through `fit` (Ray Train, the same code path as on GPUs) with tiny
    BLIP-2 / LLaMA stand-ins, a synthetic Flickr-format set and CPU-sized schedule knobs."""
    import json

    import torch

    from mgpt_data import write_synthetic_scenes
    from mgpt_train.checkpointing import list_checkpoints, read_trainable
    from mgpt_train.fit import fit
    from mgpt_train.run_settings import RunSettings

    data_dir = write_synthetic_scenes(tmp_path / "data", 12, seed=3, image_size=64, progress=False)
    settings = RunSettings.load(
        RECIPE,
        recipe_overrides(
            standins,
            vision={"dtype": "float32"},  # fp16 ViT is for GPUs
            bridge={"lm_dtype": "float32"},
            data={"data_dir": str(data_dir)},
            train={
                "use_gpu": False,
                "workers": 2,
                "threads_per_worker": 1,
                "iters_per_epoch": 2,
                "max_epoch": 2,
                "warmup_steps": 1,
                "precision": "fp32",
                "output_dir": str(tmp_path / "runs"),
            },
        ),
    )
    run_dir = tmp_path / "runs" / "recipe"
    fit(settings, run_dir, progress=False)

    checkpoints = list_checkpoints(run_dir)
    assert [p.name for p in checkpoints] == ["epoch_0", "epoch_1"]
    trained = read_trainable(checkpoints[-1])
    assert set(trained) == {"projector.weight", "projector.bias"}
    assert trained["projector.weight"].shape[1] == 32  # tiny Q-Former width feeds the projector
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (
        summary["trainable_params"] == trained["projector.weight"].numel() + trained["projector.bias"].numel()
    )
