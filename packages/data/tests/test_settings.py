from pathlib import Path

import pytest
from pydantic import ValidationError

from mgpt_data.settings import DataSettings


def test_defaults():
    s = DataSettings()
    assert s.data_dir == Path("data/flickr30k_synthetic")
    assert s.synthetic_images == 600 and s.sample_mode == "per_caption" and s.seed == 42
    assert (s.train_split, s.augment, s.hflip, s.max_words) == (
        "train",
        False,
        False,
        50,
    )
    assert s.caption_options() == {"lowercase": False, "strip_punctuation": False, "max_words": 50}


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("MGPT_DATA__SEED", "7")
    monkeypatch.setenv("MGPT_DATA__SAMPLE_MODE", "grounded")
    s = DataSettings()
    assert s.seed == 7 and s.sample_mode == "grounded"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"crop_scale": (0.9, 0.5)}, "crop_scale"),
        ({"hflip": True}, "augment=True"),
        ({"sample_mode": "both"}, "sample_mode"),
        ({"synthetic_images": -1}, "synthetic_images"),
        ({"max_words": -1}, "max_words"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_rejects_bad_values(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        DataSettings(**kwargs)


def test_zero_means_none_because_toml_has_no_null():
    s = DataSettings(synthetic_images=0, max_words=0)
    assert s.synthetic_images is None and s.max_words is None
