"""mgpt_bridge: LM loading, projector, MiniGPT-4 prompt template, image splice, VLM and checkpoints."""

from .adapter import ADAPTER_DIR, export_merged_lm, save_lora_adapter, write_lora_adapter
from .checkpoint import TRAINABLE_FILE, load_trainable, read_contents, save_trainable, trainable_file
from .contents import TrainableContents, describe_trainable
from .conversation import Conversation, Exchange
from .convert import ConvertResult, Direction, check_fits, convert_checkpoint, detect_direction
from .inspect import inspect_model
from .inspect_text import format_report
from .lm_loading import ensure_pad_token, ensure_smollm2_dir, load_lm, smollm2_gguf_path
from .minigpt4_interop import CheckpointError, Ignored, MiniGPT4Import, export_minigpt4, import_minigpt4
from .model import VisionLanguageModel, build_vlm, check_state_dict, expected_trainable_shapes
from .projector import PROJECTOR_KINDS, ProjectorSpec, build_projector, projected_tokens
from .settings import MINIGPT4_INSTRUCTIONS, BridgeSettings, GenerationSettings, TemplateSettings
from .splice import splice_image_embeds
from .stopping import EndSymStoppingCriteria, trim_generation
from .streaming import StreamedReply, stream_reply
from .template import (
    IGNORE_INDEX,
    PromptTemplate,
    bos_prefix,
    build_batch,
    build_generation_prompt,
    build_segments_prompt,
    normalize_caption,
)
from .tuning import apply_lm_tuning, freeze, is_frozen, lora_config

__all__ = [
    "ADAPTER_DIR",
    "BridgeSettings",
    "CheckpointError",
    "ConvertResult",
    "Direction",
    "Conversation",
    "Exchange",
    "EndSymStoppingCriteria",
    "GenerationSettings",
    "IGNORE_INDEX",
    "Ignored",
    "MINIGPT4_INSTRUCTIONS",
    "MiniGPT4Import",
    "PROJECTOR_KINDS",
    "ProjectorSpec",
    "PromptTemplate",
    "TRAINABLE_FILE",
    "StreamedReply",
    "TemplateSettings",
    "TrainableContents",
    "VisionLanguageModel",
    "apply_lm_tuning",
    "bos_prefix",
    "build_batch",
    "build_generation_prompt",
    "build_segments_prompt",
    "build_projector",
    "build_vlm",
    "check_fits",
    "check_state_dict",
    "convert_checkpoint",
    "describe_trainable",
    "detect_direction",
    "ensure_pad_token",
    "ensure_smollm2_dir",
    "expected_trainable_shapes",
    "export_merged_lm",
    "export_minigpt4",
    "format_report",
    "freeze",
    "import_minigpt4",
    "inspect_model",
    "is_frozen",
    "load_lm",
    "load_trainable",
    "lora_config",
    "normalize_caption",
    "projected_tokens",
    "read_contents",
    "save_lora_adapter",
    "save_trainable",
    "smollm2_gguf_path",
    "splice_image_embeds",
    "trainable_file",
    "stream_reply",
    "trim_generation",
    "write_lora_adapter",
]
