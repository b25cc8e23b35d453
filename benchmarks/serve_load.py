"""Captions/s of the Serve endpoint with dynamic batching vs without (max_batch_size 1), one run.

    uv run python benchmarks/serve_load.py [--preset default] [--run RUN_DIR] [--requests 64]
        [--concurrency 64] [--max-batch-size 8] [--max-new-tokens 20]

Starts `mgpt_train.inference.serve` on 127.0.0.1 (a local Ray), sends a bounded burst of
``--requests`` POSTs (real photos shipped by scikit-image/matplotlib, PNG-encoded), at most
``--concurrency`` in flight, first to a deployment that batches, then to one that does not, both
greedy with the same ``--max-new-tokens``. Every request goes to the loopback address only. Prints
one line per configuration, then ONE JSON line of figures and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # local workers inherit this venv


def photos() -> list[bytes]:
    from mgpt_eval import load_gallery

    out = []
    for item in load_gallery():
        buffer = io.BytesIO()
        item.image.convert("RGB").resize((256, 256)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


async def burst(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], list[int]]:
    import httpx

    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    batches: list[int] = []

    async def one(client: httpx.AsyncClient, body: bytes) -> None:
        async with limit:
            t0 = time.perf_counter()
            reply = await client.post(url, content=body)
            latencies.append(time.perf_counter() - t0)
            reply.raise_for_status()
            batches.append(int(reply.json()["batch_size"]))

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        await one(client, bodies[0])  # warm-up (first request of a fresh replica)
        latencies.clear()
        batches.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(client, b) for b in bodies))
        return time.perf_counter() - t0, latencies, batches


def measure(source, options, bodies: list[bytes], concurrency: int, decoding: dict) -> dict:
    from mgpt_train.inference.serve import start_server

    server = start_server(source, options, decoding=decoding)
    seconds, latencies, batches = asyncio.run(burst(server.url, bodies, concurrency))
    latencies.sort()
    return {"max_batch_size": options.max_batch_size, "seconds": round(seconds, 3),
            "captions_per_s": round(len(bodies) / seconds, 3),
            "mean_batch": round(statistics.mean(batches), 2),
            "p50_latency_s": round(latencies[len(latencies) // 2], 3),
            "p95_latency_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--run", default=None, help="a run directory (its last checkpoint)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if not 1 <= args.requests <= 1000 or not 1 <= args.concurrency <= 256:
        parser.error("keep the burst bounded: 1-1000 requests, 1-256 in flight")

    import ray

    from mgpt_train.inference.loading import resolve_source
    from mgpt_train.inference.serve import ServeSettings

    source = resolve_source(args.run, None, args.preset)
    images = photos()
    bodies = [images[i % len(images)] for i in range(args.requests)]
    decoding = {"max_new_tokens": args.max_new_tokens, "num_beams": 1, "do_sample": False}
    results = {}
    try:
        for name, size in (("batched", args.max_batch_size), ("unbatched", 1)):
            options = ServeSettings(port=args.port, max_batch_size=size,
                                    batch_wait_timeout_s=args.batch_wait_ms / 1000 if size > 1 else 0.0)
            results[name] = measure(source, options, bodies, args.concurrency, decoding)
            print(f"{name:9s}: {results[name]}", flush=True)
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
    summary = {"benchmark": "serve_load", "preset": args.preset, "run": args.run,
               "checkpoint": source.name, "requests": args.requests, "concurrency": args.concurrency,
               "max_new_tokens": args.max_new_tokens, "cpus": os.cpu_count(), **results,
               "batching_speedup": round(results["batched"]["captions_per_s"]
                                         / results["unbatched"]["captions_per_s"], 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
