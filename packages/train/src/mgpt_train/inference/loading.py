"""Which model inference runs: a run directory (its settings + a checkpoint) or a preset, on which device.

`resolve_source` turns what a user names (``--run``, ``--checkpoint``, ``--preset``) into a
:class:`ModelSource`; `InferenceModel` holds the built model and swaps checkpoints of the same run
in place (only the trainable parameters change, so switching costs no rebuild; `keep` holds several
checkpoints' parameters in memory, so switching back and forth reads no file: what evaluation does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mgpt_train.run_settings import RunSettings

if TYPE_CHECKING:
    import torch

    from mgpt_bridge import GenerationSettings, VisionLanguageModel

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: The name shown for "no checkpoint": the seeded initial (untrained) bridge.
UNTRAINED = "untrained"
#: A copy of the untrained trainable parameters is kept for switching back only up to this size.
_MAX_KEPT_INITIAL_PARAMS = 50_000_000
#: `InferenceModel.keep` holds checkpoints' trainable parameters (CPU) up to this many in all.
MAX_KEPT_PARAMS = 200_000_000


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device here")
    return device


def checkpoint_name(checkpoint: Path | str | None) -> str:
    """``epoch_2`` for a checkpoint folder, the file name for a ``.safetensors`` file, else `UNTRAINED`."""
    return UNTRAINED if checkpoint is None else Path(checkpoint).name


@dataclass(frozen=True)
class ModelSource:
    """Settings + checkpoint (None = the untrained bridge) + the run directory they came from, if any."""

    settings: RunSettings
    checkpoint: Path | None
    run_dir: Path | None = None

    @property
    def name(self) -> str:
        return checkpoint_name(self.checkpoint)

    def checkpoints(self) -> list[Path]:
        """The run's epoch checkpoints (empty without a run directory)."""
        from mgpt_train.checkpointing import list_checkpoints

        return list_checkpoints(self.run_dir) if self.run_dir is not None else []


def resolve_source(
    run_dir: Path | str | None = None,
    checkpoint: Path | str | None = None,
    preset: str | Path = "default",
    overrides: dict[str, Any] | None = None,
) -> ModelSource:
    """A run directory's settings and (unless ``checkpoint`` is given) its `default_checkpoint`, or the
    ``preset``'s settings with ``checkpoint`` (None = untrained). ``overrides``: nested settings dict."""
    from mgpt_train.run_settings import deep_merge

    if run_dir is not None:
        run_dir = Path(run_dir)
        settings = RunSettings.from_run_dir(run_dir)
        if overrides:
            settings = RunSettings.from_json_dict(deep_merge(settings.to_json_dict(), overrides))
        if checkpoint is None:
            from mgpt_train.checkpointing import default_checkpoint

            checkpoint = default_checkpoint(run_dir)
    else:
        settings = RunSettings.load(preset, overrides)
    if checkpoint is not None:
        checkpoint = Path(checkpoint).expanduser().resolve()
        if not checkpoint.exists():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    return ModelSource(settings, checkpoint, None if run_dir is None else Path(run_dir).resolve())


def keepable(trainable_params: int, checkpoints: int, untrained: bool) -> bool:
    """Whether `InferenceModel.keep` holds ``checkpoints`` trainable states of ``trainable_params``
    parameters each (and needs, when ``untrained``, the untrained copy it keeps only for small ones)."""
    return ((not untrained or trainable_params <= _MAX_KEPT_INITIAL_PARAMS)
            and trainable_params * checkpoints <= MAX_KEPT_PARAMS)


def with_decoding(base: GenerationSettings, **overrides: Any) -> GenerationSettings:
    """``base`` with every non-None override applied (validated)."""
    from mgpt_bridge import GenerationSettings

    changes = {k: v for k, v in overrides.items() if v is not None}
    return GenerationSettings.model_validate({**base.model_dump(), **changes})


class InferenceModel:
    """A run's model in eval mode on one device, with a lock for callers that share it across threads.

    `use` loads another checkpoint's trainable parameters (or the untrained ones) in place; `keep`
    holds checkpoints' parameters in memory so that `use` reads no file for them.
    """

    def __init__(self, source: ModelSource, device: str = "auto"):
        from mgpt_train.modeling import build_model
        from mgpt_train.settings import resolve_precision

        self.source = source
        self.device = resolve_device(device)
        self.model: VisionLanguageModel = build_model(source.settings, device=self.device).eval()
        trainable = self.model.trainable_state_dict()
        self.trainable_params = sum(t.numel() for t in trainable.values())
        self._initial = ({k: v.detach().to("cpu", copy=True) for k, v in trainable.items()}
                         if self.trainable_params <= _MAX_KEPT_INITIAL_PARAMS else None)
        self._kept: dict[Path, dict[str, torch.Tensor]] = {}
        self.precision = resolve_precision(source.settings.train.precision, self.device)
        self.lock = threading.Lock()  # not an RLock: a streaming generator may resume in another thread
        self.version = 0  # bumped on every checkpoint switch (cached image embeddings go stale)
        self.checkpoint: Path | None = None
        if source.checkpoint is not None:  # freshly built = untrained: nothing to load for None
            self.use(source.checkpoint)

    @property
    def name(self) -> str:
        return checkpoint_name(self.checkpoint)

    def keep(self, checkpoints: Sequence[Path | str | None]) -> bool:
        """Hold these checkpoints' trainable parameters in memory (None: the untrained ones, kept
        already when small). False, keeping nothing new, when they would pass `MAX_KEPT_PARAMS` or
        the untrained parameters are needed but were not kept (a large trainable part)."""
        from mgpt_train.checkpointing import read_trainable

        paths = [Path(c) for c in dict.fromkeys(checkpoints) if c is not None]
        if not keepable(self.trainable_params, len(set(paths) | set(self._kept)), None in checkpoints):
            return False
        for path in paths:
            if path not in self._kept:
                self._kept[path] = {k: v.to("cpu") for k, v in read_trainable(path).items()}
        return True

    def use(self, checkpoint: Path | str | None) -> None:
        """Switch to ``checkpoint`` (a folder or ``.safetensors`` file; None = the untrained bridge)."""
        from mgpt_train.checkpointing import read_trainable

        path = None if checkpoint is None else Path(checkpoint)
        with self.lock:
            if path is None:
                if self._initial is None:
                    raise ValueError("the untrained parameters of this large model were not kept; "
                                     "restart without a checkpoint to use them")
                state = self._initial
            else:
                state = self._kept.get(path) or read_trainable(path)
            self.model.load_trainable_state_dict(state)
            self.checkpoint = path
            self.version += 1
            kept = path is None or path in self._kept
            logger.log(logging.DEBUG if kept else logging.INFO, "inference model: %s on %s", self.name,
                       self.device)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """The frozen encoder's tokens of ``pixels`` under the run's autocast, to pass as
        ``generate(features=...)`` for every checkpoint; None when the encoder trains (its output
        then differs between checkpoints, so callers pass the pixels)."""
        import torch

        from mgpt_bridge.tuning import is_frozen

        if self.model.encoder is None or not is_frozen(self.model.encoder):
            return None
        with torch.no_grad(), self.autocast():
            return self.model.encoder(pixels)

    def autocast(self) -> AbstractContextManager:
        """The run's precision on this device (bf16/fp16 autocast, or nothing for fp32)."""
        from mgpt_train.modeling import autocast

        return autocast(self.precision, self.device)

    def pixels(self, images: list[Any]) -> torch.Tensor:
        """PIL images → the encoder's eval-time pixels on this device."""
        import torch

        from mgpt_data import pixels_from_images

        return torch.from_numpy(pixels_from_images(images, self.model.preprocess.as_dict())).to(self.device)
