"""Images/s of decode + preprocess: Ray Data (actor pool) vs a torch DataLoader (PIL, 2 workers).

Both paths run the same per-image work (``mgpt_data.images``: decode → RGB → resize → normalise,
EfficientNet-Lite0's spec) over the same JPEGs, a synthetic set written to a temp dir. Each path is
timed over ``--passes`` full passes, the first including its start-up (Ray tasks, Ray actor pool,
DataLoader worker processes); a single-process loop is the baseline.
Run: ``uv run python benchmarks/data_decode.py``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from mgpt_data.ray_runtime import apply_process_env, start_ray

apply_process_env()  # before anything imports ray

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from mgpt_data.flickr30k import read_rows  # noqa: E402
from mgpt_data.images import decode_image  # noqa: E402
from mgpt_data.iteration import eval_dataset  # noqa: E402
from mgpt_data.preprocess import ImagePreprocessor  # noqa: E402
from mgpt_data.synthetic import write_synthetic_scenes  # noqa: E402

SPEC = {
    "image_size": 224,
    "mean": [127 / 255] * 3,
    "std": [128 / 255] * 3,
    "interpolation": "bicubic",
    "resize_mode": "squash",
}


class JpegDataset(Dataset):
    """PIL decode + the same transform, one image per item (the classic DataLoader recipe)."""

    def __init__(self, rows: list[dict], spec: dict) -> None:
        self.rows = rows
        self.pre = ImagePreprocessor(spec)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        row = self.rows[i]
        return torch.from_numpy(self.pre.transform(decode_image(row["path"]), row["image_id"]))


def time_passes(run, n_images: int, passes: int) -> list[dict[str, float]]:
    """Each pass: img/s over the whole pass and seconds to the first batch (start-up latency)."""
    out = []
    for _ in range(passes):
        start = time.perf_counter()
        first_at, seen = None, 0
        for n in run():
            seen += n
            if first_at is None:
                first_at = time.perf_counter() - start
        total = time.perf_counter() - start
        assert seen == n_images, (seen, n_images)
        out.append({"rate": seen / total, "first_s": first_at})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=320, help="side of the synthetic JPEGs")
    parser.add_argument("--workers", type=int, default=2, help="Ray tasks/actors = DataLoader workers")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    bs, workers = args.batch_size, args.workers

    with tempfile.TemporaryDirectory(prefix="mgpt_bench_") as tmp:
        data_dir = write_synthetic_scenes(
            Path(tmp) / "syn", args.images, seed=0, image_size=args.image_size, progress=False
        )
        rows = read_rows(data_dir, sample_mode="grounded")

        def local():
            pre = ImagePreprocessor(SPEC)
            for i in range(0, len(rows), bs):
                yield len(pre({"path": np.asarray([r["path"] for r in rows[i : i + bs]])})["pixels"])

        def loader():
            dl = DataLoader(JpegDataset(rows, SPEC), batch_size=bs, num_workers=workers)
            return (len(batch) for batch in dl)

        def ray_data(compute: str):
            def run():
                ds = eval_dataset(
                    rows, SPEC, batch_size=bs, concurrency=workers, num_cpus=1, block_rows=bs, compute=compute
                )
                return (len(b["pixels"]) for b in ds.iter_batches(batch_size=bs, batch_format="numpy"))

            return run

        results = {
            "single process (no workers)": time_passes(local, len(rows), args.passes),
            f"torch DataLoader, {workers} workers": time_passes(loader, len(rows), args.passes),
        }
        start_ray(num_cpus=workers, log_to_driver=False)
        results[f"Ray Data, {workers} tasks"] = time_passes(ray_data("tasks"), len(rows), args.passes)
        results[f"Ray Data, actor pool of {workers}"] = time_passes(
            ray_data("actors"), len(rows), args.passes
        )

    print(
        f"{len(rows)} JPEGs {args.image_size}px -> {SPEC['image_size']}px float32 [3,S,S], batch {bs}, "
        f"{args.passes} passes (each a fresh DataLoader / Ray execution; pass 1 includes first start-up)"
    )
    print(f"  {'path':<36} {'pass 1 img/s':>13} {'best pass img/s':>16} {'1st batch after':>16}")
    for name, passes in results.items():
        best = max(passes, key=lambda p: p["rate"])
        print(f"  {name:<36} {passes[0]['rate']:13.1f} {best['rate']:16.1f} {best['first_s']:15.2f}s")
    dl = results[f"torch DataLoader, {workers} workers"]
    for name in (f"Ray Data, {workers} tasks", f"Ray Data, actor pool of {workers}"):
        r = results[name]
        print(
            f"  ratio {name} / DataLoader: pass 1 {r[0]['rate'] / dl[0]['rate']:.2f}x, "
            f"best pass {max(p['rate'] for p in r) / max(p['rate'] for p in dl):.2f}x"
        )

if __name__ == "__main__":
    main()
