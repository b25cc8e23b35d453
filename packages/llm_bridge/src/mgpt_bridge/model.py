"""VisionLanguageModel: image encoder → projector → spliced into a causal LM's input embeddings."""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteriaList
from transformers.modeling_outputs import CausalLMOutputWithPast

from mgpt_vision import count_parameters

from .contents import describe_trainable
from .loss import answer_loss
from .projector import ProjectorSpec, build_projector, projected_tokens
from .settings import BridgeSettings, GenerationSettings
from .splice import splice_image_embeds
from .stopping import EndSymStoppingCriteria, trim_generation
from .template import PromptTemplate, build_batch, build_generation_prompt
from .tuning import is_frozen

if TYPE_CHECKING:
    from mgpt_vision import VisionSettings

logger = logging.getLogger(__name__)

# The prompt goes in as inputs_embeds, so repetition_penalty sees only new tokens, as in MiniGPT-4:
# intended, so transformers' warning about it (once per generate call) is not shown.
warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`")


class VisionLanguageModel(nn.Module):
    """Any encoder module giving ``[B, num_encoder_tokens, token_dim]`` + a projector + a HF causal LM.

    The projector may change the token count (``ldp``: 576 → 144); ``num_image_tokens`` is what the LM
    sees (its image slots), ``num_encoder_tokens`` what the encoder (and the feature cache) gives.
    Frozen parts (no parameter requiring grad) stay in eval mode through ``train()``; a frozen
    encoder runs under ``torch.no_grad()``.
    """

    def __init__(
        self,
        encoder: nn.Module | None,
        projector: nn.Module,
        lm: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None,
        template: PromptTemplate,
        *,
        num_encoder_tokens: int,
        token_dim: int,
        generation: GenerationSettings | None = None,
        encoder_name: str = "custom",
        lm_name: str = "custom",
        seed: int = 42,
        preprocess: Any = None,
        projector_spec: ProjectorSpec | None = None,
        lm_init: str = "pretrained",
    ):
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.lm = lm
        self.tokenizer = tokenizer
        self.template = template
        self.num_encoder_tokens = int(num_encoder_tokens)
        self.num_image_tokens = projected_tokens(projector, self.num_encoder_tokens)
        self.token_dim = int(token_dim)
        self.projector_spec = projector_spec
        self.lm_init = lm_init
        self.generation_settings = generation or GenerationSettings()
        self.encoder_name = encoder_name
        self.lm_name = lm_name
        self.preprocess = preprocess
        self._rng = random.Random(seed)
        self.train(False)

    # -- modes ---------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> VisionLanguageModel:
        super().train(mode)
        for part in (self.encoder, self.lm):
            if part is not None and is_frozen(part):
                part.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    @property
    def lm_hidden(self) -> int:
        return int(self.lm.get_input_embeddings().embedding_dim)

    def _need_tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer is None:
            raise RuntimeError(
                "this model has no tokenizer (built on meta without lm_path); it cannot run text"
            )
        return self.tokenizer

    # -- images --------------------------------------------------------------------------------------------
    def encode_images(
        self, pixels: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Project encoder tokens (``pixels`` [B,3,S,S] or cached ``features`` [B,N,D]) to [B,M,lm_hidden]
        (N = ``num_encoder_tokens``, M = ``num_image_tokens``)."""
        if (pixels is None) == (features is None):
            raise ValueError("pass exactly one of pixels= or features=")
        if pixels is not None:
            if self.encoder is None:
                raise ValueError("this model has no encoder; pass features= (cached encoder outputs)")
            if is_frozen(self.encoder):
                with torch.no_grad():
                    features = self.encoder(pixels)
            else:
                features = self.encoder(pixels)
        assert features is not None
        expected = (self.num_encoder_tokens, self.token_dim)
        if features.ndim != 3 or tuple(features.shape[1:]) != expected:
            raise ValueError(
                f"image features must be [B, {expected[0]}, {expected[1]}], got {tuple(features.shape)}"
            )
        weight = next(self.projector.parameters())
        embeds = self.projector(features.to(device=weight.device, dtype=weight.dtype))
        if tuple(embeds.shape[1:]) != (self.num_image_tokens, self.lm_hidden):
            raise ValueError(
                f"the projector gave {tuple(embeds.shape)}, expected [B, {self.num_image_tokens}, "
                f"{self.lm_hidden}] (a projector changing the token count must define output_tokens)"
            )
        return embeds

    def embed_prompt(self, batch: Mapping[str, torch.Tensor], image_embeds: torch.Tensor) -> torch.Tensor:
        """The LM's input embeddings of ``batch["input_ids"]`` with ``image_embeds`` at its image slots."""
        embedding = self.lm.get_input_embeddings()
        inputs_embeds = embedding(batch["input_ids"].to(embedding.weight.device))
        return splice_image_embeds(inputs_embeds, batch["image_mask"], image_embeds)

    def _instructions(self, instructions: Sequence[str] | str | None, n: int, *, sample: bool) -> list[str]:
        if instructions is None:
            pool = self.template.instructions
            return [self._rng.choice(pool) for _ in range(n)] if sample else [pool[0]] * n
        if isinstance(instructions, str):
            return [instructions] * n
        if len(instructions) != n:
            raise ValueError(f"{len(instructions)} instructions for {n} images")
        return list(instructions)

    # -- training ------------------------------------------------------------------------------------------
    def forward(
        self,
        *,
        answers: Sequence[str],
        pixels: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        instructions: Sequence[str] | str | None = None,
    ) -> CausalLMOutputWithPast:
        """Teacher-forced LM loss on ``answers`` (+ end_sym) given the images.

        ``.loss`` is the mean over answer tokens, as HF's ``labels=`` loss; the vocabulary head runs
        only at the positions that predict a label (`answer_loss`), so ``.logits`` is None.

        ``instructions=None`` samples one per row from the template's pool with the model's seeded RNG.
        """
        tokenizer = self._need_tokenizer()
        image_embeds = self.encode_images(pixels, features)
        if isinstance(answers, str) or len(answers) != image_embeds.shape[0]:
            raise ValueError(f"answers must be a list with one string per image ({image_embeds.shape[0]})")
        rows = self._instructions(instructions, len(answers), sample=True)
        batch = build_batch(tokenizer, self.template, rows, answers, self.num_image_tokens)
        device = self.lm.get_input_embeddings().weight.device
        inputs_embeds = self.embed_prompt(batch, image_embeds.to(device))
        hidden = self.lm.get_decoder()(
            inputs_embeds=inputs_embeds, attention_mask=batch["attention_mask"].to(device), use_cache=False
        ).last_hidden_state
        loss = answer_loss(hidden, batch["labels"].to(device), self.lm.get_output_embeddings())
        return CausalLMOutputWithPast(loss=loss)

    # -- generation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        *,
        pixels: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        instructions: Sequence[str] | str | None = None,
        **decoding: Any,
    ) -> list[str]:
        """Captions for a batch of images; ``decoding`` overrides :class:`GenerationSettings` fields
        (max_new_tokens, num_beams, do_sample, temperature, top_p, repetition_penalty).

        Other keywords go to ``transformers`` ``generate`` as they are (it rejects unknown ones).
        Rows are left padded; each stops at end_sym (ids or text) or eos, which is trimmed off.
        ``instructions=None`` uses the first instruction of the pool. Runs in eval mode.
        """
        tokenizer = self._need_tokenizer()
        was_training = self.training
        self.eval()
        try:
            image_embeds = self.encode_images(pixels, features)
            rows = self._instructions(instructions, image_embeds.shape[0], sample=False)
            batch = build_generation_prompt(tokenizer, self.template, rows, self.num_image_tokens)
            return self.generate_prompted(batch, image_embeds, **decoding)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def generate_prompted(
        self, batch: Mapping[str, torch.Tensor], image_embeds: torch.Tensor, **decoding: Any
    ) -> list[str]:
        """Answers for a left-padded prompt ``batch`` built beforehand (`build_generation_prompt`, or
        `build_segments_prompt` over conversations' `Conversation.segments`), whose image slots take
        ``image_embeds`` [B, num_image_tokens, lm_hidden]; ``decoding`` as in :meth:`generate`."""
        tokenizer = self._need_tokenizer()
        settings, extra = self.decoding(**decoding)
        was_training = self.training
        self.eval()
        try:
            device = self.lm.get_input_embeddings().weight.device
            inputs_embeds = self.embed_prompt(batch, image_embeds.to(device))
            stop = EndSymStoppingCriteria(tokenizer, self.template.end_sym)
            out = self.lm.generate(
                inputs_embeds=inputs_embeds,
                attention_mask=batch["attention_mask"].to(device),
                stopping_criteria=StoppingCriteriaList([stop, *extra.pop("stopping_criteria", [])]),
                pad_token_id=tokenizer.pad_token_id,
                **settings.generate_kwargs(),
                **extra,
            )
        finally:
            self.train(was_training)
        return [trim_generation(tokenizer, row, self.template.end_sym, stop.id_sequences) for row in out]

    def decoding(self, **decoding: Any) -> tuple[GenerationSettings, dict[str, Any]]:
        """``(GenerationSettings, extra generate kwargs)``: the model's settings with the
        :class:`GenerationSettings` fields in ``decoding`` replaced (validated); the rest (e.g.
        ``logits_processor``) is passed to ``transformers`` as it is, which rejects unknown keys."""
        known = {k: v for k, v in decoding.items() if k in GenerationSettings.model_fields}
        extra = {k: v for k, v in decoding.items() if k not in known}
        return GenerationSettings.model_validate({**self.generation_settings.model_dump(), **known}), extra

    # -- trainable state -----------------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the parameters that require grad (projector, LoRA/LM/encoder when tuned), detached."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    def trainable_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape of every parameter that requires grad (what a trainable checkpoint holds)."""
        return {name: tuple(p.shape) for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load exactly the trainable parameters; raise naming missing/unexpected keys, shape mismatches,
        led by what differs in words (e.g. "checkpoint holds an mlp-3 projector; this model has a linear
        projector")."""
        params = {name: p for name, p in self.named_parameters() if p.requires_grad}
        expected = self.trainable_shapes()
        try:
            check_state_dict(state_dict, expected)
        except ValueError as err:
            differs = describe_trainable(state_dict).mismatch(describe_trainable(expected))
            if differs is None:
                raise
            raise ValueError(f"{differs} | {err}") from None
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state_dict[name].to(device=param.device, dtype=param.dtype))

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count (shared tensors once)."""
        return count_parameters(self, trainable_only=trainable_only)

    def _lora(self) -> dict[str, Any] | None:
        """The LoRA hyper-parameters of a peft-wrapped LM (None otherwise)."""
        config = getattr(self.lm, "peft_config", {}).get("default")
        if config is None:
            return None
        targets = config.target_modules
        return {
            "r": config.r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "target_modules": targets if isinstance(targets, str) else sorted(targets),
        }

    def summary(self) -> dict[str, Any]:
        """What the model is: encoder, LM, encoder/projected image tokens, widths, the projector, parameter
        counts and dtypes."""
        trained = describe_trainable({n: p for n, p in self.named_parameters() if p.requires_grad})
        return {
            "encoder": self.encoder_name,
            "encoder_frozen": is_frozen(self.encoder),
            "encoder_trained": list(trained.encoder_trained),
            "lm": self.lm_name,
            "lm_frozen": is_frozen(self.lm),
            "lm_tuning": trained.lm_tuning,
            "lm_init": self.lm_init,
            "lora": self._lora(),
            "encoder_tokens": self.num_encoder_tokens,
            "image_tokens": self.num_image_tokens,
            "token_dim": self.token_dim,
            "lm_hidden": self.lm_hidden,
            "projector": self.projector_spec.label if self.projector_spec else type(self.projector).__name__,
            "projector_kind": self.projector_spec.kind if self.projector_spec else "custom",
            "projector_layers": self.projector_spec.layers if self.projector_spec else None,
            "projector_params": count_parameters(self.projector),
            "total_params": self.num_parameters(),
            "trainable_params": self.num_parameters(trainable_only=True),
            "dtype": str(self.lm.get_input_embeddings().weight.dtype).removeprefix("torch."),
            "projector_dtype": str(next(self.projector.parameters()).dtype).removeprefix("torch."),
            "device": str(self.device),
        }


def check_state_dict(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]) -> None:
    """Raise ``ValueError`` naming missing keys, unexpected keys and shape mismatches (checkpoint/model);
    each list shows its first three (a LoRA state dict has hundreds of keys)."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k])}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k])
    ]

    def first(items: list[str]) -> str:
        return f"{items[:3]}" + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")

    problems = []
    if missing:
        problems.append(f"missing keys {first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {first(unexpected)}")
    if mismatched:
        problems.append(
            "shape mismatch "
            + "; ".join(mismatched[:3])
            + (f" (+{len(mismatched) - 3} more)" if len(mismatched) > 3 else "")
        )
    if problems:
        raise ValueError("trainable state dict does not fit the model: " + " | ".join(problems))


def build_vlm(
    vision: VisionSettings, bridge: BridgeSettings, *, device: str | torch.device = "cpu", meta: bool = False
) -> VisionLanguageModel:
    """Encoder from ``vision`` (its trainability from the vision settings), LM + projector + template from
    ``bridge``. ``meta=True`` puts everything on the meta device without loading weights."""
    from mgpt_vision import build_encoder

    from .lm_loading import load_lm
    from .tuning import apply_lm_tuning

    encoder = build_encoder(vision, device=device, meta=meta)
    lm, tokenizer = load_lm(bridge, device=device, meta=meta)
    lm = apply_lm_tuning(lm, bridge)
    hidden = int(lm.get_input_embeddings().embedding_dim)
    with torch.device("meta" if meta else device):  # init from the global RNG: callers seed (train.seed)
        projector = build_projector(
            bridge.projector, encoder.token_dim, hidden, layers=bridge.projector_layers
        )
    template = PromptTemplate(bridge.template, tokenizer)
    model = VisionLanguageModel(
        encoder.module,
        projector,
        lm,
        tokenizer,
        template,
        num_encoder_tokens=encoder.num_tokens,
        token_dim=encoder.token_dim,
        generation=bridge.generation,
        encoder_name=encoder.name,
        lm_name=_lm_name(bridge),
        seed=bridge.seed,
        preprocess=encoder.preprocess,
        projector_spec=ProjectorSpec.of(bridge.projector, bridge.projector_layers),
        lm_init=bridge.lm_init,
    )
    logger.info("built VLM %s", model.summary())
    return model


def expected_trainable_shapes(vision: VisionSettings, bridge: BridgeSettings) -> dict[str, tuple[int, ...]]:
    """What a model built from these settings trains, name → shape, from a meta build (no weights, ~1 s)."""
    return build_vlm(vision, bridge, device="meta", meta=True).trainable_shapes()


def _lm_name(bridge: BridgeSettings) -> str:
    if bridge.lm == "smollm2":
        return "smollm2-135m-instruct"
    if bridge.lm == "tiny":
        return "tiny-llama"
    return bridge.lm_path.name if bridge.lm_path is not None else "llama-7b-shapes"
