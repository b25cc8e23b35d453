"""`check_data_dir` / `prepare_data_dir`: engine choice, synthetic writing, summary accounting."""

import json
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


def test_one_bad_row_costs_only_itself(clean_dir: Path):
    csv_path = clean_dir / "flickr_annotations_30k.csv"
    lines = csv_path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"Caption", b"Capti\xf3n")  # latin-1, not UTF-8
    lines[5] = lines[5].replace(b"Caption 0", b"C" * 200_000)  # over csv's field limit
    csv_path.write_bytes(b"".join(lines))
    (clean_dir / "flickr30k-images" / "107.jpg").unlink()
    (clean_dir / "flickr30k-images" / "107.jpg").mkdir()
    text = format_summary(prepare_data_dir(DataSettings(data_dir=clean_dir), engine="local", progress=False))
    assert "kept images  7" in text and "rejected     3" in text
    assert "malformed_row      2" in text and "not_a_file         1" in text
    details = [json.loads(x)["detail"] for x in (clean_dir / "rejects.jsonl").read_text().splitlines()]
    assert details[0].startswith("line 4: field 1 ('raw') has bytes that are not UTF-8 (b'\\xf3'")
    assert details[1] == "line 6: a field is longer than the 65536-character limit"
    assert details[2] == "line 9: flickr30k-images/107.jpg is a directory, not an image file"
