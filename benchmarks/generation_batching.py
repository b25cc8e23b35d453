"""Captions/s of batched generation vs one image at a time: same model, same images, one run.

    uv run python benchmarks/generation_batching.py [--preset default] [--images 32] [--batch-size 8]

Builds the preset's model (untrained bridge unless --checkpoint), captions the first N images of the
eval split greedily with batch 1 and with --batch-size, checks both give the same captions for the
greedy path (left padding must not change the result beyond numerical noise) and prints the ratio.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="default")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from mgpt_data import pixels_from_images
    from mgpt_train.driver_data import ensure_dataset, read_split_rows
    from mgpt_train.modeling import build_model
    from mgpt_train.run_settings import RunSettings

    torch.set_num_threads(os.cpu_count() or 1)
    settings = RunSettings.load(args.preset)
    ensure_dataset(settings)
    rows, _ = read_split_rows(settings, settings.eval.split, sample_mode="grounded")
    rows = rows[: args.images]
    images = [Image.open(r["path"]).convert("RGB") for r in rows]
    model = build_model(settings, checkpoint=args.checkpoint).eval()
    pixels = torch.from_numpy(pixels_from_images(images, model.preprocess.as_dict()))
    decoding = {"max_new_tokens": args.max_new_tokens, "num_beams": 1, "do_sample": False}

    model.generate(pixels=pixels[:2], **decoding)  # warm-up
    t0 = time.perf_counter()
    single = [model.generate(pixels=pixels[i : i + 1], **decoding)[0] for i in range(len(images))]
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched: list[str] = []
    for start in range(0, len(images), args.batch_size):
        batched += model.generate(pixels=pixels[start : start + args.batch_size], **decoding)
    t_batched = time.perf_counter() - t0

    same = sum(a == b for a, b in zip(single, batched, strict=True))
    print(
        f"model: {model.summary()['encoder']} -> {model.summary()['lm']}, {len(images)} images, "
        f"greedy, max_new_tokens={args.max_new_tokens}, threads={torch.get_num_threads()}"
    )
    print(f"one at a time : {len(images) / t_single:7.2f} captions/s ({t_single:.1f} s)")
    print(f"batch of {args.batch_size:<4} : {len(images) / t_batched:7.2f} captions/s ({t_batched:.1f} s)")
    print(f"speed-up (batched / one at a time): {t_single / t_batched:.2f}x")
    print(f"identical captions: {same}/{len(images)}")
    print(json.dumps({
        "benchmark": "generation_batching", "preset": args.preset, "images": len(images),
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "captions_per_s_single": round(len(images) / t_single, 2),
        "captions_per_s_batched": round(len(images) / t_batched, 2),
        "speedup_batched": round(t_single / t_batched, 2), "identical_captions": same,
    }))


if __name__ == "__main__":
    main()
