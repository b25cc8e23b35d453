"""The training loss over the answer tokens only (the vocabulary head never sees prompt or padding)."""

from __future__ import annotations

import torch
from torch import nn

from .template import IGNORE_INDEX


def answer_loss(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions of ``labels`` [B,L] (-100 elsewhere),
    the vocabulary ``head`` applied to the hidden states [B,L,H] of those positions only.

    Equal to HF's ``labels=`` loss of a causal LM (logits of every position, fp32 cross-entropy,
    ``ignore_index=-100``), which runs the head over prompt and padding too: on the default
    preset ~3/4 of the positions, the step's single largest matmul and its fp32 softmax.
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits = head(hidden[:, :-1][keep])
    return nn.functional.cross_entropy(logits.float(), targets[keep])
