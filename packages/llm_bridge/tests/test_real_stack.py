"""The default stack for real: frozen EfficientNet-Lite0 (ImageNet weights) → linear → frozen SmolLM2-135M."""

from __future__ import annotations

import pytest
import torch

from mgpt_bridge import BridgeSettings, build_vlm
from mgpt_vision import VisionSettings


@pytest.fixture(scope="module")
def default_vlm(smol_dir):
    torch.manual_seed(0)  # the projector's init comes from the global RNG
    return build_vlm(VisionSettings(), BridgeSettings())


def test_default_stack_summary(default_vlm):
    s = default_vlm.summary()
    assert s["encoder"] == "tf_efficientnet_lite0" and s["lm"] == "smollm2-135m-instruct"
    assert (s["image_tokens"], s["token_dim"], s["lm_hidden"]) == (16, 1280, 576)
    assert s["trainable_params"] == 1280 * 576 + 576 == s["projector_params"]
    assert s["encoder_frozen"] and s["lm_frozen"] and s["dtype"] == "float32"
    assert default_vlm.preprocess.image_size == 224


def test_gradient_step_changes_only_the_projector(default_vlm):
    vlm = default_vlm
    size = vlm.preprocess.image_size
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    answers = ["a red square on the left", "two blue circles"]
    instructions = vlm.template.instructions[:2]
    before = {k: v.clone() for k, v in vlm.state_dict().items()}  # parameters and buffers (BN statistics)
    optimizer = torch.optim.AdamW([p for p in vlm.parameters() if p.requires_grad], lr=1e-5)
    vlm.train()
    loss = vlm(answers=answers, pixels=pixels, instructions=instructions).loss
    loss.backward()
    optimizer.step()
    after = vlm.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"projector.weight", "projector.bias"}
    assert all(p.grad is None for n, p in vlm.named_parameters() if not n.startswith("projector."))
    with torch.no_grad():
        new_loss = vlm(answers=answers, pixels=pixels, instructions=instructions).loss
    assert new_loss < loss  # the step went downhill
    vlm.eval()
    captions = vlm.generate(pixels=pixels, max_new_tokens=4)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
