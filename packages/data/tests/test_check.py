"""`check_data_dir` / `prepare_data_dir`: engine choice, synthetic writing, summary accounting."""

from pathlib import Path

from mgpt_data import DataSettings
from mgpt_data.check import format_summary, prepare_data_dir


def test_auto_engine_picks_local_for_small_sets():
    import sys

    from mgpt_data.check import AUTO_RAY_MIN_IMAGES, resolve_engine

    running = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    assert resolve_engine("auto", 600) == ("ray" if running else "local")
    assert resolve_engine("auto", AUTO_RAY_MIN_IMAGES) == "ray"
    assert resolve_engine("local", 10**6) == "local" and resolve_engine("ray", 1) == "ray"


def test_prepare_writes_a_synthetic_set_then_checks_it(tmp_path: Path):
    settings = DataSettings(data_dir=tmp_path / "syn", synthetic_images=8, synthetic_image_size=48)
    summary = prepare_data_dir(settings, engine="local", progress=False)
    assert summary["synthetic_written"] == 8 and summary["kept"] == 8 and summary["rejected_total"] == 0
    again = prepare_data_dir(settings, engine="local", progress=False)  # the CSV exists now: check only
    assert again["synthetic_written"] is None and again["kept"] == 8
    assert "kept images  8" in format_summary(again)
