"""MiniGPT-4's real encoder from a LOCAL HF BLIP-2 snapshot: EVA ViT-g/14 (+ ln_vision) + Q-Former.

``Blip2VisionModel`` (its ``post_layernorm`` is MiniGPT-4's ``ln_vision``) → 257×1408 tokens, then
``Blip2QFormerModel`` with 32×768 ``query_tokens`` → 32×768. ``blip2_noqformer`` (MiniGPT-v2) drops
CLS and groups 4 consecutive patch tokens: 256×1408 → 64×5632.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn
from transformers import Blip2Config, Blip2Model, Blip2QFormerModel, Blip2VisionModel

from mgpt_vision.freeze import Freezable
from mgpt_vision.params import count_parameters
from mgpt_vision.preprocess import PreprocessSpec
from mgpt_vision.timm_encoder import DTYPES
from mgpt_vision.vision_encoder import VisionEncoder
from mgpt_vision.weights import check_keys, load_strict

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NOQFORMER_GROUP = 4  # MiniGPT-v2: view(B, N/4, 4*D) over consecutive patch tokens


class QFormerQueries(nn.Module):
    """``query_tokens`` [1,Q,H] + ``Blip2QFormerModel`` cross-attending to image embeddings → [B,Q,H].

    State-dict keys (``query_tokens``, ``qformer.*``) equal the snapshot's.
    """

    def __init__(self, qformer: Blip2QFormerModel, num_query_tokens: int) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, num_query_tokens, qformer.config.hidden_size))
        self.qformer = qformer

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        # upstream passes an all-ones encoder_attention_mask, which is the same as none
        queries = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        return self.qformer(query_embeds=queries, encoder_hidden_states=image_embeds).last_hidden_state


class Blip2Tokens(nn.Module):
    """pixels → vision (frozen or not) → Q-Former queries, or (no Q-Former) grouped patch tokens."""

    def __init__(self, vision: Freezable, qformer: Freezable | None, group: int = NOQFORMER_GROUP) -> None:
        super().__init__()
        self.vision = vision
        self.qformer = qformer
        self.group = group

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        embeds = self.vision(pixels)  # [B, 1+N, D], ln_vision applied
        if self.qformer is not None:
            return self.qformer(embeds)
        patches = embeds[:, 1:, :]
        b, n, d = patches.shape
        return patches.reshape(b, n // self.group, d * self.group)


def blip2_config(snapshot: Path | None) -> Blip2Config:
    """Config of a local snapshot (its config.json), or transformers' defaults (EVA ViT-g + bert-base)."""
    if snapshot is None:
        return Blip2Config()
    cfg_file = Path(snapshot) / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{snapshot} is not a HF BLIP-2 snapshot: no config.json")
    model_type = json.loads(cfg_file.read_text()).get("model_type")
    if model_type != "blip-2":
        raise ValueError(f"{cfg_file} has model_type={model_type!r}, expected 'blip-2'")
    return Blip2Config.from_pretrained(str(snapshot))


def _wanted(key: str, with_qformer: bool) -> bool:
    if key.startswith("vision_model."):
        return True
    return with_qformer and (key.startswith("qformer.") or key == "query_tokens")


def snapshot_weight_files(snapshot: Path) -> list[Path]:
    """The weight files of a snapshot (single file or the shards named by its index)."""
    snapshot = Path(snapshot)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (snapshot / index).is_file():
            weight_map = json.loads((snapshot / index).read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
            outside = [f for f in names if Path(f).name != f or f in (".", "..")]
            if outside:  # a shard name from the index never leads out of the snapshot
                raise ValueError(
                    f"{snapshot / index} names shard(s) outside the snapshot folder: {outside[:3]}")
            return [snapshot / f for f in names]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (snapshot / single).is_file():
            return [snapshot / single]
    found = sorted(p.name for p in snapshot.iterdir()) if snapshot.is_dir() else "no such directory"
    raise FileNotFoundError(
        f"no BLIP-2 weights (model.safetensors[.index.json] / pytorch_model.bin) in {snapshot}: {found}"
    )


def read_blip2_weights(snapshot: Path, *, with_qformer: bool = True) -> dict[str, torch.Tensor]:
    """Only the ``vision_model.*`` (+ ``qformer.*``, ``query_tokens``) tensors of a snapshot."""
    sd: dict[str, torch.Tensor] = {}
    for f in snapshot_weight_files(snapshot):
        if not f.is_file():
            raise FileNotFoundError(f"weight shard {f} named by the index is missing")
        if f.suffix == ".safetensors":
            with safe_open(str(f), framework="pt", device="cpu") as h:
                for k in h.keys():
                    if _wanted(k, with_qformer):
                        sd[k] = h.get_tensor(k)
        else:
            obj = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
            sd.update({k: v for k, v in obj.items() if _wanted(k, with_qformer)})
    return sd


def _build_modules(cfg: Blip2Config, with_qformer: bool) -> tuple[Blip2VisionModel, QFormerQueries | None]:
    with torch.device("meta"):
        vision = Blip2VisionModel(cfg.vision_config)
        queries = (
            QFormerQueries(Blip2QFormerModel(cfg.qformer_config), cfg.num_query_tokens)
            if with_qformer
            else None
        )
    return vision, queries


def _load(vision: Blip2VisionModel, queries: QFormerQueries | None, snapshot: Path) -> int:
    """Strictly load the snapshot's tensors into the meta-built modules (assign); returns the count."""
    sd = read_blip2_weights(snapshot, with_qformer=queries is not None)
    own = {f"vision_model.{k}": v for k, v in vision.state_dict().items()}
    if queries is not None:
        own.update(queries.state_dict())
    check_keys(own, sd, f"BLIP-2 snapshot {snapshot}")
    prefix = "vision_model."
    load_strict(
        vision,
        {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)},
        "BLIP-2 vision_model",
        assign=True,
    )
    if queries is not None:
        load_strict(
            queries, {k: v for k, v in sd.items() if not k.startswith(prefix)}, "BLIP-2 qformer", assign=True
        )
    return len(sd)


def build_blip2(
    snapshot: Path | None,
    *,
    with_qformer: bool = True,
    freeze_vision: bool = True,
    freeze_qformer: bool = True,
    dtype: str = "float32",
    resize_mode: str | None = None,
    device: str | torch.device = "cpu",
    meta: bool = False,
) -> VisionEncoder:
    """BLIP-2 encoder from a local snapshot dir; ``meta=True`` builds shapes only (no weights, seconds)."""
    if not meta and snapshot is None:
        raise ValueError("encoder='blip2*' needs weights_path: a local HF BLIP-2 snapshot directory")
    cfg = blip2_config(snapshot)
    vc, qc = cfg.vision_config, cfg.qformer_config
    if with_qformer and qc.encoder_hidden_size != vc.hidden_size:
        raise ValueError(
            f"Q-Former encoder_hidden_size {qc.encoder_hidden_size} != vision width {vc.hidden_size}"
        )
    num_patches = (vc.image_size // vc.patch_size) ** 2
    if not with_qformer and num_patches % NOQFORMER_GROUP:
        raise ValueError(f"{num_patches} patch tokens cannot be grouped by {NOQFORMER_GROUP}")
    vision, queries = _build_modules(cfg, with_qformer)
    loaded = None if meta else _load(vision, queries, Path(snapshot))
    if not meta:
        vision.to(device=device)
        if queries is not None:
            queries.to(device=device)
    vision.to(dtype=DTYPES[dtype])
    if queries is not None:
        queries.float()  # Q-Former and queries stay fp32, as in BLIP-2 / MiniGPT-4
    qformer = None if queries is None else Freezable(queries, frozen=freeze_qformer)
    module = Blip2Tokens(Freezable(vision, frozen=freeze_vision, output_attr="last_hidden_state"), qformer)
    spec = PreprocessSpec(
        image_size=vc.image_size,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        interpolation="bicubic",
        resize_mode=resize_mode or "squash",
    )
    details: dict[str, Any] = {
        "snapshot": None if snapshot is None else str(snapshot),
        "tensors_loaded": loaded,
        "vision_tokens": num_patches + 1,
        "vision_width": vc.hidden_size,
        "vision_depth": vc.num_hidden_layers,
        "vision_heads": vc.num_attention_heads,
        "vision_params": count_parameters(vision),
        "freeze_vision": freeze_vision,
        "dtype": dtype,
    }
    if queries is not None:
        num_tokens, token_dim = cfg.num_query_tokens, qc.hidden_size
        details.update(
            qformer_queries=cfg.num_query_tokens,
            qformer_width=qc.hidden_size,
            qformer_depth=qc.num_hidden_layers,
            qformer_params=count_parameters(queries),
            freeze_qformer=freeze_qformer,
        )
        name = "blip2_qformer"
    else:
        num_tokens, token_dim = num_patches // NOQFORMER_GROUP, vc.hidden_size * NOQFORMER_GROUP
        details.update(group=NOQFORMER_GROUP)
        name = "blip2_noqformer"
    return VisionEncoder(
        module=module, preprocess=spec, num_tokens=num_tokens, token_dim=token_dim, name=name, details=details
    )


def tiny_blip2_model(*, patch_size: int = 7, num_query_tokens: int = 4, seed: int = 0) -> Blip2Model:
    """A random BLIP-2 of the real structure at tiny widths (28 px, ViT 32 wide with CLS + ln_vision,
    Q-Former 32 wide cross-attending every 2nd layer, non-zero queries), for tests and stand-in
    snapshots: ``tiny_blip2_model().save_pretrained(dir)`` is a ``weights_path`` for ``encoder="blip2"``."""
    width = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = Blip2Config(
        vision_config={**width, "image_size": 28, "patch_size": patch_size},
        qformer_config={
            **width,
            "encoder_hidden_size": 32,
            "cross_attention_frequency": 2,
            "vocab_size": 100,
            "max_position_embeddings": 64,
        },
        text_config={
            "model_type": "opt",
            "hidden_size": 32,
            "ffn_dim": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "vocab_size": 100,
            "word_embed_proj_dim": 32,
            "max_position_embeddings": 64,
        },
        num_query_tokens=num_query_tokens,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Blip2Model(config).eval()
        with torch.no_grad():
            model.query_tokens.normal_()  # as in a trained snapshot (the init is zeros)
    return model
