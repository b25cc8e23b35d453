"""mgpt_bridge: LM loading, projector, MiniGPT-4 prompt template, image splice, VLM and checkpoints."""

from .checkpoint import TRAINABLE_FILE, load_trainable, save_trainable, trainable_file
from .convert import ConvertResult, Direction, check_fits, convert_checkpoint, detect_direction
from .inspect import inspect_model
from .inspect_text import format_report
from .lm_loading import ensure_pad_token, ensure_smollm2_dir, load_lm, smollm2_gguf_path
from .minigpt4_interop import CheckpointError, Ignored, MiniGPT4Import, export_minigpt4, import_minigpt4
from .model import VisionLanguageModel, build_vlm, check_state_dict, expected_trainable_shapes
from .projector import build_projector
from .settings import MINIGPT4_INSTRUCTIONS, BridgeSettings, GenerationSettings, TemplateSettings
from .splice import splice_image_embeds
from .stopping import EndSymStoppingCriteria, trim_generation
from .template import (
    IGNORE_INDEX,
    PromptTemplate,
    bos_prefix,
    build_batch,
    build_generation_prompt,
    normalize_caption,
)
from .tuning import apply_lm_tuning, freeze, is_frozen

__all__ = [
    "IGNORE_INDEX",
    "MINIGPT4_INSTRUCTIONS",
    "TRAINABLE_FILE",
    "BridgeSettings",
    "CheckpointError",
    "ConvertResult",
    "Direction",
    "EndSymStoppingCriteria",
    "GenerationSettings",
    "Ignored",
    "MiniGPT4Import",
    "PromptTemplate",
    "TemplateSettings",
    "VisionLanguageModel",
    "apply_lm_tuning",
    "bos_prefix",
    "build_batch",
    "build_generation_prompt",
    "build_projector",
    "build_vlm",
    "check_fits",
    "check_state_dict",
    "convert_checkpoint",
    "detect_direction",
    "ensure_pad_token",
    "ensure_smollm2_dir",
    "expected_trainable_shapes",
    "export_minigpt4",
    "format_report",
    "freeze",
    "import_minigpt4",
    "inspect_model",
    "is_frozen",
    "load_lm",
    "load_trainable",
    "normalize_caption",
    "save_trainable",
    "smollm2_gguf_path",
    "splice_image_embeds",
    "trainable_file",
    "trim_generation",
]
