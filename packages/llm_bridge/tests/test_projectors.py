"""Every projector kind on the tiny preset (build, loss, gradients, generation, token counts), parameter
counts against their formulas, and MobileVLM's LDP/LDPv2 against counts derived by hand from its source."""

from __future__ import annotations

import pytest
import torch

from mgpt_bridge import (
    PROJECTOR_KINDS,
    BridgeSettings,
    ProjectorSpec,
    VisionLanguageModel,
    build_projector,
    build_vlm,
    describe_trainable,
    projected_tokens,
)
from mgpt_bridge.projector import projector_label
from mgpt_vision import VisionSettings

D, H = 32, 64  # tiny encoder width → tiny LM width
VISION_16 = VisionSettings(encoder="tiny", num_tokens=16)  # a 4×4 grid: ldp/ldpv2 make it 2×2


def _linear(i: int, o: int) -> int:
    return i * o + o


def _mobilenet_block(h: int) -> int:
    """One LDP MobileNetV3 block at width h (h a multiple of 32, so the SE squeeze width is h/4)."""
    s = h // 4
    depthwise = 9 * h + 2 * h  # 3×3 depthwise conv (no bias) + LayerNorm
    squeeze_excite = (h * s + s) + (s * h + h)
    pointwise = h * h + 2 * h  # 1×1 conv (no bias) + LayerNorm
    return depthwise + squeeze_excite + pointwise


FORMULAS = {
    ProjectorSpec("linear"): _linear(D, H),
    ProjectorSpec("mlp", 2): _linear(D, H) + _linear(H, H),
    ProjectorSpec("mlp", 3): _linear(D, H) + 2 * _linear(H, H),
    ProjectorSpec("ldp"): _linear(D, H) + _linear(H, H) + 2 * _mobilenet_block(H),
    ProjectorSpec("ldpv2"): _linear(D, H) + _linear(H, H) + (9 * H + H),
}
SPECS = list(FORMULAS)


def _bridge(spec: ProjectorSpec, **kw) -> BridgeSettings:
    return BridgeSettings(lm="tiny", projector=spec.kind, projector_layers=spec.layers or 2, **kw)


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.label)
def vlm(request) -> VisionLanguageModel:
    torch.manual_seed(0)
    return build_vlm(VISION_16, _bridge(request.param))


def test_every_kind_trains_only_its_projector_and_generates(vlm: VisionLanguageModel) -> None:
    size = vlm.preprocess.image_size
    pixels = torch.rand(2, 3, size, size)
    vlm.train()
    vlm.zero_grad(set_to_none=True)
    loss = vlm(answers=["a red square", "two blue circles"], pixels=pixels).loss
    loss.backward()
    assert torch.isfinite(loss)
    with_grad = {n for n, p in vlm.named_parameters() if p.grad is not None}
    projector = {f"projector.{n}" for n, _ in vlm.projector.named_parameters()}
    assert with_grad == projector
    assert all(torch.isfinite(p.grad).all() for _, p in vlm.projector.named_parameters())
    captions = vlm.generate(pixels=pixels, max_new_tokens=3)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


def test_parameter_counts_match_the_formulas(vlm: VisionLanguageModel) -> None:
    spec = vlm.projector_spec
    assert vlm.summary()["projector_params"] == FORMULAS[spec] == vlm.num_parameters(trainable_only=True)


def test_token_counts_and_summary(vlm: VisionLanguageModel) -> None:
    spec = vlm.projector_spec
    lm_tokens = 4 if spec.kind in ("ldp", "ldpv2") else 16
    s = vlm.summary()
    assert (s["encoder_tokens"], s["image_tokens"], s["projector"]) == (16, lm_tokens, spec.label)
    assert (s["projector_kind"], s["projector_layers"]) == (spec.kind, spec.layers)
    # cached features keep the encoder's [N, D]; the LM gets the projected count
    assert vlm.encode_images(features=torch.randn(3, 16, D)).shape == (3, lm_tokens, H)
    with pytest.raises(ValueError, match=r"image features must be \[B, 16, 32\]"):
        vlm.encode_images(features=torch.randn(3, lm_tokens if lm_tokens != 16 else 9, D))
    loss = vlm(answers=["a b"], features=torch.randn(1, 16, D)).loss
    assert torch.isfinite(loss)


def test_checkpoints_name_the_projector(vlm: VisionLanguageModel) -> None:
    contents = describe_trainable(vlm.trainable_state_dict())
    assert contents.projector == vlm.projector_spec.label and contents.lm_tuning == "frozen"
    assert contents.as_dict()["projector_kind"] == vlm.projector_spec.kind


def test_parameter_names_are_the_upstream_ones() -> None:
    """linear = MiniGPT-4 ``llama_proj.*``; mlp = LLaVA ``mlp{N}x_gelu`` (0, 2, 4...)."""
    assert set(build_projector("linear", D, H).state_dict()) == {"weight", "bias"}
    assert set(build_projector("mlp", D, H).state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    mlp3 = build_projector("mlp", D, H, layers=3)
    assert [type(m).__name__ for m in mlp3] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    assert {k.split(".")[0] for k in mlp3.state_dict()} == {"0", "2", "4"}


# --------------------------------------------------------------------------------------------- MobileVLM
def _mobilevlm_block_keys(prefix: str) -> set[str]:
    # torchvision InvertedResidual without expansion: block.0 = depthwise conv + norm, block.1 = SE,
    # block.2 = pointwise conv + norm
    names = ["block.0.0.weight", "block.0.1.weight", "block.0.1.bias", "block.1.fc1.weight",
             "block.1.fc1.bias", "block.1.fc2.weight", "block.1.fc2.bias", "block.2.0.weight",
             "block.2.1.weight", "block.2.1.bias"]
    return {f"{prefix}.{n}" for n in names}


def test_ldp_at_mobilevlm_shapes_has_the_hand_derived_count() -> None:
    """MobileVLM 1.7B: CLIP ViT-L/14-336 (576 × 1024) → LDP → MobileLLaMA 1.4B (2048 wide), 144 tokens.

    From ``LDPBlock`` (mobilevlm/model/vision_projector.py): mlp = Identity, Linear(1024→2048), GELU,
    Linear(2048→2048); mb_block = Identity, InvertedResidual(2048, k3, exp 2048, out 2048, SE, HS, stride 1),
    the same with stride 2; norm LayerNormAct2d (no act), SE with Hardsigmoid.
    """
    mlp = (1024 * 2048 + 2048) + (2048 * 2048 + 2048)  # 2,099,200 + 4,196,352
    assert mlp == 6_295_552
    # one InvertedResidual: expanded == input channels, so no expansion conv; convs before a norm have no bias
    depthwise = 2048 * 1 * 3 * 3 + 2 * 2048  # 18,432 + LayerNorm 4,096
    squeeze = 512  # torchvision _make_divisible(2048 // 4, 8)
    se = (2048 * squeeze + squeeze) + (squeeze * 2048 + 2048)  # fc1 1,049,088 + fc2 1,050,624
    pointwise = 2048 * 2048 + 2 * 2048  # 4,194,304 + LayerNorm 4,096
    block = depthwise + se + pointwise
    assert block == 6_320_640
    assert mlp + 2 * block == 18_936_832

    with torch.device("meta"):
        ldp = build_projector("ldp", 1024, 2048)
    assert sum(p.numel() for p in ldp.parameters()) == 18_936_832
    assert set(ldp.state_dict()) == {
        "model.mlp.1.weight", "model.mlp.1.bias", "model.mlp.3.weight", "model.mlp.3.bias",
        *_mobilevlm_block_keys("model.mb_block.1"), *_mobilevlm_block_keys("model.mb_block.2"),
    }
    assert projected_tokens(ldp, 576) == 144
    assert ldp(torch.empty(2, 576, 1024, device="meta")).shape == (2, 144, 2048)


def test_ldpv2_at_mobilevlm_shapes_has_the_hand_derived_count() -> None:
    """From ``LDPNetV2Projector``: FeatureIRLayer = Linear(1024→2048), GELU, Linear(2048→2048);
    TokenDownLayer = AdaptiveAvgPool2d((12, 12)) (no parameters); PosInjectLayer = depthwise
    Conv2d(2048, 2048, 3, stride 1, padding 1, groups 2048, bias) added to its input."""
    mlp = (1024 * 2048 + 2048) + (2048 * 2048 + 2048)
    peg = 2048 * 1 * 3 * 3 + 2048  # 20,480
    assert mlp + peg == 6_316_032
    with torch.device("meta"):
        ldpv2 = build_projector("ldpv2", 1024, 2048)
    assert sum(p.numel() for p in ldpv2.parameters()) == 6_316_032
    assert set(ldpv2.state_dict()) == {
        "mlp.mlp.0.weight", "mlp.mlp.0.bias", "mlp.mlp.2.weight", "mlp.mlp.2.bias",
        "peg.peg.0.weight", "peg.peg.0.bias",
    }
    assert projected_tokens(ldpv2, 576) == 144
    assert ldpv2(torch.empty(1, 576, 1024, device="meta")).shape == (1, 144, 2048)


def test_ldpv2_pools_2x2_and_adds_its_positional_conv() -> None:
    """On an even grid the pooling is an exact 2×2 mean; the positional conv is residual."""
    torch.manual_seed(0)
    proj = build_projector("ldpv2", 8, 16)
    with torch.no_grad():
        proj.peg.peg[0].weight.zero_()
        proj.peg.peg[0].bias.zero_()  # the conv adds nothing: output = pooled MLP tokens
        tokens = torch.randn(1, 16, 8)
        grid = proj.mlp(tokens).transpose(1, 2).reshape(1, 16, 4, 4)
        expected = grid.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2)).flatten(2).transpose(1, 2)
        assert torch.allclose(proj(tokens), expected, atol=1e-6)


def test_odd_grids_round_up_and_non_square_counts_are_refused() -> None:
    ldp = build_projector("ldp", 8, 16)
    assert projected_tokens(ldp, 49) == 16 and ldp(torch.randn(1, 49, 8)).shape == (1, 16, 16)
    ldpv2 = build_projector("ldpv2", 8, 16)
    assert projected_tokens(ldpv2, 49) == 16 and ldpv2(torch.randn(1, 49, 8)).shape == (1, 16, 16)
    for proj in (ldp, ldpv2):
        with pytest.raises(ValueError, match="32 tokens is not a perfect square") as err:
            projected_tokens(proj, 32)  # e.g. BLIP-2's 32 Q-Former queries
        assert "\n" not in str(err.value)
    assert projected_tokens(build_projector("linear", 8, 16), 32) == 32


def test_the_model_refuses_a_grid_projector_over_a_non_square_encoder(make_tiny_vlm) -> None:
    base = make_tiny_vlm()
    with pytest.raises(ValueError, match="projector 'ldp' .* 6 tokens is not a perfect square"):
        VisionLanguageModel(
            base.encoder, build_projector("ldp", 24, 64), base.lm, base.tokenizer, base.template,
            num_encoder_tokens=6, token_dim=24,
        )


def test_ldp_needs_an_lm_width_divisible_by_8() -> None:
    with pytest.raises(ValueError, match="divisible by 8.*got 60"):
        build_projector("ldp", 8, 60)
    assert build_projector("ldpv2", 8, 60)(torch.randn(1, 4, 8)).shape == (1, 1, 60)


def test_kinds_and_settings_agree() -> None:
    assert set(PROJECTOR_KINDS) == set(BridgeSettings.model_fields["projector"].annotation.__args__)
    with pytest.raises(ValueError, match="projector_layers=3 applies to projector='mlp' only"):
        BridgeSettings(projector="linear", projector_layers=3)
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        BridgeSettings(projector="mlp", projector_layers=1)
    with pytest.raises(ValueError, match="unknown projector 'conv'"):
        build_projector("conv", 8, 16)
    assert projector_label(["weight"]) == "custom" and projector_label([]) is None
