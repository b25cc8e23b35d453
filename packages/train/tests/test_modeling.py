"""`build_model(precision=...)`: frozen linear weights stored in the autocast dtype give the same step."""

from __future__ import annotations

import torch

from mgpt_train.modeling import autocast, build_model


def _loss_and_grads(model, batch):
    model.train()
    with autocast("bf16", "cpu"):
        loss = model(**batch).loss
    loss.float().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads


def test_frozen_linears_cast_once_give_the_same_bits_under_autocast(make_settings, tmp_path) -> None:
    settings = make_settings(tmp_path)
    plain = build_model(settings)
    cast = build_model(settings, precision="bf16")
    head, embedding = cast.lm.get_output_embeddings(), cast.lm.get_input_embeddings()
    assert plain.lm.get_output_embeddings().weight is plain.lm.get_input_embeddings().weight  # tied
    assert head.weight.dtype == torch.bfloat16 and embedding.weight.dtype == torch.float32  # untied copy
    assert cast.projector.weight.dtype == torch.float32 and cast.projector.weight.requires_grad
    frozen_linears = [m for m in cast.lm.modules() if isinstance(m, torch.nn.Linear)]
    assert frozen_linears and all(m.weight.dtype == torch.bfloat16 for m in frozen_linears)

    torch.manual_seed(0)
    batch = {"features": torch.randn(3, cast.num_image_tokens, cast.token_dim),
             "answers": ["a red square", "two blue circles on the left", "a green triangle"],
             "instructions": [cast.template.instructions[0]] * 3}
    loss_plain, grads_plain = _loss_and_grads(plain, batch)
    loss_cast, grads_cast = _loss_and_grads(cast, batch)
    assert torch.equal(loss_plain, loss_cast)
    assert set(grads_plain) == set(grads_cast) == {"projector.weight", "projector.bias"}
    for name in grads_plain:
        assert torch.equal(grads_plain[name], grads_cast[name]), name


def test_fp32_leaves_the_model_alone(make_settings, tmp_path) -> None:
    model = build_model(make_settings(tmp_path), precision="fp32")
    assert all(p.dtype == torch.float32 for p in model.parameters())
