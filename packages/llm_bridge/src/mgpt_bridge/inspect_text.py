"""Human-readable text for the ``inspect`` report (the ``--json`` form is the report dict itself)."""

from __future__ import annotations

from typing import Any


def _n(value: int) -> str:
    return f"{value:,}"


def _gib(value: int) -> str:
    """Bytes in binary units: GiB from 1 GiB up, MiB below, KiB for tiny models."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value / 1024:.1f} KiB"


def _state(frozen: bool) -> str:
    return "frozen" if frozen else "trainable"


def _encoder_lines(enc: dict[str, Any]) -> list[str]:
    lines = [
        f"encoder      {enc['name']}: {enc['tokens']} tokens × {enc['width']}, {_n(enc['params'])} params, "
        f"{_state(enc['frozen'])}, {enc['dtype']}"
    ]
    d = enc["details"]
    if "vision_width" in d:
        lines.append(
            f"  vision     {d['vision_tokens']} tokens × {d['vision_width']}, depth {d['vision_depth']}, "
            f"{d['vision_heads']} heads, {_n(d['vision_params'])} params, "
            f"{'frozen' if d.get('freeze_vision', True) else 'trainable'}"
        )
    if "qformer_queries" in d:
        lines.append(
            f"  q-former   {d['qformer_queries']} queries × {d['qformer_width']}, "
            f"depth {d['qformer_depth']}, "
            f"{_n(d['qformer_params'])} params, {'frozen' if d.get('freeze_qformer', True) else 'trainable'}"
        )
    if "group" in d:
        lines.append(f"  grouping   {d['group']} neighbouring patch tokens concatenated (no Q-Former)")
    if d.get("snapshot"):
        lines.append(f"  weights    {d['snapshot']}")
    return lines


def format_report(report: dict[str, Any]) -> str:
    """Multi-line summary: encoder, projector, LM, image tokens, parameter counts, weight memory."""
    enc, proj, lm, params = report["encoder"], report["projector"], report["lm"], report["params"]
    where = (
        "meta device: shapes only, no weights read"
        if report["meta"]
        else f"weights loaded on {report['device']}"
    )
    layers = " → ".join(f"{i}→{o}" for i, o in proj["layers"])
    lines = [f"mgpt model · preset {report['preset']} ({where})", *_encoder_lines(enc)]
    lines.append(
        f"projector    {proj['label']} {proj['type']}({layers}): {_n(proj['params'])} params, "
        f"{_state(not proj['trainable'])}, {proj['dtype']}, tokens {proj['tokens_in']} → {proj['tokens_out']}"
    )
    lines.append(
        f"LM           {lm['name']} ({lm['model_type']}): {lm['layers']} layers, hidden {lm['hidden']}, "
        f"vocab {lm['vocab']}, {_n(lm['params'])} params, {lm['dtype']}, tuning {lm['tuning']}"
    )
    if lm["path"] is None and lm["tokenizer"] is None:
        lines.append("  (built-in LLaMA-7B shapes: no lm_path given, so no weights and no tokenizer)")
    lines.append(f"image tokens {report['image_tokens']} per image, spliced into the LM input")
    share = 100 * params["trainable"] / params["total"] if params["total"] else 0.0
    by_part = ", ".join(f"{k} {_n(v)}" for k, v in params["trainable_by_part"].items()) or "none"
    lines.append(
        f"parameters   total {_n(params['total'])} · trainable {_n(params['trainable'])} ({share:.3f}%: "
        f"{by_part}) · frozen {_n(params['frozen'])}"
    )
    lines.append(f"number of trainable parameters: {params['trainable']}")
    mem = report["memory_bytes"]
    lines.append(
        "weights      " + "  ".join(f"{k} {_gib(mem['total'][k])}" for k in ("fp32", "bf16", "fp16", "int8"))
    )
    lines.append(f"  as built   {_gib(mem['total']['configured'])}")
    for part in ("encoder", "projector", "lm"):
        if part in mem:
            row = mem[part]
            lines.append(
                f"  {part:<10} " + "  ".join(f"{k} {_gib(row[k])}" for k in ("fp32", "bf16", "fp16", "int8"))
            )
    lines.append(
        "  (int8 = load_in_8bit: LM linear weights 1 byte, lm_head/embeddings/norms and encoder 2 bytes)"
    )
    plan = report.get("memory_plan")
    if plan:
        lines.append(f"training memory per GPU over {plan['gpus']} GPU(s) ({plan['counted']}):")
        for row in plan["rows"]:
            lines.append(f"  LM {row['lm_tuning']:<7} trainable {_gib(row['trainable'])}: "
                         f"ddp {_gib(row['ddp'])}  fsdp {_gib(row['fsdp'])}")
    t = report["template"]
    lines.append(
        f"template     {t['style']} {t['prompt']!r}, end_sym {t['end_sym']!r}, "
        f"max_txt_len {t['max_txt_len']}, "
        f"{t['instructions']} instruction(s)"
    )
    return "\n".join(lines)
