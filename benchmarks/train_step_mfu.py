"""MFU of the default training step on this machine: GEMM peak, the step in-process and under Ray.

    uv run python benchmarks/train_step_mfu.py [--preset default] [--steps 8] [--warmup 2] [--no-ray]
                                               [--threads N] [--profile] [--set section.key=value]

In one run:
1. this machine's bf16 and fp32 GEMM peak (``torch.matmul``, all threads and one thread, square
   sizes, best of several) and bf16 GEMMs of the step's own shapes (one thread);
2. the preset's real training step, built as ``train`` builds it (`prepare_run` → the feature
   cache and the training plan, `build_model(precision=)`, `collate.model_inputs`, `train_step`
   under the run's precision), in this process with all threads (``--threads``) on the micro-batches
   rank 0 of the Ray run gets (the plan's rows, expanded here with `plan.expand_epochs`);
3. the same through ``fit`` (a TorchTrainer of ``train.workers`` workers, ``threads_per_worker``
   threads each, reading the plan through Ray Data; ``metrics.jsonl``'s in-loop ``sec_per_it``);
4. model FLOPs of exactly those batches with ``torch.utils.flop_counter.FlopCounterMode``
   (forward + backward as run: a frozen LM costs input gradients only), the padding fraction of
   their token batches and the fraction of positions that carry a label.
MFU = achieved FLOP/s / the measured all-thread bf16 GEMM peak (``mfu_bf16``, wall clock). On a
shared machine other load takes cores from the step and from the peak measurement alike, so each
part also reports ``mfu_bf16_cpu_time``: FLOPs per CPU-second of the step's own process over the
one-thread peak, the utilisation of the core time it got. ``--profile`` adds the top operators of
one in-process step (``torch.profiler``). Needs a preset that trains from the feature cache (the
default does). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mgpt_data.ray_runtime import apply_process_env

apply_process_env()  # offline, quiet, Ray's settings: before torch/ray are imported

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

logger = logging.getLogger("train_step_mfu")


def gemm_gflops(dtype: torch.dtype, n: int, reps: int) -> float:
    """Best GFLOP/s of ``reps`` square n×n matmuls."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def shaped_gflops(m: int, k: int, n: int, reps: int) -> float:
    """Best GFLOP/s of a bf16 [m,k] @ [k,n] matmul."""
    a, b = torch.randn(m, k).to(torch.bfloat16), torch.randn(k, n).to(torch.bfloat16)
    torch.matmul(a, b)
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(reps))
    return 2 * m * k * n / best / 1e9


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def gemm_peaks(threads: int, sizes: list[int], reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        for label, n_threads in (("all_threads", threads), ("one_thread", 1)):
            torch.set_num_threads(n_threads)
            out.setdefault(name, {})[label] = round(max(gemm_gflops(dtype, n, reps) for n in sizes), 1)
    torch.set_num_threads(threads)
    return out


class PlanBatches:
    """Every rank's micro-batches of epoch 0, from the run's plan (`TrainPlan`) as the workers read it:
    ``model_inputs`` of rank ``r``'s rows of (step, micro), in plan order."""

    def __init__(self, plan: Any, config: Any, instructions: list[str]) -> None:
        import numpy as np

        from mgpt_train.feature_store import FeatureCache, read_features
        from mgpt_train.plan import expand_epochs

        epoch_0 = {"epoch": np.asarray([0]), "first_step": np.asarray([0]),
                   "stop_step": np.asarray([plan.spec.iters_per_epoch])}
        table = expand_epochs(epoch_0, plan.rows, plan.spec)
        self.columns = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
        self.features = read_features(FeatureCache(config.features_path, config.features_fingerprint or {}),
                                      set(config.feature_hashes or ()))
        self.instructions = instructions

    def rows(self, rank: int, step: int, micro: int) -> dict[str, Any]:
        import numpy as np

        c = self.columns
        where = np.flatnonzero((c["rank"] == rank) & (c["step"] == step) & (c["micro"] == micro))
        return {name: values[where] for name, values in c.items()}

    def inputs(self, rank: int, step: int, micro: int) -> tuple[dict[str, Any], bool]:
        from mgpt_train.collate import model_inputs

        return model_inputs(self.rows(rank, step, micro), instructions=self.instructions, spec=None,
                            features=self.features)

    def of_steps(self, rank: int, steps: range, accum: int) -> list[dict[str, Any]]:
        """The micro-batches of iterations ``steps`` of ``rank``, in the loop's order."""
        return [self.inputs(rank, step, micro)[0] for step in steps for micro in range(accum)]


def token_stats(model: Any, batches: list[dict[str, Any]]) -> dict[str, float]:
    """Padding fraction, labelled fraction and mean padded length of the token batches."""
    from mgpt_bridge.template import IGNORE_INDEX, build_batch

    cells = real = labelled = 0
    lengths = []
    for b in batches:
        t = build_batch(model.tokenizer, model.template, b["instructions"], b["answers"],
                        model.num_image_tokens)
        cells += t["attention_mask"].numel()
        real += int(t["attention_mask"].sum())
        labelled += int((t["labels"] != IGNORE_INDEX).sum())
        lengths.append(t["attention_mask"].shape[1])
    return {"padding_fraction": round(1 - real / cells, 4), "label_fraction": round(labelled / cells, 4),
            "mean_padded_len": round(statistics.mean(lengths), 1),
            "tokens_per_micro_batch": round(cells / len(batches), 1)}


def count_flops(model: Any, batches: list[dict[str, Any]], precision: str) -> list[int]:
    """FLOPs of forward + backward per micro-batch, as the step runs them (autocast, frozen parts)."""
    from mgpt_train.modeling import autocast

    out = []
    for batch in batches:
        with FlopCounterMode(display=False) as counter:
            with autocast(precision, "cpu"):
                loss = model(**batch).loss
            loss.float().backward()
        model.zero_grad(set_to_none=True)
        out.append(counter.get_total_flops())
    return out


def in_process(settings: Any, batches: PlanBatches, args: argparse.Namespace, threads: int,
               flops: dict) -> tuple[dict, Any]:
    """Time ``train_step`` here on the micro-batches rank 0 of the Ray run gets; FLOPs and token stats
    of them (into ``flops``, keyed by (rank, step)). Returns the figures and the model."""
    from mgpt_train.modeling import build_model
    from mgpt_train.optim import build_optimizer
    from mgpt_train.settings import resolve_precision
    from mgpt_train.step import train_step

    ts = settings.train
    torch.set_num_threads(threads)
    precision = resolve_precision(ts.precision, "cpu")
    model = build_model(settings, precision=precision)
    optimizer = build_optimizer(model, ts.init_lr, ts.weight_decay, tuple(ts.betas))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    model.train()
    device = torch.device("cpu")
    times, cpu_times = [], []
    for step in range(args.warmup + args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(model, optimizer, scaler, lambda micro, step=step: batches.inputs(0, step, micro),
                   grad_accum_steps=ts.grad_accum_steps, precision=precision, device=device,
                   grad_clip=ts.grad_clip)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    timed = range(args.warmup, args.warmup + args.steps)
    mine = batches.of_steps(0, timed, ts.grad_accum_steps)
    counted = count_flops(model, mine, precision)
    accum = ts.grad_accum_steps
    for k, step in enumerate(timed):  # an iteration's FLOPs: its grad_accum_steps micro-batches
        flops[(0, step)] = sum(counted[k * accum : (k + 1) * accum])
    profile = _profile(model, optimizer, scaler, batches, ts, precision, device) if args.profile else None
    sec = statistics.median(times[args.warmup:])
    cpu_sec = statistics.median(cpu_times[args.warmup:])
    gflop = sum(counted) / args.steps / 1e9
    out = {"threads": threads, "batch_size": ts.batch_size, "precision": precision,
           "sec_per_step": round(sec, 3), "cpu_sec_per_step": round(cpu_sec, 3),
           "gflop_per_step": round(gflop, 1), "gflops": round(gflop / sec, 1),
           "gflops_per_cpu_sec": round(gflop / cpu_sec, 1), **token_stats(model, mine)}
    if profile is not None:
        out["profile_top"] = profile
    return out, model


def _profile(model, optimizer, scaler, batches, ts, precision, device) -> list[list]:
    """Top operators (self CPU time share) of one step under ``torch.profiler``."""
    from torch.profiler import ProfilerActivity, profile

    from mgpt_train.step import train_step

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(model, optimizer, scaler, lambda micro: batches.inputs(0, 0, micro),
                   grad_accum_steps=ts.grad_accum_steps, precision=precision, device=device)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    logger.info("profile of one step:\n%s", events.table(sort_by="self_cpu_time_total", row_limit=25))
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    return [[e.key, round(e.self_cpu_time_total / total, 3)] for e in top]


def under_ray(settings: Any, config: Any, batches: PlanBatches, args: argparse.Namespace, out_dir: Path,
              model: Any, flops: dict) -> dict:
    """``fit`` for warmup + steps iterations: s/step from metrics.jsonl, FLOPs of all ranks' batches."""
    from mgpt_train.fit import fit
    from mgpt_train.metrics_log import read_metrics
    from mgpt_train.settings import resolve_precision

    n = args.warmup + args.steps
    t0 = time.perf_counter()
    fit(settings, out_dir / "ray_run", progress=False)
    wall = time.perf_counter() - t0
    records = read_metrics(out_dir / "ray_run" / "metrics.jsonl")
    sec = statistics.median(r["sec_per_it"] for r in records[args.warmup:])
    cpu_sec = statistics.median(r["cpu_sec"] for r in records[args.warmup:])  # rank 0's process
    ts = settings.train
    precision = resolve_precision(ts.precision, "cpu")
    timed = range(args.warmup, n)
    every, total = [], 0
    for rank in range(ts.workers):
        for step in timed:
            mine = batches.of_steps(rank, range(step, step + 1), ts.grad_accum_steps)
            every += mine
            if (rank, step) not in flops:  # rank 0's were counted in-process
                flops[(rank, step)] = sum(count_flops(model, mine, precision))
            total += flops[(rank, step)]
    gflop = total / args.steps / 1e9
    threads = config.threads
    return {"workers": ts.workers, "threads_per_worker": threads, "batch_size_per_worker": ts.batch_size,
            "precision": precision, "sec_per_step": round(sec, 3),
            "rank0_cpu_sec_per_step": round(cpu_sec, 3),
            "gflop_per_step": round(gflop, 1), "gflops": round(gflop / sec, 1),
            "gflops_per_cpu_sec": round(gflop / ts.workers / cpu_sec, 1), "fit_wall_s": round(wall, 1),
            "in_loop_s": round(sum(r["sec_per_it"] for r in records), 1), **token_stats(model, every)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=8, help="timed iterations (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gemm-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--gemm-reps", type=int, default=10, help="best of N (quiet moments)")
    parser.add_argument("--threads", type=int, default=None, help="in-process threads (default: all cores)")
    parser.add_argument("--no-ray", action="store_true", help="skip the TorchTrainer run")
    parser.add_argument("--profile", action="store_true", help="torch.profiler top operators of one step")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set train.batch_size=8 (as the CLI's --set)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("mgpt_bridge", "mgpt_vision", "mgpt_train", "mgpt_data"):
        logging.getLogger(name).setLevel(logging.WARNING)

    from mgpt_train.fit import local_cpus, prepare_run
    from mgpt_train.modeling import features_cacheable
    from mgpt_train.ray_setup import ensure_ray
    from mgpt_train.run_settings import RunSettings, parse_set_options

    threads = os.cpu_count() or 1
    peaks = gemm_peaks(threads, args.gemm_sizes, args.gemm_reps)
    logger.info("GEMM peak GFLOP/s: %s", peaks)
    overrides = parse_set_options(args.set)
    # one epoch of warmup + steps iterations: the plan the in-process part and the Ray run share
    overrides.setdefault("train", {}).update({"iters_per_epoch": args.warmup + args.steps, "max_epoch": 1})
    settings = RunSettings.load(args.preset, overrides).with_absolute_paths()
    cacheable, why_not = features_cacheable(settings)
    if not cacheable:
        raise SystemExit(f"this benchmark measures the step from the feature cache; here {why_not}")
    summary: dict[str, Any] = {"benchmark": "train_step_mfu", "preset": args.preset, "overrides": args.set,
                               "cpu_threads": threads, "steps": args.steps, "gemm_gflops": peaks}
    ensure_ray(settings.train, num_cpus=local_cpus(settings))
    with tempfile.TemporaryDirectory(prefix="mgpt-mfu-") as tmp:
        settings = settings.model_copy(update={"train": settings.train.model_copy(
            update={"output_dir": Path(tmp)})})
        config, plan, _ = prepare_run(settings, Path(tmp), resume=False)
        batches = PlanBatches(plan, config, list(settings.bridge.template.instructions))
        flops: dict = {}
        local, model = in_process(settings, batches, args, args.threads or threads, flops)
        _add_mfu(local, peaks, local["threads"], threads)
        summary["in_process"] = local
        logger.info("in-process: %s", local)
        summary["step_gemm_gflops_one_thread"] = _step_shapes(settings, local["mean_padded_len"],
                                                              args.gemm_reps)
        if not args.no_ray:
            ray_out = under_ray(settings, config, batches, args, Path(tmp), model, flops)
            _add_mfu(ray_out, peaks, ray_out["workers"] * ray_out["threads_per_worker"], threads)
            summary["ray"] = ray_out
            summary["ray_vs_in_process_gflops"] = round(ray_out["gflops"] / local["gflops"], 3)
            logger.info("ray: %s", ray_out)
    print(json.dumps(summary))


def _add_mfu(out: dict, peaks: dict, used_threads: int, cpu_threads: int) -> None:
    """``mfu_bf16``: achieved FLOP/s over the measured bf16 peak of the threads used (all of them: the
    all-thread peak); ``mfu_bf16_cpu_time``: FLOPs per CPU-second over the one-thread peak, i.e. the
    utilisation of the core time the step actually got (robust to other load on a shared machine)."""
    bf16 = peaks["bf16"]
    peak = bf16["all_threads"] if used_threads >= cpu_threads else bf16["one_thread"] * used_threads
    out["mfu_bf16"] = round(out["gflops"] / peak, 3)
    out["mfu_bf16_cpu_time"] = round(out["gflops_per_cpu_sec"] / bf16["one_thread"], 3)


def _step_shapes(settings: Any, padded_len: float, reps: int) -> dict[str, float]:
    """One-thread bf16 GFLOP/s at the LM's own GEMM shapes (tokens of one micro-batch × the layer)."""
    from mgpt_bridge import build_vlm

    lm = build_vlm(settings.vision, settings.bridge, meta=True).lm.config
    m = int(settings.train.batch_size * padded_len)
    shapes = {"qkv": (lm.hidden_size, lm.hidden_size), "mlp_up": (lm.hidden_size, lm.intermediate_size),
              "mlp_down": (lm.intermediate_size, lm.hidden_size), "lm_head": (lm.hidden_size, lm.vocab_size)}
    torch.set_num_threads(1)
    try:
        return {name: round(shaped_gflops(m, k, n, reps), 1) for name, (k, n) in shapes.items()}
    finally:
        torch.set_num_threads(os.cpu_count() or 1)


if __name__ == "__main__":
    main()
