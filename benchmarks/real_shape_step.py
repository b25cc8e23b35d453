"""Bridge training steps of the published recipe at REAL size with RANDOM weights, on one CUDA GPU.

    uv run python benchmarks/real_shape_step.py                 # needs CUDA; else "no CUDA device: skipped"
    uv run python benchmarks/real_shape_step.py --dry-run       # CPU: meta build + FLOP arithmetic only

Model: the ``minigpt4_flickr30k`` preset — EVA ViT-g/14 (257×1408, depth 39) + Q-Former (32×768) from the
BLIP-2 meta build, materialised with ``to_empty(device="cuda")`` and a random init; LLaMA-7B (Vicuna-7B v0
shapes) randomly initialised on the GPU in the preset's ``lm_dtype`` (bf16); trainable Linear(768→4096).
A step: frozen encoder (no_grad) → projector → image embeddings spliced into a synthetic token sequence →
LM loss (bf16 autocast) → backward → AdamW on the projector. Sequence per sample:
``[BOS] + 7 prompt tokens + 32 image slots + 15 prompt tokens + --answer-tokens`` (the 7/15 are the LLaMA
ids of '###Human: <Img>' and '</Img> Describe this image in detail. ###Assistant: ').

FLOPs per step (B samples, L LM tokens each; N_* = matmul parameters, i.e. without embedding tables):
    forward   2·B·(N_vit·257 + N_qformer·32 + N_lm·L)          every weight used once per token it sees
    backward  2·B·N_lm·L                                        the projector feeds the LM *input*, so the
                                                                gradient must flow back through every LM
                                                                layer — but only activation gradients: the
                                                                frozen LM's weight gradients are never made
            + 2·B·32·768·4096                                   projector weight gradient (encoder: no_grad)
    attention scores, not in the N terms: 4·B·L²·d per LM layer forward, twice that backward.
The exact count (all matmuls, convolutions and attention) comes from ``torch.utils.flop_counter`` on
one step; MFU = counted FLOPs / (s/it × the GPU's dense bf16 peak).
Seed reference (MiniGPT-4 stage 2, Vicuna-7B, batch 2, fp16 amp, RTX 3090): 0.56–0.65 s/it, 18.2 GB.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import torch

PROMPT_BEFORE, PROMPT_AFTER = 7, 15
SEED_S_PER_IT = (0.56, 0.65)
SEED_MEMORY_GB = 18.2
RTX3090_PEAK_TFLOPS = 71.0  # dense fp16/bf16 tensor, fp32 accumulate
#: dense bf16 tensor peaks (TFLOP/s) matched against torch.cuda.get_device_name(), first match wins
PEAK_TFLOPS = [
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
    ("A10", 125.0),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="minigpt4_flickr30k")
    p.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value override")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's train.batch_size")
    p.add_argument(
        "--answer-tokens",
        type=int,
        default=100,
        help="answer + end_sym tokens per sample (≈ five Flickr30k captions; cap max_txt_len)",
    )
    p.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's dense bf16 peak")
    p.add_argument("--dry-run", action="store_true", help="meta build + FLOP arithmetic on CPU, no GPU")
    return p.parse_args(argv)


def load_settings(args: argparse.Namespace):
    from mgpt_train.run_settings import RunSettings, parse_set_options

    settings = RunSettings.load(args.preset, parse_set_options(args.sets))
    if settings.bridge.load_in_8bit:
        raise SystemExit("this benchmark builds random weights; load_in_8bit is not supported here")
    return settings


# ----------------------------------------------------------------------------------------------- the model
def init_random_(module: torch.nn.Module, std: float = 0.02) -> None:
    """Random init of materialised (``to_empty``) weights: norms 1/0, other vectors 0, the rest N(0, std)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if "norm" in name.lower() and p.ndim == 1:
                p.fill_(1.0 if leaf == "weight" else 0.0)
            elif p.ndim == 1:
                p.zero_()
            else:  # matrices, conv kernels, position/class embeddings, query tokens
                p.normal_(0.0, std)
    buffers = [name for name, _ in module.named_buffers()]  # none in BLIP-2's vision/Q-Former
    if buffers:  # to_empty() leaves them as garbage: refuse rather than benchmark nonsense
        raise RuntimeError(f"buffers {buffers} would stay uninitialised after to_empty()")


def lm_config(settings):
    from transformers import AutoConfig, LlamaConfig

    from mgpt_bridge.lm_loading import LLAMA_7B_CONFIG

    if settings.bridge.lm_path is not None:
        return AutoConfig.from_pretrained(settings.bridge.lm_path, local_files_only=True)
    return LlamaConfig(**LLAMA_7B_CONFIG)


def build_real_shape_model(settings, device: str):
    """VisionLanguageModel at full size with random weights on ``device`` ("meta" = shapes only)."""
    from transformers import AutoModelForCausalLM

    from mgpt_bridge import PromptTemplate, VisionLanguageModel, apply_lm_tuning, build_projector
    from mgpt_bridge.lm_loading import torch_dtype
    from mgpt_vision import build_encoder

    encoder = build_encoder(settings.vision, meta=True)  # BLIP-2 shapes from Blip2Config() defaults
    if device != "meta":
        encoder.module.to_empty(device=device)
        init_random_(encoder.module)
    with torch.device(device):
        lm = AutoModelForCausalLM.from_config(
            lm_config(settings), dtype=torch_dtype(settings.bridge.lm_dtype)
        )
        lm = apply_lm_tuning(lm, settings.bridge)
        projector = build_projector(
            settings.bridge.projector, encoder.token_dim, lm.config.hidden_size,
            layers=settings.bridge.projector_layers,
        )
    return VisionLanguageModel(
        encoder.module,
        projector,
        lm,
        None,
        PromptTemplate(settings.bridge.template, None),
        num_encoder_tokens=encoder.num_tokens,
        token_dim=encoder.token_dim,
        encoder_name=encoder.name,
        lm_name="llama-7b-random",
        preprocess=encoder.preprocess,
    ), encoder


def synthetic_batch(vlm, batch: int, answer_tokens: int, device: str) -> dict[str, torch.Tensor]:
    """Token ids / labels / image slots of the recipe's layout; pixels at the encoder's input size."""
    n_img, size = vlm.num_image_tokens, vlm.preprocess.image_size
    start = 1 + PROMPT_BEFORE
    length = start + n_img + PROMPT_AFTER + answer_tokens
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vlm.lm.config.vocab_size, (batch, length), generator=g)
    ids[:, 0] = 1
    labels = torch.full_like(ids, -100)
    labels[:, length - answer_tokens :] = ids[:, length - answer_tokens :]
    image_mask = torch.zeros(batch, length, dtype=torch.bool)
    image_mask[:, start : start + n_img] = True
    out = {
        "input_ids": ids,
        "labels": labels,
        "image_mask": image_mask,
        "image_start": torch.tensor(start),
        "attention_mask": torch.ones_like(ids),
        "pixels": torch.randn(batch, 3, size, size, generator=g),
    }
    return (
        {k: v.to(device) for k, v in out.items()}
        if device != "meta"
        else {k: (v if k == "image_start" else torch.empty_like(v, device="meta")) for k, v in out.items()}
    )


def train_step(vlm, batch: dict[str, torch.Tensor], optimizer, *, device_type: str, on_meta: bool = False):
    """encoder (frozen, no_grad) → projector → splice → LM loss → backward → AdamW on the projector."""
    from mgpt_bridge import splice_image_embeds

    with torch.autocast(device_type, dtype=torch.bfloat16):
        image_embeds = vlm.encode_images(pixels=batch["pixels"])
        embeds = vlm.lm.get_input_embeddings()(batch["input_ids"])
        if on_meta:  # splice_image_embeds validates slot counts with .item(); meta tensors have no values
            start, n = int(batch["image_start"]), image_embeds.shape[1]
            embeds = torch.cat(
                [embeds[:, :start], image_embeds.to(embeds.dtype), embeds[:, start + n :]], dim=1
            )
            mask = None  # all ones: the same FLOPs, no data-dependent mask checks
        else:
            embeds = splice_image_embeds(embeds, batch["image_mask"], image_embeds)
            mask = batch["attention_mask"]
        loss = vlm.lm(inputs_embeds=embeds, attention_mask=mask, labels=batch["labels"]).loss
    loss.backward()
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()


# ----------------------------------------------------------------------------------------------- FLOPs
def matmul_params(module: torch.nn.Module | None) -> int:
    """Parameters used in matmuls/convs (embedding tables excluded)."""
    if module is None:
        return 0
    embeddings = {id(m.weight) for m in module.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in module.parameters() if id(p) not in embeddings)


def analytic_flops(vlm, enc_details: dict, batch: int, seq_len: int) -> dict[str, float]:
    """The formula of the module docstring, term by term."""
    n_vit = enc_details.get("vision_params", 0)
    n_qf = enc_details.get("qformer_params", 0)
    n_lm = matmul_params(vlm.lm)
    cfg = vlm.lm.config
    vit_tokens = enc_details.get("vision_tokens", 0)
    attn = 4 * batch * seq_len**2 * cfg.hidden_size * cfg.num_hidden_layers
    proj_out = vlm.lm_hidden
    terms = {
        "vit_fwd": 2 * batch * n_vit * vit_tokens,
        "qformer_fwd": 2 * batch * n_qf * vlm.num_encoder_tokens,
        "projector_fwd": 2 * batch * vlm.num_encoder_tokens * vlm.token_dim * proj_out,
        "lm_fwd": 2 * batch * n_lm * seq_len,
        "lm_attention_fwd": attn,
        "lm_bwd_activation_grads": 2 * batch * n_lm * seq_len,
        "lm_attention_bwd": 2 * attn,
        "projector_bwd_weight_grad": 2 * batch * vlm.num_encoder_tokens * vlm.token_dim * proj_out,
    }
    terms["total"] = sum(terms.values())
    return terms


def counted_flops(vlm, batch, *, device_type: str, on_meta: bool) -> int:
    """Exact matmul/conv/attention FLOPs of one step (forward + backward) by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        train_step(vlm, batch, None, device_type=device_type, on_meta=on_meta)
    vlm.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def print_flops(analytic: dict[str, float], counted: int, batch: int, seq_len: int) -> None:
    print(f"FLOPs per step (batch {batch}, {seq_len} LM tokens per sample):")
    for key, value in analytic.items():
        if key != "total":
            print(f"  {key:<27} {value / 1e12:8.3f} TFLOP")
    print(f"  {'analytic total':<27} {analytic['total'] / 1e12:8.3f} TFLOP")
    print(
        f"  {'counted (FlopCounterMode)':<27} {counted / 1e12:8.3f} TFLOP "
        f"({100 * (counted / analytic['total'] - 1):+.1f}% vs analytic)"
    )


# ----------------------------------------------------------------------------------------------- runs
def dry_run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    batch = args.batch_size or settings.train.batch_size
    vlm, encoder = build_real_shape_model(settings, "meta")
    seq_len = 1 + PROMPT_BEFORE + vlm.num_image_tokens + PROMPT_AFTER + args.answer_tokens
    d = encoder.details
    print(f"dry run on meta (no weights, no GPU): preset {args.preset}")
    print(
        f"  encoder {encoder.name}: ViT {d.get('vision_tokens')}×{d.get('vision_width')} depth "
        f"{d.get('vision_depth')} ({d.get('vision_params', 0):,} params, {d.get('dtype')}), Q-Former "
        f"{d.get('qformer_queries')}×{d.get('qformer_width')} ({d.get('qformer_params', 0):,} params, fp32)"
    )
    cfg = vlm.lm.config
    print(
        f"  LM {cfg.num_hidden_layers} layers × {cfg.hidden_size}, vocab {cfg.vocab_size}: "
        f"{vlm.lm.num_parameters():,} params ({matmul_params(vlm.lm):,} in matmuls), "
        f"{settings.bridge.lm_dtype}"
    )
    print(
        f"  trainable {vlm.num_parameters(trainable_only=True):,} (projector {vlm.token_dim}→{vlm.lm_hidden})"
    )
    weights = sum(p.numel() * p.element_size() for p in vlm.parameters())
    print(
        f"  weights as configured: {weights / 1e9:.2f} GB (+ projector grad and AdamW m, v: "
        f"{3 * 4 * vlm.num_parameters(trainable_only=True) / 1e6:.1f} MB)"
    )
    analytic = analytic_flops(vlm, d, batch, seq_len)
    counted = counted_flops(
        vlm, synthetic_batch(vlm, batch, args.answer_tokens, "meta"), device_type="cpu", on_meta=True
    )
    print_flops(analytic, counted, batch, seq_len)
    lo, hi = SEED_S_PER_IT
    print(
        f"seed reference: {lo}–{hi} s/it on an RTX 3090 ({RTX3090_PEAK_TFLOPS:.0f} TFLOP/s dense fp16) → "
        f"{counted / hi / 1e12:.1f}–{counted / lo / 1e12:.1f} TFLOP/s, MFU "
        f"{100 * counted / hi / (RTX3090_PEAK_TFLOPS * 1e12):.0f}–"
        f"{100 * counted / lo / (RTX3090_PEAK_TFLOPS * 1e12):.0f}% "
        f"(if its answers were {args.answer_tokens} tokens long)"
    )
    for peak_name, peak in (("H100 SXM", 989.4), ("RTX 3090", RTX3090_PEAK_TFLOPS)):
        print(f"  at 40% MFU an {peak_name} would take {counted / (0.4 * peak * 1e12):.3f} s/it")
    print(json.dumps({
        "benchmark": "real_shape_step", "mode": "dry_run", "preset": args.preset, "batch": batch,
        "seq_len": seq_len, "analytic_tflop": round(analytic["total"] / 1e12, 3),
        "counted_tflop": round(counted / 1e12, 3),
        "counted_vs_analytic": round(counted / analytic["total"], 4),
        "seed_mfu_rtx3090": [round(counted / hi / (RTX3090_PEAK_TFLOPS * 1e12), 3),
                             round(counted / lo / (RTX3090_PEAK_TFLOPS * 1e12), 3)],
    }))
    return 0


def gpu_peak(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


def gpu_run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    batch = args.batch_size or settings.train.batch_size
    torch.manual_seed(settings.train.seed)
    t0 = time.perf_counter()
    vlm, encoder = build_real_shape_model(settings, "cuda")
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    vlm.train()
    data = synthetic_batch(vlm, batch, args.answer_tokens, "cuda")
    seq_len = data["input_ids"].shape[1]
    counted = counted_flops(vlm, data, device_type="cuda", on_meta=False)
    analytic = analytic_flops(vlm, encoder.details, batch, seq_len)
    t = settings.train
    optimizer = torch.optim.AdamW(
        [p for p in vlm.parameters() if p.requires_grad],
        lr=t.init_lr,
        betas=tuple(t.betas),
        weight_decay=t.weight_decay,
    )
    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        loss = train_step(vlm, data, optimizer, device_type="cuda")
    times = []
    for _ in range(args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = train_step(vlm, data, optimizer, device_type="cuda")
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if not math.isfinite(float(loss)):
        print(f"warning: loss is {float(loss)} (random weights)", file=sys.stderr)
    name = torch.cuda.get_device_name()
    peak = gpu_peak(name, args.peak_tflops)
    s_it, med = statistics.mean(times), statistics.median(times)
    alloc, reserved = torch.cuda.max_memory_allocated() / 1e9, torch.cuda.max_memory_reserved() / 1e9
    print(
        f"device {name}; model built in {build_s:.1f} s; batch {batch}, {seq_len} LM tokens per sample; "
        f"{args.steps} timed steps after {args.warmup} warm-up"
    )
    print_flops(analytic, counted, batch, seq_len)
    print(f"s/it {s_it:.4f} (median {med:.4f}, min {min(times):.4f}, max {max(times):.4f})")
    print(f"samples/s {batch / s_it:.2f}; achieved {counted / s_it / 1e12:.1f} TFLOP/s")
    if peak:
        print(f"MFU {100 * counted / s_it / (peak * 1e12):.1f}% of {peak:.0f} TFLOP/s dense bf16")
    else:
        print("MFU: unknown GPU peak; pass --peak-tflops")
    print(
        f"peak memory per GPU: {alloc:.2f} GB allocated, {reserved:.2f} GB reserved (loss {float(loss):.3f})"
    )
    lo, hi = SEED_S_PER_IT
    print(
        f"vs seed (RTX 3090, batch 2, fp16 amp): {lo}–{hi} s/it → this GPU is "
        f"{lo / s_it:.2f}–{hi / s_it:.2f}× faster per step; memory {alloc:.1f} GB vs {SEED_MEMORY_GB} GB"
    )
    print(json.dumps({
        "benchmark": "real_shape_step", "mode": "gpu", "device": name, "preset": args.preset, "batch": batch,
        "seq_len": seq_len, "s_per_it": round(s_it, 4), "s_per_it_median": round(med, 4),
        "counted_tflop": round(counted / 1e12, 3), "tflops": round(counted / s_it / 1e12, 1),
        "mfu_bf16": round(counted / s_it / (peak * 1e12), 3) if peak else None, "peak_tflops": peak,
        "max_allocated_gb": round(alloc, 2), "speedup_vs_seed": [round(lo / s_it, 2), round(hi / s_it, 2)],
    }))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        return dry_run(args)
    if not torch.cuda.is_available():
        print("no CUDA device: skipped (use --dry-run for the meta build and FLOP arithmetic on CPU)")
        print(json.dumps({"benchmark": "real_shape_step", "mode": "skipped", "reason": "no CUDA device"}))
        return 0
    return gpu_run(args)


if __name__ == "__main__":
    sys.exit(main())
