"""Put projected image embeddings into the LM's input embeddings at the image slots (as HF Llava does)."""

from __future__ import annotations

import torch


def splice_image_embeds(
    inputs_embeds: torch.Tensor, image_mask: torch.Tensor, image_embeds: torch.Tensor
) -> torch.Tensor:
    """Return ``inputs_embeds`` [B,L,H] with row b's True slots of ``image_mask`` [B,L] filled, in order,
    by ``image_embeds`` [B,N,H]. Out of place, differentiable w.r.t. ``image_embeds``.
    """
    if inputs_embeds.ndim != 3 or image_embeds.ndim != 3:
        raise ValueError(
            f"expected inputs_embeds [B,L,H] and image_embeds [B,N,H], got {tuple(inputs_embeds.shape)} "
            f"and {tuple(image_embeds.shape)}"
        )
    if image_mask.shape != inputs_embeds.shape[:2]:
        raise ValueError(
            f"image_mask {tuple(image_mask.shape)} must match inputs_embeds[:2] "
            f"{tuple(inputs_embeds.shape[:2])}"
        )
    if image_embeds.shape[0] != inputs_embeds.shape[0] or image_embeds.shape[2] != inputs_embeds.shape[2]:
        raise ValueError(
            f"image_embeds {tuple(image_embeds.shape)} does not fit inputs_embeds "
            f"{tuple(inputs_embeds.shape)} (batch and hidden size must agree)"
        )
    slots = image_mask.sum(dim=1)
    n_tokens = image_embeds.shape[1]
    if bool((slots != n_tokens).any()):
        raise ValueError(
            f"image slots and image tokens do not match: the prompt has {slots.tolist()} image slots per row "
            f"but the projector gives {n_tokens} tokens per image (the prompt needs the projector's count)"
        )
    mask = image_mask.to(device=inputs_embeds.device, dtype=torch.bool).unsqueeze(-1).expand_as(inputs_embeds)
    return inputs_embeds.masked_scatter(mask, image_embeds.to(inputs_embeds.dtype))
