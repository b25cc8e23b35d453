"""CHAIR object hallucination (Rohrbach et al. 2018, "Object Hallucination in Image Captioning"),
the measure the MiniGPT-4 paper reports:

- CHAIRi = hallucinated object mentions / all object mentions (over all captions),
- CHAIRs = captions with at least one hallucinated object / all captions.

A mention is hallucinated when the object it names is not among the image's ground-truth objects.
As in the reference code, captions are lower-cased, tokenised, singularised word by word, multi-word
objects and qualifier rules are applied, and every remaining vocabulary word is one mention (repeats
count). Differences from the reference, all deliberate: a regex tokeniser (which also splits
hyphenated words) and a rule-based singulariser instead of nltk/pattern (no data downloads),
phrases matched longest-first up to the vocabulary's longest phrase (the reference only looks at
word pairs), and ``implies`` so that a colour-shape object grounds its bare shape.

Ground truth: the objects of a COCO instances JSON when given, else the objects mentioned in the
image's reference captions (the reference code unions both); the result says which was used.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from mgpt_eval.chair_vocab import ObjectVocabulary, coco_vocabulary, normalise_phrase
from mgpt_eval.singular import singularize

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+")  # hyphens and apostrophes split: "hot-dog" -> hot dog, "man's" -> man s


def caption_objects(caption: str, vocabulary: ObjectVocabulary | None = None) -> list[tuple[str, str]]:
    """Object mentions of one caption as (surface phrase, node), in order; repeats kept."""
    vocab = vocabulary or coco_vocabulary()
    words = [singularize(w) for w in _WORD.findall(caption.lower())]
    units: list[str] = []
    i, longest = 0, vocab.max_phrase_len
    while i < len(words):
        for length in range(min(longest, len(words) - i), 1, -1):
            phrase = " ".join(words[i : i + length])
            if phrase in vocab.rewrites or phrase in vocab.surface:
                units.append(vocab.rewrites.get(phrase, phrase))
                i += length
                break
        else:
            units.append(words[i])
            i += 1
    present = set(units)
    units = [u for u in units if not (u in vocab.drop_when and vocab.drop_when[u] in present)]
    return [(u, vocab.surface[u]) for u in units if u in vocab.surface]


def expand_objects(objects: set[str], vocabulary: ObjectVocabulary) -> set[str]:
    """Ground-truth objects plus the more general nodes they imply ("red circle" → "circle")."""
    out = set(objects)
    for obj in objects:
        out |= vocabulary.implies.get(obj, frozenset())
    return out


def chair(
    candidates: Mapping[str, str],
    ground_truth_objects: Mapping[str, set[str]],
    *,
    vocabulary: ObjectVocabulary | None = None,
) -> dict:
    """CHAIRi and CHAIRs of ``candidates`` against per-image ground-truth object nodes.

    Returns ``{"CHAIRi", "CHAIRs", "n_captions", "n_mentions", "n_hallucinated_mentions",
    "n_hallucinated_captions", "vocabulary", "per_image": {id: {"words", "mentioned", "hallucinated"}}}``.
    CHAIRi is NaN when no caption mentions any object.
    """
    vocab = vocabulary or coco_vocabulary()
    missing = [k for k in candidates if k not in ground_truth_objects]
    if missing:
        raise ValueError(
            f"{len(missing)} candidate image id(s) have no ground-truth objects, e.g. {missing[:5]}"
        )
    if not candidates:
        raise ValueError("nothing to score: candidates is empty")
    per_image: dict[str, dict] = {}
    mentions = hallucinated_mentions = hallucinated_captions = 0
    for image_id, caption in candidates.items():
        found = caption_objects(caption, vocab)
        truth = expand_objects(set(ground_truth_objects[image_id]), vocab)
        bad = [node for _, node in found if node not in truth]
        per_image[image_id] = {
            "words": [w for w, _ in found],
            "mentioned": [n for _, n in found],
            "hallucinated": bad,
        }
        mentions += len(found)
        hallucinated_mentions += len(bad)
        hallucinated_captions += bool(bad)
    return {
        "CHAIRi": hallucinated_mentions / mentions if mentions else float("nan"),
        "CHAIRs": hallucinated_captions / len(candidates),
        "n_captions": len(candidates),
        "n_mentions": mentions,
        "n_hallucinated_mentions": hallucinated_mentions,
        "n_hallucinated_captions": hallucinated_captions,
        "vocabulary": vocab.name,
        "per_image": per_image,
    }


def objects_from_captions(
    references: Mapping[str, list[str]], vocabulary: ObjectVocabulary | None = None
) -> dict[str, set[str]]:
    """Ground truth as the union of objects mentioned in each image's reference captions."""
    vocab = vocabulary or coco_vocabulary()
    return {
        k: {node for ref in refs for _, node in caption_objects(ref, vocab)} for k, refs in references.items()
    }


def objects_from_coco_instances(
    path: str | Path, vocabulary: ObjectVocabulary | None = None
) -> dict[str, set[str]]:
    """Ground truth from a COCO ``instances_*.json``: category names of each image's annotations.

    Keyed by ``str(image id)``, by ``file_name`` and by its stem, so Flickr-style string ids and COCO
    file names both find their image. Images without annotations get an empty set.
    """
    vocab = vocabulary or coco_vocabulary()
    data = json.loads(Path(path).read_text())
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{path} is not a COCO instances file: no {key!r}")
    categories: dict[int, str] = {}
    for cat in data["categories"]:
        name = normalise_phrase(cat["name"])
        if name not in vocab.surface:
            logger.warning("COCO category %r is not in CHAIR vocabulary %r", cat["name"], vocab.name)
        categories[cat["id"]] = vocab.surface.get(name, name)
    by_id: dict[int, set[str]] = {img["id"]: set() for img in data["images"]}
    for ann in data["annotations"]:
        by_id.setdefault(ann["image_id"], set()).add(categories[ann["category_id"]])
    out: dict[str, set[str]] = {}
    for img in data["images"]:
        objects = by_id[img["id"]]
        out[str(img["id"])] = objects
        if "file_name" in img:
            out[img["file_name"]] = objects
            out[Path(img["file_name"]).stem] = objects
    return out


def chair_with_ground_truth(
    candidates: Mapping[str, str],
    *,
    references: Mapping[str, list[str]] | None = None,
    instances_json: str | Path | None = None,
    vocabulary: ObjectVocabulary | None = None,
) -> dict:
    """``chair`` with ground truth from ``instances_json`` when given, else from ``references``.

    Adds ``"ground_truth_source"``: ``"coco_instances"`` or ``"reference_captions"``.
    """
    vocab = vocabulary or coco_vocabulary()
    if instances_json is not None:
        truth, source = objects_from_coco_instances(instances_json, vocab), "coco_instances"
    elif references is not None:
        truth, source = objects_from_captions(references, vocab), "reference_captions"
    else:
        raise ValueError("CHAIR needs ground truth: pass references or instances_json")
    result = chair(candidates, truth, vocabulary=vocab)
    result["ground_truth_source"] = source
    return result
