"""`curate`: MiniGPT-4's stage-2 data generation, on any model we can load (a run's checkpoint or a preset).

Upstream (paper §3.2, ``dataset/README_2_STAGE.md``) asked its stage-1 model for a detailed
description of each image; when the answer had fewer than 80 tokens it asked "Continue" in the same
conversation and appended the reply; ChatGPT then fixed the text and a person removed what was still
wrong, leaving 3,500 of 5,000 images in ``cc_sbu_align/filter_cap.json`` + ``image/``. Here:

1. each image gets one instruction from the pool (seeded by ``(seed, image_id)``), rendered with the
   model's own template (`mgpt_bridge.Conversation`), generated in batches;
2. answers shorter than ``min_tokens`` LM tokens get a second turn, ``continue_prompt``, in the same
   conversation (the image is spliced once), and the two answers are joined;
3. the rule-based post-filter (`mgpt_data.caption_filter`) keeps, fixes or rejects each text;
4. the kept images are written as a Flickr30k-format folder (the same CSV + ``flickr30k-images/``,
   each image's description as its one caption, its split kept), plus upstream's ``filter_cap.json``;
   every rejected image is one line of ``curate_rejects.jsonl`` (reason, detail, text), and
   ``curate_summary.json`` counts it all.

The folder trains a stage-2 run as any data set does (``--data-dir OUT --set data.sample_mode=grounded``).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgpt_bridge.settings import MINIGPT4_INSTRUCTIONS, GenerationSettings

if TYPE_CHECKING:
    from mgpt_data.caption_filter import FilterRules
    from mgpt_train.inference.loading import InferenceModel, ModelSource

logger = logging.getLogger(__name__)

REJECTS_NAME = "curate_rejects.jsonl"
SUMMARY_NAME = "curate_summary.json"
GENERATIONS_NAME = "curate_generations.jsonl"


@dataclass(frozen=True)
class CurateOptions:
    """How `curate` asks and filters. ``decoding``: GenerationSettings fields replacing MiniGPT-4's demo
    decoding (sampling, top-p .9, repetition penalty 1.05, 300 new tokens; seeded by ``seed`` and the
    batch); ``filter=False`` keeps every non-empty text (to post-filter elsewhere)."""

    instructions: tuple[str, ...] = MINIGPT4_INSTRUCTIONS
    continue_prompt: str = "Continue"
    min_tokens: int = 80
    splits: tuple[str, ...] | None = None  # None: every split of the source folder
    max_images: int | None = None
    batch_size: int = 8
    seed: int = 0
    decoding: dict[str, Any] = field(default_factory=dict)
    filter: bool = True
    rules: FilterRules | None = None

    def __post_init__(self) -> None:
        if not self.instructions:
            raise ValueError("curate needs at least one instruction")
        if self.min_tokens < 0 or self.batch_size < 1:
            raise ValueError("min_tokens must be >= 0 and batch_size >= 1")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}")
        self.generation()  # validates the decoding fields

    def generation(self) -> dict[str, Any]:
        """The decoding used: MiniGPT-4's demo settings with ``decoding`` applied (validated)."""
        demo = GenerationSettings.minigpt4_demo().model_dump()
        return GenerationSettings.model_validate({**demo, **self.decoding}).model_dump()


@dataclass(frozen=True)
class CurateSummary:
    """What `curate` wrote: counts by outcome and the paths."""

    output_dir: Path
    images: int
    kept: int
    continued: int
    rejected: dict[str, int]
    paths: dict[str, Path]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output_dir"] = str(self.output_dir)
        out["paths"] = {k: str(v) for k, v in self.paths.items()}
        return out

    def format(self) -> str:
        """A few lines for a terminal: the counts, then the folder and each file written."""
        lines = [f"kept {self.kept} of {self.images} images ({self.continued} continued); "
                 f"rejected {self.rejected or 'none'}", f"  folder: {self.output_dir}"]
        lines += [f"  {name}: {path}" for name, path in self.paths.items() if name != "folder"]
        return "\n".join(lines)


def _source_images(data_dir: Path, options: CurateOptions) -> list[dict[str, Any]]:
    from mgpt_data import scan_annotations

    images = [img for img in scan_annotations(data_dir).images
              if options.splits is None or img["split"] in options.splits]
    if not images:
        raise ValueError(f"{data_dir} has no images in split(s) {list(options.splits or ['any'])}")
    return images[: options.max_images] if options.max_images else images


def _instruction(options: CurateOptions, image_id: str) -> str:
    return random.Random(f"{options.seed}:{image_id}").choice(list(options.instructions))


def _describe_batch(model: InferenceModel, pictures: list[Any], instructions: list[str],
                    options: CurateOptions, seed: int) -> list[dict[str, Any]]:
    """Two-turn generation for a batch of PIL images: ``{"first", "second" | None, "tokens"}`` each."""
    import torch

    from mgpt_bridge import Conversation, build_segments_prompt

    vlm, tokenizer = model.model, model.model.tokenizer
    with torch.no_grad(), model.autocast():
        embeds = vlm.encode_images(model.pixels(pictures))
        talks = [Conversation(vlm.template) for _ in pictures]
        segments = [talk.segments(i) for talk, i in zip(talks, instructions, strict=True)]
        batch = build_segments_prompt(tokenizer, segments, vlm.num_image_tokens)
        torch.manual_seed(seed)  # sampling: reproducible per batch
        firsts = vlm.generate_prompted(batch, embeds, **options.generation())
        tokens = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in firsts]
        short = [k for k, n in enumerate(tokens) if n < options.min_tokens]
        seconds: dict[int, str] = {}
        if short:
            for k in short:
                talks[k].add(instructions[k], firsts[k])
            segments = [talks[k].segments(options.continue_prompt) for k in short]
            batch = build_segments_prompt(tokenizer, segments, vlm.num_image_tokens)
            seconds = dict(zip(short, vlm.generate_prompted(batch, embeds[short], **options.generation()),
                               strict=True))
    return [{"first": first, "second": seconds.get(k), "tokens": tokens[k]} for k, first in enumerate(firsts)]


def _joined(first: str, second: str | None) -> str:
    return first if not second else f"{first.rstrip()} {second.lstrip()}"


def curate(
    source: ModelSource,
    output_dir: Path | str,
    *,
    data_dir: Path | str | None = None,
    options: CurateOptions | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> CurateSummary:
    """Describe every image of ``data_dir`` (default: the source settings' data folder, written first
    when it is the synthetic set) with ``source``'s model and write the curated folder ``output_dir``."""
    from tqdm.auto import tqdm

    from mgpt_data.caption_filter import filter_caption
    from mgpt_data.flickr_writer import (
        FILTER_CAP_NAME,
        FlickrRecord,
        write_filter_cap_json,
        write_flickr30k_dir,
    )
    from mgpt_data.images import ImageDecodeError, decode_image
    from mgpt_data.rejects import append_rejects
    from mgpt_train.driver_data import ensure_dataset
    from mgpt_train.inference.loading import InferenceModel
    from mgpt_train.rundir import write_json

    options = options or CurateOptions()
    output_dir = Path(output_dir).expanduser().resolve()
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} exists and is not empty (overwrite to replace it)")
    if data_dir is None:
        data_dir = ensure_dataset(source.settings)
    data_dir = Path(data_dir).expanduser().resolve()
    if output_dir == data_dir:
        raise ValueError("curate writes a new folder: the output must differ from the data folder")
    images = _source_images(data_dir, options)
    model = InferenceModel(source, device)
    kept: list[tuple[FlickrRecord, str]] = []
    rejects: list[dict[str, Any]] = []
    generations: list[dict[str, Any]] = []
    with tqdm(total=len(images), desc="curate", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), options.batch_size):
            chunk = images[start:start + options.batch_size]
            readable, pictures = [], []
            for img in chunk:
                try:
                    pictures.append(decode_image(img["path"]))
                    readable.append(img)
                except ImageDecodeError as e:
                    rejects.append({"image_id": str(img["image_id"]), "reason": e.reason, "detail": e.detail})
            asked = [_instruction(options, str(img["image_id"])) for img in readable]
            seed = options.seed + start
            answers = _describe_batch(model, pictures, asked, options, seed) if readable else []
            for img, instruction, answer in zip(readable, asked, answers, strict=True):
                text = _joined(answer["first"], answer["second"])
                verdict = filter_caption(text, options.rules) if options.filter else _unfiltered(text)
                generations.append({"image_id": str(img["image_id"]), "instruction": instruction, **answer,
                                    "kept": verdict.kept, "reason": verdict.reason,
                                    "fixes": list(verdict.fixes)})
                if verdict.kept:
                    kept.append((FlickrRecord(str(img["image_id"]), Path(img["path"]), [verdict.text],
                                              img["split"]), verdict.text))
                else:
                    rejects.append({"image_id": str(img["image_id"]), "reason": verdict.reason,
                                    "detail": verdict.detail, "text": text, "instruction": instruction})
            bar.update(len(chunk))
            bar.set_postfix(kept=len(kept), rejected=len(rejects), refresh=False)
    write_flickr30k_dir(output_dir, [r for r, _ in kept], overwrite=overwrite)
    paths = {"folder": output_dir, FILTER_CAP_NAME: output_dir / FILTER_CAP_NAME,
             REJECTS_NAME: output_dir / REJECTS_NAME, GENERATIONS_NAME: output_dir / GENERATIONS_NAME,
             SUMMARY_NAME: output_dir / SUMMARY_NAME}
    write_filter_cap_json(paths[FILTER_CAP_NAME], [(r.image_id, text) for r, text in kept])
    paths[REJECTS_NAME].write_text("")
    append_rejects(paths[REJECTS_NAME], rejects)
    paths[GENERATIONS_NAME].write_text("".join(json.dumps(g, ensure_ascii=False) + "\n" for g in generations))
    continued = sum(g["second"] is not None for g in generations)
    summary = CurateSummary(output_dir, len(images), len(kept), continued,
                            dict(Counter(r["reason"] for r in rejects)), paths)
    write_json(paths[SUMMARY_NAME], {**summary.as_dict(), "source": str(source.checkpoint or "untrained"),
                                     "data_dir": str(data_dir), "options": asdict(options),
                                     "decoding": options.generation()})
    logger.info("curated %d of %d images into %s (%d continued; rejected %s)", summary.kept, summary.images,
                output_dir, summary.continued, summary.rejected)
    return summary


def _unfiltered(text: str):
    """``filter=False``: keep any text with a word in it (a caption list cannot hold an empty one)."""
    from mgpt_data.caption_filter import FilterVerdict, words

    clean = " ".join(text.split())
    return FilterVerdict(clean) if words(clean) else FilterVerdict(None, "empty", "no words")

