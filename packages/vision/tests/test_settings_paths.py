from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mgpt_vision import VisionSettings, cache_dir


def test_cache_dir_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("MGPT_CACHE_DIR", str(target))
    assert cache_dir() == target and target.is_dir()
    monkeypatch.delenv("MGPT_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mgpt"
    assert cache_dir().is_dir()


def test_defaults() -> None:
    s = VisionSettings()
    assert s.encoder == "efficientnet_lite0"
    assert s.num_tokens == 16 and s.freeze_vision and s.freeze_qformer
    assert s.dtype == "float32" and s.timm_name is None and s.weights_path is None


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGPT_VISION__ENCODER", "tiny")
    monkeypatch.setenv("MGPT_VISION__NUM_TOKENS", "4")
    monkeypatch.setenv("MGPT_VISION__FREEZE_VISION", "false")
    s = VisionSettings()
    assert (s.encoder, s.num_tokens, s.freeze_vision) == ("tiny", 4, False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_tokens": 15}, "perfect square"),
        ({"num_tokens": 0}, "perfect square"),
        ({"encoder": "timm"}, "needs timm_name"),
        ({"timm_name": "resnet18"}, "only used with encoder='timm'"),
        ({"weights_path": "w.pth"}, "takes no weights_path"),
        ({"encoder": "tiny", "weights_path": "w.pth"}, "random-init"),
        ({"encoder": "blip2", "image_size": 448}, "snapshot's image size"),
        ({"image_size": -1}, "image_size must be positive"),
        ({"encoder": "clip"}, "encoder"),
        ({"dtype": "float64"}, "dtype"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VisionSettings(**kwargs)


def test_blip2_weights_path_must_be_a_dir(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ValidationError, match="snapshot directory"):
        VisionSettings(encoder="blip2", weights_path=f)
    assert VisionSettings(encoder="blip2", weights_path=tmp_path).weights_path == tmp_path


def test_num_tokens_none_keeps_grid() -> None:
    assert VisionSettings(num_tokens=None).num_tokens is None
