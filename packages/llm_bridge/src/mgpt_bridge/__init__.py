"""mgpt_bridge: LM loading, projector, MiniGPT-4 prompt template, image splice, VLM and checkpoints."""

from .adapter import ADAPTER_DIR, export_merged_lm, save_lora_adapter, write_lora_adapter
from .checkpoint import export_minigpt4, import_minigpt4, load_trainable, read_contents, save_trainable
from .contents import TrainableContents, describe_trainable
from .lm_loading import ensure_pad_token, ensure_smollm2_dir, load_lm, smollm2_gguf_path
from .model import VisionLanguageModel, build_vlm, check_state_dict
from .projector import PROJECTOR_KINDS, ProjectorSpec, build_projector, projected_tokens
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
from .tuning import apply_lm_tuning, freeze, is_frozen, lora_config

__all__ = [
    "ADAPTER_DIR",
    "IGNORE_INDEX",
    "MINIGPT4_INSTRUCTIONS",
    "PROJECTOR_KINDS",
    "BridgeSettings",
    "EndSymStoppingCriteria",
    "GenerationSettings",
    "ProjectorSpec",
    "PromptTemplate",
    "TemplateSettings",
    "TrainableContents",
    "VisionLanguageModel",
    "apply_lm_tuning",
    "bos_prefix",
    "build_batch",
    "build_generation_prompt",
    "build_projector",
    "build_vlm",
    "check_state_dict",
    "describe_trainable",
    "ensure_pad_token",
    "ensure_smollm2_dir",
    "export_merged_lm",
    "export_minigpt4",
    "freeze",
    "import_minigpt4",
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
    "trim_generation",
    "write_lora_adapter",
]
