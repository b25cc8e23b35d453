"""Safe weight I/O: read foreign files, strict loading with clear reports, atomic safetensors cache."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)


class WeightsMismatchError(RuntimeError):
    """A state-dict does not fit a module exactly (missing/unexpected keys or shape mismatch)."""


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a flat name→tensor dict: safetensors, or a torch file with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            log.info("%s: using the nested %r dict", path, wrapper)
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a state-dict (name → tensor)")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {bad[:5]}")
    return dict(obj)


def check_keys(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`WeightsMismatchError` naming missing/unexpected keys and shape mismatches."""
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[:5]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[:5]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (first: {shapes[:3]})")
        raise WeightsMismatchError(f"{what}: weights do not fit the model: " + "; ".join(parts))


def check_state_dict(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """:func:`check_keys` against ``module.state_dict()``."""
    check_keys(module.state_dict(), sd, what)


def load_strict(
    module: nn.Module, sd: Mapping[str, torch.Tensor], what: str, *, assign: bool = False
) -> None:
    """Check then ``load_state_dict(strict=True)``; ``assign=True`` for modules built on meta."""
    check_state_dict(module, sd, what)
    module.load_state_dict(sd, strict=True, assign=assign)
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise WeightsMismatchError(f"{what}: tensors left on the meta device after loading: {leftovers[:5]}")


def save_safetensors_atomic(
    sd: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write safetensors via a temp file in the same dir + ``os.replace`` (safe for parallel workers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_hash(module: nn.Module) -> str:
    """Content hash (blake2b) of a module's state-dict: names, dtypes, shapes and values."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in module.state_dict().items():
        if t.is_meta:
            raise ValueError(f"cannot hash meta tensor {name}: the encoder was built with meta=True")
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
