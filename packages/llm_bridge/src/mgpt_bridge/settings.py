"""Settings of the bridge: LM choice and tuning, projector, prompt template, decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The four MiniGPT-4 stage-2 instructions (prompts/alignment.txt), each behind the image tag.
MINIGPT4_INSTRUCTIONS: tuple[str, ...] = tuple(
    "<Img><ImageHere></Img> " + sentence
    for sentence in (
        "Describe this image in detail.",
        "Take a look at this image and describe what you notice.",
        "Please provide a detailed description of the picture.",
        "Could you describe the contents of this image for me?",
    )
)


class TemplateSettings(BaseModel):
    """How an instruction, the image slots and the answer become one token sequence.

    ``style="minigpt4"`` formats ``prompt`` (the Vicuna ``###Human: {} ###Assistant: `` form) with the
    instruction; ``style="chat"`` applies the LM tokenizer's own chat template to one user turn holding
    the instruction (``prompt`` is then unused). Stage 1 of MiniGPT-4 is ``prompt="{}"``,
    ``instructions=["<ImageHere>"]``, ``end_sym="\\n"``, ``max_txt_len=32``.
    """

    model_config = ConfigDict(extra="forbid")

    style: Literal["minigpt4", "chat"] = "minigpt4"
    prompt: str = "###Human: {} ###Assistant: "
    system: str | None = Field(
        None, description="chat style: system message (None = the chat template's own default, if any)"
    )
    image_placeholder: str = "<ImageHere>"
    instructions: list[str] = Field(default_factory=lambda: list(MINIGPT4_INSTRUCTIONS))
    end_sym: str = Field("###", min_length=1, description="appended to answers; generation stops on it")
    max_txt_len: int = Field(160, ge=1, description="answer + end_sym tokens kept (MiniGPT-4 truncation)")
    normalize_answers: bool = Field(
        False, description="lowercase, strip punctuation, keep <= 50 words (MiniGPT-4 caption cleaning)"
    )

    @field_validator("image_placeholder")
    @classmethod
    def _placeholder_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("image_placeholder must not be empty")
        return value

    @model_validator(mode="after")
    def _check_template(self) -> TemplateSettings:
        if not self.instructions:
            raise ValueError("instructions must hold at least one instruction")
        if self.style == "minigpt4" and self.prompt.count("{}") != 1:
            raise ValueError(
                f"prompt must contain exactly one '{{}}' for the instruction, got {self.prompt!r}"
            )
        for text in self.instructions:
            rendered = self.prompt.replace("{}", text) if self.style == "minigpt4" else text
            if rendered.count(self.image_placeholder) != 1:
                raise ValueError(
                    f"each prompt needs exactly one {self.image_placeholder!r}; instruction {text!r} "
                    f"gives {rendered.count(self.image_placeholder)}"
                )
        return self


class GenerationSettings(BaseModel):
    """Decoding knobs passed to ``transformers`` ``generate``.

    Defaults are for evaluation (greedy, 30 new tokens). MiniGPT-4's demo uses
    ``num_beams=1, do_sample=True, temperature=1.0, top_p=0.9, repetition_penalty=1.05,
    max_new_tokens=300`` (see :meth:`minigpt4_demo`).
    """

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(30, ge=1)
    num_beams: int = Field(1, ge=1)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)

    @classmethod
    def minigpt4_demo(cls) -> GenerationSettings:
        """The decoding values of MiniGPT-4's demo.py."""
        return cls(
            max_new_tokens=300,
            num_beams=1,
            do_sample=True,
            temperature=1.0,
            top_p=0.9,
            repetition_penalty=1.05,
        )

    def generate_kwargs(self) -> dict:
        """Keyword arguments for ``generate``; sampling knobs only when sampling (no HF warnings)."""
        # repetition_penalty only sees new tokens (the prompt goes in as inputs_embeds), as in MiniGPT-4
        kwargs: dict = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


class BridgeSettings(BaseSettings):
    """The bridge: which LM (and how it is tuned), the projector, the template and decoding."""

    model_config = SettingsConfigDict(env_prefix="MGPT_BRIDGE__", env_nested_delimiter="__", extra="forbid")

    lm: Literal["smollm2", "tiny", "hf"] = "smollm2"
    lm_path: Path | None = Field(None, description="local HF model dir (needed for lm='hf', e.g. Vicuna-7B)")
    lm_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    load_in_8bit: bool = Field(False, description="bitsandbytes int8 LM (CUDA only)")
    attn_implementation: Literal["sdpa", "eager"] = Field(
        "sdpa", description="the LM's attention kernel (HF attn_implementation); on CPU with prompts of "
        "~70 tokens eager costs ~1.35x less CPU per step, as close to fp32 (benchmarks/attention_kernel.py)")
    lm_init: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="random: the LM's own architecture and config, weights from its init_weights under "
        "`seed` (the from-scratch ablation); the tokenizer is unchanged. The tiny LM is random either way",
    )
    projector: Literal["linear", "mlp", "ldp", "ldpv2"] = Field(
        "linear",
        description="linear (MiniGPT-4 llama_proj) | mlp (GELU between Linear layers) | ldp, ldpv2 "
        "(MobileVLM's downsampling projectors: a square grid of N tokens becomes ceil(sqrt(N)/2)^2)",
    )
    projector_layers: int = Field(
        2, ge=2, description="mlp only: Linear layers (2 = LLaVA's mlp2x_gelu, 3 = MiniGPT-4's ablation)"
    )
    lm_tuning: Literal["frozen", "lora", "full"] = "frozen"
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    template: TemplateSettings = Field(default_factory=TemplateSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    seed: int = Field(
        42, description="seed of the instruction sampling and of random LM inits (tiny, lm_init='random')"
    )

    def checkpoint_facts(self) -> dict[str, Any]:
        """What a checkpoint of this bridge cannot tell from its tensor names: the LM, its init and the
        LoRA hyper-parameters (None unless ``lm_tuning="lora"``)."""
        lora = None
        if self.lm_tuning == "lora":
            lora = {
                "r": self.lora_r,
                "alpha": self.lora_alpha,
                "dropout": self.lora_dropout,
                "target_modules": sorted(self.lora_target_modules),
            }
        return {"lm": self.lm, "lm_init": self.lm_init, "lora": lora}

    @model_validator(mode="after")
    def _check_lm(self) -> BridgeSettings:
        if self.load_in_8bit and self.lm == "tiny":
            raise ValueError(
                "load_in_8bit applies to a pretrained LM (smollm2 or hf), not the tiny random one"
            )
        if self.load_in_8bit and self.lm_tuning == "full":
            raise ValueError(
                "lm_tuning='full' cannot train int8 weights; use 'lora' or 'frozen' with load_in_8bit"
            )
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules must name at least one module")
        if self.projector != "mlp" and self.projector_layers != 2:
            raise ValueError(
                f"projector_layers={self.projector_layers} applies to projector='mlp' only "
                f"(projector is {self.projector!r})"
            )
        if self.load_in_8bit and self.lm_init == "random":
            raise ValueError(
                "load_in_8bit quantises pretrained weights; it does not apply to lm_init='random'"
            )
        return self
