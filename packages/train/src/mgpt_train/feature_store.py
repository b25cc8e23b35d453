"""The frozen-feature cache, built by Ray Data batch inference and read back by training workers.

Build (driver, before training): the train images' file bytes are hashed in Ray tasks; images whose
hash is not yet in the encoder setup's cache folder go through ``mgpt_data.add_pixels`` (the one image
transform) and an actor pool of encoders (`EncodeImages`: GPUs when ``train.use_gpu``, else CPU
actors; the same autocast precision as training, recorded in the fingerprint) and are written as
parquet shards (``mgpt_vision.feature_cache`` layout). Images that fail to decode are rejected with a
reason and their rows leave the run. Read (each worker, at start): the shards, keeping the hashes
this run trains on (`read_features`).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)

ENCODE_BATCH = 16


@dataclass(frozen=True)
class FeatureCache:
    """Where a run's features are and what they were computed with."""

    folder: str
    fingerprint: dict[str, Any]


def _seeded_encoder(vision: dict[str, Any], seed: int, device: str) -> Any:
    """The frozen encoder as every process builds it (the random tiny encoder seeded like the workers')."""
    import torch

    from mgpt_vision import VisionSettings, build_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_encoder(VisionSettings.model_validate(vision), device=device)


def _device(use_gpu: bool) -> str:
    import torch

    return "cuda" if use_gpu and torch.cuda.is_available() else "cpu"


class EncodeImages:
    """Ray Data actor: ``pixels`` uint8 → features, under the training autocast; returns shard columns."""

    def __init__(self, vision: dict[str, Any], seed: int, precision: str, use_gpu: bool) -> None:
        from mgpt_train.modeling import autocast

        self.device = _device(use_gpu)
        self.encoder = _seeded_encoder(vision, seed, self.device)
        self.encoder.module.eval()
        self.precision = precision
        self._autocast = autocast

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from mgpt_data import normalize_pixels
        from mgpt_vision import encode_rows

        pixels = torch.from_numpy(normalize_pixels(batch["pixels"], self.encoder.preprocess.as_dict()))
        with torch.no_grad(), self._autocast(self.precision, self.device):
            feats = self.encoder.module(pixels.to(self.device))
        return encode_rows(batch["content_hash"], feats)


def _fingerprint(vision: dict[str, Any], seed: int, precision: str) -> dict[str, Any]:
    from mgpt_vision import encoder_fingerprint

    return encoder_fingerprint(_seeded_encoder(vision, seed, "cpu"), precision)


def _hash_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from mgpt_vision import content_hash

    hashes, errors = [], []
    for path in batch["path"]:
        try:
            hashes.append(content_hash(str(path)))
            errors.append("")
        except OSError as e:
            hashes.append("")
            errors.append(f"{type(e).__name__}: {e}")
    return {**batch, "content_hash": np.asarray(hashes, dtype=object),
            "error": np.asarray(errors, dtype=object)}


def hash_images(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{image_id, path, row}]`` + ``content_hash`` (and ``error``: why a file could not be read)."""
    import ray.data

    ds = ray.data.from_items(images).map_batches(_hash_batch, batch_format="numpy", batch_size=256,
                                                 num_cpus=0.5)
    return ds.take_all()


def build_feature_cache(
    settings: RunSettings, images: list[dict[str, Any]], *, rejects_sink: Any = None
) -> tuple[FeatureCache, dict[str, str]]:
    """Encode the images the cache lacks; returns the cache and ``{image_id: content_hash}`` of the
    images that have features (unreadable ones are left out and reported to ``rejects_sink``)."""
    import ray

    from mgpt_data import DataSettings, add_pixels
    from mgpt_train.settings import resolve_precision
    from mgpt_vision import cached_hashes, feature_cache_dir, open_cache_dir

    ts = settings.train
    precision = resolve_precision(ts.precision, _device(ts.use_gpu))
    vision = settings.vision.model_dump(mode="json")
    # the encoder's fingerprint (its weights, in a worker: never a real model on the driver) while
    # Ray Data hashes the image files: a fresh worker importing torch takes longer than the hashing
    fingerprinting = ray.remote(num_cpus=1)(_fingerprint).remote(vision, ts.seed, precision)
    hashed = hash_images(images)
    fingerprint = ray.get(fingerprinting)
    folder = open_cache_dir(feature_cache_dir(fingerprint), fingerprint)
    unreadable = [r for r in hashed if r["error"]]
    if unreadable:
        _reject_unreadable(unreadable, rejects_sink)
    have = cached_hashes(folder)
    todo = {r["content_hash"]: r for r in hashed if not r["error"] and r["content_hash"] not in have}
    logger.info("feature cache %s: %d of %d train images cached, %d to encode", folder,
                len(hashed) - len(unreadable) - len(todo), len(hashed), len(todo))
    if todo:
        # decoded by tasks of the encoders' pool size, which Ray Data fuses into the encoder actors' own
        # calls (task → actor fusion): one process per encoder, no decode pool beside it
        data = DataSettings.model_validate({**settings.data.model_dump(mode="json"),
                                            "preprocess_compute": "tasks",
                                            "num_preprocess_workers": max(1, ts.workers)})
        spec = _spec(vision)
        ds = ray.data.from_items([{"image_id": r["image_id"], "path": r["path"], "row": r["row"],
                                   "content_hash": h} for h, r in todo.items()])
        ds = add_pixels(ds, spec, data, rejects_sink=rejects_sink)
        ds = ds.map_batches(EncodeImages, batch_size=ENCODE_BATCH, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=data.num_preprocess_workers),
                            num_gpus=1 if ts.use_gpu else 0, num_cpus=0 if ts.use_gpu else 1,
                            fn_constructor_kwargs={"vision": vision, "seed": ts.seed, "precision": precision,
                                                   "use_gpu": ts.use_gpu})
        _write_shards(ds, folder)
    have = cached_hashes(folder)
    kept = {str(r["image_id"]): r["content_hash"] for r in hashed if r["content_hash"] in have}
    return FeatureCache(str(folder), fingerprint), kept


def _spec(vision: dict[str, Any]) -> dict[str, Any]:
    from mgpt_vision import VisionSettings, build_encoder

    return build_encoder(VisionSettings.model_validate(vision), meta=True).preprocess.as_dict()


def _write_shards(ds: Any, folder: Path) -> None:
    """Write into a temporary sub-folder, then move the finished shards in (never a half shard)."""
    tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}"
    try:
        ds.write_parquet(str(tmp))
        for shard in sorted(tmp.glob("*.parquet")):
            shard.replace(folder / f"{tmp.name[5:]}-{shard.name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _reject_unreadable(rows: list[dict[str, Any]], rejects_sink: Any) -> None:
    from mgpt_data.rejects import Reject, RejectReason

    rejects = []
    for r in rows:
        missing = r["error"].startswith("FileNotFoundError")
        reason = RejectReason.MISSING_FILE if missing else RejectReason.NOT_A_FILE
        rejects.append(Reject(r.get("row"), str(r["image_id"]), Path(str(r["path"])).name, reason.value,
                              r["error"]).as_dict())
    logger.warning("%d train images could not be read and were dropped (see rejects.jsonl)", len(rejects))
    if rejects_sink is not None:
        import ray

        ray.get(rejects_sink.extend.remote(rejects))


def read_features(cache: FeatureCache, hashes: set[str]) -> dict[str, torch.Tensor]:
    """``{content_hash: features}`` for ``hashes`` (in a training worker).

    Read with pyarrow, not Ray Data tasks: inside a training worker such tasks compete with the
    training workers for the cluster's CPUs, and on a small cluster they were starved outright
    (``ReadFiles ... backpressured: ResourceBudget`` after a worker restart, measured on 2 cores).
    """
    from mgpt_vision import load_features

    return load_features(Path(cache.folder), cache.fingerprint, hashes)
