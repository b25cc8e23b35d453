"""The LM's attention kernel on CPU: ``sdpa`` vs ``eager`` for the preset's bf16 training step.

    uv run python benchmarks/attention_kernel.py [--preset default] [--reps 6] [--threads 1]

For each ``bridge.attn_implementation``, builds the preset's model as the workers do
(`build_model(precision="bf16")`) and an fp32 reference, then on fixed micro-batches (random
encoder features, captions of the synthetic scenes' length, ``train.batch_size`` rows) times the
forward + backward under bf16 autocast in CPU seconds of this process (less sensitive to other load
than wall time; median of ``--reps`` after one warm-up, on batch 0) and takes the mean
``|bf16 loss - fp32 loss|`` over ``--error-batches`` batches.
The kernels alternate twice (sdpa, eager, sdpa, eager) so drift in the machine's load shows. Ends
with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from mgpt_data.ray_runtime import apply_process_env

apply_process_env()  # offline: before transformers is imported

import torch  # noqa: E402

ANSWERS = ["a red square on the left and a blue circle", "two green triangles at the top",
           "a yellow star in the middle", "a purple circle below a red square"]


def _batch(model, n: int, seed: int) -> dict:
    features = torch.randn(n, model.num_encoder_tokens, model.token_dim,
                           generator=torch.Generator().manual_seed(seed))
    return {"features": features, "answers": [ANSWERS[(k + seed) % len(ANSWERS)] for k in range(n)],
            "instructions": [model.template.instructions[0]] * n}


def measure(preset: str, attn: str, reps: int, error_batches: int) -> dict:
    from mgpt_train.modeling import autocast, build_model
    from mgpt_train.run_settings import RunSettings

    settings = RunSettings.load(preset, {"bridge": {"attn_implementation": attn}})
    reference, model = build_model(settings), build_model(settings, precision="bf16")
    n = settings.train.batch_size
    errors = []
    with torch.no_grad():
        for seed in range(error_batches):
            batch = _batch(model, n, seed)
            with autocast("bf16", "cpu"):
                low = float(model(**batch).loss)
            errors.append(abs(low - float(reference(**batch).loss)))
    batch = _batch(model, n, 0)
    times = []
    for _ in range(reps + 1):
        c0 = time.process_time()
        with autocast("bf16", "cpu"):
            loss = model(**batch).loss
        loss.float().backward()
        model.zero_grad(set_to_none=True)
        times.append(time.process_time() - c0)
    return {"attn": attn, "cpu_sec": round(statistics.median(times[1:]), 4),
            "abs_err_vs_fp32": round(statistics.mean(errors), 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--error-batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one worker's share here)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kernels = ("sdpa", "eager", "sdpa", "eager")
    rows = [measure(args.preset, attn, args.reps, args.error_batches) for attn in kernels]
    for r in rows:
        print(f"{r['attn']:<6} {r['cpu_sec']:.3f} CPU s per fwd+bwd, "
              f"mean |bf16 - fp32 loss| {r['abs_err_vs_fp32']:.5f}")
    best = {a: min(r["cpu_sec"] for r in rows if r["attn"] == a) for a in ("sdpa", "eager")}
    err = {a: rows[[r["attn"] for r in rows].index(a)]["abs_err_vs_fp32"] for a in ("sdpa", "eager")}
    print(json.dumps({
        "benchmark": "attention_kernel", "preset": args.preset, "threads": args.threads, "reps": args.reps,
        "error_batches": args.error_batches,
        "runs": rows, "cpu_sec_best": best,
        "cpu_ratio_sdpa_over_eager": round(best["sdpa"] / best["eager"], 3),
        "err_ratio_sdpa_over_eager": round(err["sdpa"] / max(err["eager"], 1e-12), 2),
    }))


if __name__ == "__main__":
    main()
