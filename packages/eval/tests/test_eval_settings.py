"""EvalSettings: defaults, env prefix, validation messages, checkpoint selection."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mgpt_eval import DEFAULT_METRICS, EvalSettings, select_checkpoints


def test_defaults():
    s = EvalSettings()
    assert s.metrics == list(DEFAULT_METRICS) and "SPICE" not in s.metrics
    assert (s.bootstrap_resamples, s.confidence, s.seed, s.scale_100) == (1000, 0.95, 0, True)
    assert (s.split, s.checkpoints, s.max_images, s.chair) == ("test", ["all"], None, True)
    assert s.spice_jars is None
    assert s.chair_vocabularies == ["coco"]


def test_env_prefix_and_metric_aliases(monkeypatch):
    monkeypatch.setenv("MGPT_EVAL__METRICS", '["bleu_4", "cider", "Rouge_L", "spice"]')
    monkeypatch.setenv("MGPT_EVAL__BOOTSTRAP_RESAMPLES", "0")
    monkeypatch.setenv("MGPT_EVAL__CHAIR_VOCABULARIES", '["coco", "shapes"]')
    s = EvalSettings()
    assert s.metrics == ["BLEU-4", "CIDEr", "ROUGE-L", "SPICE"]
    assert s.bootstrap_resamples == 0 and s.chair_vocabularies == ["coco", "shapes"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["BLEU-9"]}, "unknown metric"),
        ({"split": "dev"}, "split must be one of"),
        ({"confidence": 1.0}, "less than 1"),
        ({"bootstrap_resamples": -1}, "greater than or equal to 0"),
        ({"spice_jars": "/no/such/folder"}, "does not exist"),
        ({"chair_vocabularies": ["animals"]}, "unknown CHAIR vocabulary"),
        ({"checkpoints": "epoch_1,,"}, "comma list"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        EvalSettings(**kwargs)


def test_select_checkpoints():
    available = ["epoch_0", "epoch_1", "epoch_2"]
    assert select_checkpoints(["all"], available) == available
    assert select_checkpoints(["last"], available) == ["epoch_2"]
    assert select_checkpoints(["baseline", "epoch_1"], available) == ["baseline", "epoch_1"]
    assert EvalSettings(checkpoints="baseline, epoch_1").checkpoints == ["baseline", "epoch_1"]
    with pytest.raises(ValueError, match="epoch_9"):
        select_checkpoints(["epoch_9"], available)
