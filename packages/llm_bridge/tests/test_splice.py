"""splice_image_embeds: embeddings land exactly at the slots; count mismatches raise."""

from __future__ import annotations

import pytest
import torch

from mgpt_bridge import splice_image_embeds


def _mask(rows: list[list[int]], length: int) -> torch.Tensor:
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, positions in enumerate(rows):
        mask[i, positions] = True
    return mask


def test_embeddings_land_exactly_at_the_slots():
    torch.manual_seed(0)
    inputs = torch.randn(2, 7, 5)
    images = torch.randn(2, 3, 5, requires_grad=True)
    mask = _mask([[1, 2, 3], [4, 5, 6]], 7)
    out = splice_image_embeds(inputs, mask, images)
    assert torch.equal(out[0, 1:4], images[0]) and torch.equal(out[1, 4:7], images[1])
    assert torch.equal(out[~mask], inputs[~mask])  # everything else untouched
    assert not torch.equal(inputs[mask], out[mask])  # out of place: inputs not modified
    out.sum().backward()
    assert torch.equal(images.grad, torch.ones_like(images))


def test_non_contiguous_slots_are_filled_in_order():
    inputs = torch.zeros(1, 6, 2)
    images = torch.arange(6.0).reshape(1, 3, 2)
    out = splice_image_embeds(inputs, _mask([[0, 2, 5]], 6), images)
    assert out[0, [0, 2, 5]].tolist() == images[0].tolist()


def test_dtype_follows_the_inputs():
    out = splice_image_embeds(
        torch.zeros(1, 3, 4, dtype=torch.bfloat16), _mask([[1]], 3), torch.ones(1, 1, 4)
    )
    assert out.dtype == torch.bfloat16 and out[0, 1].tolist() == [1.0] * 4


def test_slot_count_mismatch_raises():
    with pytest.raises(ValueError, match=r"\[2, 3\] image slots per row but the projector gives 3 tokens"):
        splice_image_embeds(torch.zeros(2, 6, 4), _mask([[0, 1], [0, 1, 2]], 6), torch.zeros(2, 3, 4))


def test_shape_errors_raise():
    with pytest.raises(ValueError, match="batch and hidden size"):
        splice_image_embeds(torch.zeros(1, 6, 4), _mask([[0, 1, 2]], 6), torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="must match inputs_embeds"):
        splice_image_embeds(torch.zeros(1, 6, 4), _mask([[0]], 5), torch.zeros(1, 1, 4))
    with pytest.raises(ValueError, match=r"\[B,L,H\]"):
        splice_image_embeds(torch.zeros(6, 4), _mask([[0]], 6), torch.zeros(1, 1, 4))
