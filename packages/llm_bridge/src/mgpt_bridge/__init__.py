"""mgpt_bridge: LM loading, projector, MiniGPT-4 prompt template, image splice, VLM and checkpoints."""

from .checkpoint import export_minigpt4, import_minigpt4, load_trainable, save_trainable
from .conversation import Conversation, Exchange
from .lm_loading import ensure_pad_token, ensure_smollm2_dir, load_lm, smollm2_gguf_path
from .model import VisionLanguageModel, build_vlm, check_state_dict
from .projector import build_projector
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
from .tuning import apply_lm_tuning, freeze, is_frozen

__all__ = [
    "IGNORE_INDEX",
    "MINIGPT4_INSTRUCTIONS",
    "BridgeSettings",
    "Conversation",
    "Exchange",
    "EndSymStoppingCriteria",
    "GenerationSettings",
    "PromptTemplate",
    "StreamedReply",
    "TemplateSettings",
    "VisionLanguageModel",
    "apply_lm_tuning",
    "bos_prefix",
    "build_batch",
    "build_generation_prompt",
    "build_segments_prompt",
    "build_projector",
    "build_vlm",
    "check_state_dict",
    "ensure_pad_token",
    "ensure_smollm2_dir",
    "export_minigpt4",
    "freeze",
    "import_minigpt4",
    "is_frozen",
    "load_lm",
    "load_trainable",
    "normalize_caption",
    "save_trainable",
    "smollm2_gguf_path",
    "splice_image_embeds",
    "stream_reply",
    "trim_generation",
]
