"""Ingestion at scale: driver and worker memory, time to first step, images/s vs a torch DataLoader.

Writes N photo-sized (500×375) JPEGs in the Flickr30k format (cached under ``--root``), then, for
each N (default 1,000 and 8,000), with the feature cache off (pixels decoded in the Ray Data pipeline):

1. runs the real CLI, ``uv run apps/cli train --data-dir D --set train.cache_features=false
   --set train.stop_at_step=3 --epochs 1 --no-eval`` (default preset: 2 Ray workers, EfficientNet-Lite0
   + SmolLM2), polling with psutil the peak RSS of the driver process and of each Ray Train worker,
   and reading the time to the first optimizer step from ``metrics.jsonl``;
2. measures images/s reaching the training step through the run's own pipeline (`TrainPlan` →
   `RankShards` + `PixelStage` → ``iter_batches``, one rank, no model), and through a
   ``torch.utils.data.DataLoader`` (PIL, 2 workers) doing the same decode + transform + normalise:
   over the whole pass (``img_s``, start-up included: Ray's worker processes, the DataLoader's fork)
   and over its second half (``steady_img_s``: long past start-up), with the time to the first batch.

Ends with one JSON line of the figures and ratios. Run: ``uv run python benchmarks/ingest_scale.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from mgpt_data.ray_runtime import apply_process_env

apply_process_env()  # before Ray is imported: workers run this interpreter, not a fresh `uv run` each

ROOT = Path(__file__).resolve().parents[1]


def write_photos(folder: Path, n: int, seed: int = 0) -> Path:
    """N 500×375 JPEGs (smooth colour fields + noise, ~photo-sized files) in the Flickr30k layout."""
    from PIL import Image

    images = folder / "flickr30k-images"
    csv = folder / "flickr_annotations_30k.csv"
    if csv.is_file() and len(list(images.glob("*.jpg"))) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    images.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    lines = ['raw,sentids,split,filename,img_id']
    for i in range(n):
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (xx / 500 * rng.uniform(0.3, 1) + yy / 375 * rng.uniform(0.3, 1))[..., None] / 2
        arr = c0 * (1 - t) + c1 * t + rng.normal(0, 18, (375, 500, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(images / f"{i:08d}.jpg", quality=90)
        caps = json.dumps([f"a photo number {i} with colour {k}" for k in range(5)]).replace('"', '""')
        split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
        lines.append(f'"{caps}","[{5 * i}, {5 * i + 1}, {5 * i + 2}, {5 * i + 3}, {5 * i + 4}]",{split},'
                     f'{i:08d}.jpg,{i}')
    csv.write_text("\n".join(lines) + "\n")
    return folder


class PeakRSS(threading.Thread):
    """Polls the driver's RSS and every Ray Train worker process started after ``since``."""

    def __init__(self, pid: int, since: float, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.since, self.interval = pid, since, interval
        self.driver = 0
        self.workers: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.driver = max(self.driver, psutil.Process(self.pid).memory_info().rss)
            except psutil.Error:
                pass
            for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
                try:
                    cmd = " ".join(proc.info["cmdline"] or [])
                    if "RayTrainWorker" in cmd and proc.info["create_time"] >= self.since:
                        rss = proc.memory_info().rss
                        self.workers[proc.pid] = max(self.workers.get(proc.pid, 0), rss)
                except psutil.Error:
                    continue
            self.stop.wait(self.interval)


def train_run(data_dir: Path, out: Path) -> dict:
    """The CLI's training run with the cache off: peak RSS of driver and workers, time to first step."""
    run_name = "bench"
    shutil.rmtree(out / run_name, ignore_errors=True)
    cmd = ["uv", "run", "apps/cli", "train", "--data-dir", str(data_dir), "--output-dir", str(out),
           "--run-name", run_name, "--epochs", "1", "--no-eval", "--set", "train.cache_features=false",
           "--set", "train.stop_at_step=3"]
    env = {**os.environ, "MGPT_LOG_LEVEL": "WARNING"}
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    driver_pid = _python_child(proc.pid)
    poll = PeakRSS(driver_pid, start)
    poll.start()
    _, err = proc.communicate()
    poll.stop.set()
    poll.join()
    if proc.returncode != 0:
        raise SystemExit(f"train failed ({proc.returncode}):\n{err[-3000:]}")
    records = [json.loads(line) for line in (out / run_name / "metrics.jsonl").read_text().splitlines()]
    return {"driver_peak_rss_mb": round(poll.driver / 2**20, 1),
            "worker_peak_rss_mb": sorted(round(v / 2**20, 1) for v in poll.workers.values()),
            "time_to_first_step_s": round(records[0]["time"] - start, 1),
            "steps": len(records), "data_sec_per_step": [round(r["data_sec"], 3) for r in records],
            "sec_per_it": [round(r["sec_per_it"], 3) for r in records],
            "wall_s": round(time.time() - start, 1)}


def _python_child(pid: int, timeout: float = 60.0) -> int:
    """``uv run`` starts the CLI's python as a child (after its own bytecode-compiling pythons, which
    exit): the driver is the child running ``apps/cli``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if "python" in (child.name() or "") and any("apps/cli" in a for a in child.cmdline()):
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(0.05)
    raise SystemExit(f"no CLI python under `uv run` (pid {pid}) after {timeout:.0f} s")


def ray_data_rate(data_dir: Path, batch_size: int, passes: int) -> float:
    """images/s through the training pipeline of one rank (plan → split → decode tasks → batches)."""
    import pyarrow as pa

    from mgpt_data.ray_runtime import start_ray
    from mgpt_train.collate import sort_rows
    from mgpt_train.driver_data import read_split_rows
    from mgpt_train.ingest import PixelStage, RankShards, TrainPlan
    from mgpt_train.plan import PlanSpec
    from mgpt_train.run_settings import RunSettings
    from mgpt_vision import VisionSettings, build_encoder

    settings = RunSettings.load("default", {"data": {"data_dir": str(data_dir)}})
    rows, _ = read_split_rows(settings, "train", sample_mode="grounded")
    rows = sort_rows(rows)
    spec = build_encoder(VisionSettings(), meta=True).preprocess.as_dict()
    table = pa.table({c: [str(r[c]) for r in rows] for c in ("image_id", "path", "caption")})
    iters = len(rows) // batch_size
    plan = TrainPlan(table, PlanSpec(0, batch_size, 1, 1, iters, passes, 1), "/nonexistent-run")
    start_ray(num_cpus=os.cpu_count() + 1, log_to_driver=False)
    shard = RankShards(plan, PixelStage(spec, settings.data.model_dump(mode="json"))).configure(
        {"train": plan()}, 1, None, None)[0]["train"]
    from mgpt_data import normalize_pixels

    rate = Rate()
    for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=4):
        normalize_pixels(batch["pixels"], spec)  # the consumer's share of the transform
        rate.add(len(batch["pixels"]))
    return rate.figures()


def dataloader_rate(data_dir: Path, batch_size: int, passes: int) -> float:
    """images/s of a torch DataLoader (2 workers) over the same files with the same transform."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from mgpt_data.images import Spec, decode_image, eval_pixels, normalize_pixels
    from mgpt_train.driver_data import read_split_rows
    from mgpt_train.run_settings import RunSettings
    from mgpt_vision import VisionSettings, build_encoder

    settings = RunSettings.load("default", {"data": {"data_dir": str(data_dir)}})
    rows, _ = read_split_rows(settings, "train", sample_mode="grounded")
    spec = Spec.from_dict(build_encoder(VisionSettings(), meta=True).preprocess.as_dict())
    paths = [r["path"] for r in rows]

    class Images(Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(normalize_pixels(eval_pixels(decode_image(paths[i]), spec), spec))

    loader = DataLoader(Images(), batch_size=batch_size, num_workers=2, persistent_workers=True)
    rate = Rate()
    for _ in range(passes):
        for batch in loader:
            rate.add(len(batch))
    return rate.figures()


class Rate:
    """images/s over the whole iteration (start-up included) and over its second half (``steady``: the
    pipeline long past its start, and past any buffer it filled before the first batch)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.stamps: list[tuple[float, int]] = []  # (seconds since t0, images so far) after each batch

    def add(self, n: int) -> None:
        self.stamps.append((time.perf_counter() - self.t0, (self.stamps[-1][1] if self.stamps else 0) + n))

    def figures(self) -> dict[str, float]:
        if not self.stamps:
            return {"img_s": 0.0, "steady_img_s": 0.0, "first_batch_s": 0.0}
        end, total = self.stamps[-1]
        t_half, n_half = next((t, n) for t, n in self.stamps if n >= total / 2)
        steady = (total - n_half) / (end - t_half) if end > t_half else 0.0
        return {"img_s": round(total / end, 1), "steady_img_s": round(steady, 1),
                "first_batch_s": round(self.stamps[0][0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000])
    parser.add_argument("--root", type=Path, default=ROOT / "data" / "bench_ingest")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--skip-train", action="store_true", help="only the images/s comparison")
    args = parser.parse_args()
    figures: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    for n in args.sizes:
        folder = write_photos(args.root / f"photos_{n}", n)
        entry: dict = {}
        if not args.skip_train:
            entry["train"] = train_run(folder, args.root / "runs")
        ray_data = ray_data_rate(folder, args.batch_size, args.passes)
        loader = dataloader_rate(folder, args.batch_size, args.passes)
        entry.update({f"ray_data_{k}": v for k, v in ray_data.items()})
        entry.update({f"dataloader_{k}": v for k, v in loader.items()})
        entry["ray_data_over_dataloader"] = round(ray_data["img_s"] / loader["img_s"], 3)
        entry["ray_data_over_dataloader_steady"] = round(ray_data["steady_img_s"] / loader["steady_img_s"], 3)
        figures[str(n)] = entry
        print(f"N={n}: {json.dumps(entry)}", file=sys.stderr)
    sizes = [str(n) for n in args.sizes]
    if not args.skip_train and len(sizes) >= 2:
        small, big = figures[sizes[0]]["train"], figures[sizes[-1]]["train"]
        ratio = big["driver_peak_rss_mb"] / small["driver_peak_rss_mb"]
        figures["driver_rss_ratio_big_over_small"] = round(ratio, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
