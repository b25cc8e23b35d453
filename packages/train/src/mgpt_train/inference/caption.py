"""Caption many image files: files, folders and globs → JSONL/CSV rows, bad files reported and skipped.

Up to ``ray_threshold`` images run in this process (batched, on ``device``); beyond, the images go
through the same Ray Data actor-pool path as `mgpt_train.predict` (one model per actor, a GPU each
when the device is CUDA). Every row holds the image path, the caption, the checkpoint and the
decoding settings; an unreadable or missing file becomes a reject ``{row, image_id, filename,
reason, detail}`` (mgpt_data's format), never a crash.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mgpt_train.inference.loading import DEVICES, ModelSource, resolve_device
from mgpt_train.predict import CaptionPredictor

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"})
Engine = Literal["auto", "local", "ray"]
OutputFormat = Literal["jsonl", "csv"]
#: Decoding fields written with every row (the GenerationSettings actually used).
DECODING_FIELDS = ("max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "repetition_penalty")
ROW_FIELDS = ("image", "caption", "checkpoint", "instruction", *DECODING_FIELDS)


@dataclass
class CaptionSummary:
    """What a `caption_files` call did."""

    captioned: int
    rejects: list[dict[str, Any]]
    engine: str
    output: Path | None
    rejects_path: Path | None = None
    checkpoint: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        from mgpt_data.rejects import count_by_reason

        return {"captioned": self.captioned, "skipped": len(self.rejects),
                "skipped_by_reason": count_by_reason(self.rejects), "engine": self.engine,
                "output": None if self.output is None else str(self.output),
                "rejects": None if self.rejects_path is None else str(self.rejects_path),
                "checkpoint": self.checkpoint, "decoding": self.decoding}


def collect_images(inputs: Sequence[str | Path]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files as given, folders searched recursively for image files, glob patterns expanded.

    Returns ``(paths, rejects)``: an input that names nothing (or a pattern that matches nothing) is
    a ``missing_file`` reject. Paths keep input order, each once.
    """
    from mgpt_data.rejects import Reject, RejectReason

    paths: list[Path] = []
    rejects: list[dict[str, Any]] = []
    for item in inputs:
        text = str(item)
        if glob.has_magic(text):
            matched = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        else:
            matched = [Path(text)] if Path(text).exists() else []
        if not matched:
            rejects.append(Reject(None, text, Path(text).name, RejectReason.MISSING_FILE.value,
                                  f"{text} matches no file").as_dict())
        for path in matched:
            if path.is_dir():
                paths += sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            else:
                paths.append(path)
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)  # each file once, named as first given
    return list(unique.values()), rejects


def _row(path: str, caption: str, checkpoint: str | None, instruction: str, decoding: dict) -> dict[str, Any]:
    return {"image": path, "caption": caption, "checkpoint": checkpoint, "instruction": instruction,
            **{k: decoding[k] for k in DECODING_FIELDS}}


class CaptionWriter:
    """Rows to a ``.jsonl`` or ``.csv`` file (format from ``fmt`` or the suffix), flushed as they come."""

    def __init__(self, path: Path, fmt: OutputFormat | None = None):
        self.path = Path(path)
        self.fmt = fmt or ("csv" if self.path.suffix.lower() == ".csv" else "jsonl")
        if self.fmt not in ("jsonl", "csv"):
            raise ValueError(f"output format must be jsonl or csv, got {self.fmt!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=ROW_FIELDS) if self.fmt == "csv" else None
        if self._csv is not None:
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow({k: "" if row[k] is None else row[k] for k in ROW_FIELDS})
        else:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ImageCaptioner(CaptionPredictor):
    """`CaptionPredictor` for captioning files: numpy batch of ``path`` rows → ``path``, ``caption``."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kept, captions = self.caption_batch(batch)
        return {"path": np.asarray([str(p) for p in kept["path"]], dtype=object),
                "caption": np.asarray(captions, dtype=object)}


def _rows_for(paths: Sequence[Path]) -> list[dict[str, Any]]:
    return [{"row": i, "image_id": str(p), "path": str(p), "split": "", "captions": [], "caption": ""}
            for i, p in enumerate(paths)]


def _caption_local(source: ModelSource, paths: Sequence[Path], device: str, batch_size: int,
                   predictor_kwargs: dict[str, Any],
                   rejects: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    from mgpt_data.batches import rows_to_batch

    settings = source.settings.model_copy(deep=True)
    settings.train.use_gpu = device == "cuda"
    predictor = ImageCaptioner(settings.to_json_dict(), None if source.checkpoint is None
                               else str(source.checkpoint), None, **predictor_kwargs)
    rows = _rows_for(paths)
    for start in range(0, len(rows), batch_size):
        out = predictor(rows_to_batch(rows[start:start + batch_size]))
        rejects += predictor.preprocessor.rejects
        predictor.preprocessor.rejects.clear()
        yield from zip(out["path"], out["caption"], strict=True)


def _caption_ray(source: ModelSource, paths: Sequence[Path], device: str, batch_size: int,
                 predictor_kwargs: dict[str, Any], rejects: list[dict[str, Any]],
                 actors: int | None) -> Iterator[tuple[str, str]]:
    from mgpt_data.flickr30k import rows_to_dataset
    from mgpt_data.rejects import drain_rejects, start_rejects_sink
    from mgpt_train.predict import map_with_model_pool
    from mgpt_train.ray_setup import ensure_ray

    settings = source.settings.with_absolute_paths()
    settings.train.use_gpu = device == "cuda"
    ensure_ray(settings.train)
    import ray

    if actors is None:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        actors = max(1, gpus) if device == "cuda" else settings.train.workers
    sink = start_rejects_sink()
    ds = map_with_model_pool(rows_to_dataset(_rows_for(paths), block_rows=batch_size), ImageCaptioner,
                             settings, source.checkpoint, actors=actors, batch_size=batch_size,
                             rejects_sink=sink, **predictor_kwargs)
    logger.info("captioning %d images with %d Ray actor(s)", len(paths), actors)
    for row in ds.iter_rows():
        yield str(row["path"]), str(row["caption"])
    rejects += drain_rejects(sink)
    ray.kill(sink)


def caption_files(
    source: ModelSource,
    inputs: Sequence[str | Path],
    *,
    output: Path | None = None,
    fmt: OutputFormat | None = None,
    device: str = "auto",
    batch_size: int = 8,
    instruction: str | None = None,
    decoding: dict[str, Any] | None = None,
    engine: Engine = "auto",
    ray_threshold: int = 256,
    actors: int | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> CaptionSummary:
    """Caption every image that ``inputs`` (files, folders, globs) name; write rows to ``output``
    (and/or hand each to ``on_row``) as they come, and rejects to ``<output>.rejects.jsonl``.

    ``engine="auto"`` runs in this process up to ``ray_threshold`` images and through the Ray Data
    actor pool beyond. ``decoding``: GenerationSettings fields replacing the run's ``[bridge.generation]``.
    """
    from tqdm.auto import tqdm

    from mgpt_data.rejects import append_rejects
    from mgpt_train.inference.loading import with_decoding

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if engine not in ("auto", "local", "ray"):
        raise ValueError(f"engine must be auto, local or ray, got {engine!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    used = with_decoding(source.settings.bridge.generation, **(decoding or {}))
    instruction_text = instruction or source.settings.bridge.template.instructions[0]
    paths, rejects = collect_images(inputs)
    chosen = engine if engine != "auto" else ("ray" if len(paths) > ray_threshold else "local")
    if chosen == "local":
        device = resolve_device(device)
    elif device == "auto" and paths:  # the actors' device: GPUs when the cluster has them
        device = _cluster_device(source)
    writer = CaptionWriter(output, fmt) if output is not None else None
    checkpoint = None if source.checkpoint is None else str(source.checkpoint)
    kwargs = {"decoding": used.model_dump(), "instruction": instruction}
    count = 0
    try:
        if paths:
            stream = (_caption_local(source, paths, device, batch_size, kwargs, rejects) if chosen == "local"
                      else _caption_ray(source, paths, device, batch_size, kwargs, rejects, actors))
            bar = tqdm(stream, total=len(paths), desc="caption", unit="img", disable=not progress)
            for path, caption in bar:
                row = _row(path, caption, checkpoint, instruction_text, used.model_dump())
                if writer is not None:
                    writer.write(row)
                if on_row is not None:
                    on_row(row)
                count += 1
    finally:
        if writer is not None:
            writer.close()
    logger.info("captioned %d image(s) (%s), skipped %d", count, chosen, len(rejects))
    rejects_path = None
    if output is not None and rejects:
        rejects_path = Path(output).with_name(Path(output).name + ".rejects.jsonl")
        rejects_path.unlink(missing_ok=True)
        append_rejects(rejects_path, rejects)
    return CaptionSummary(count, rejects, chosen, output, rejects_path, checkpoint, used.model_dump())


def _cluster_device(source: ModelSource) -> str:
    """``cuda`` when the Ray cluster we would join has GPUs, else ``cpu``."""
    from mgpt_train.ray_setup import ensure_ray

    ensure_ray(source.settings.train)
    import ray

    return "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
