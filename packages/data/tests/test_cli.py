"""`prepare` round trip through typer's CliRunner: --synthetic, then a check of that folder."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mgpt_cli.commands import prepare


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # keep `prepare` a sub-command even when it is the only one
        """mgpt (test shell)."""

    prepare.register(app)
    return app


def run(app, *args):
    return CliRunner().invoke(app, ["prepare", *args])


def test_synthetic_then_check_round_trips_with_zero_rejects(app, tmp_path: Path):
    d = tmp_path / "syn"
    first = run(
        app,
        "--data-dir",
        str(d),
        "--synthetic",
        "30",
        "--seed",
        "3",
        "--image-size",
        "64",
        "--engine",
        "local",
        "--json",
    )
    assert first.exit_code == 0, first.output
    s1 = json.loads(first.stdout)
    assert s1["synthetic_written"] == 30 and s1["kept"] == 30 and s1["rejected_total"] == 0
    assert s1["per_split"] == {"test": 3, "train": 24, "val": 3}
    csv_bytes = (d / "flickr_annotations_30k.csv").read_bytes()
    second = run(app, "--data-dir", str(d), "--engine", "local", "--json")
    assert second.exit_code == 0, second.output
    s2 = json.loads(second.stdout)
    assert s2["synthetic_written"] is None and s2["csv_rows"] == 30 and s2["kept"] == 30
    assert s2["rejected"] == {} and (d / "rejects.jsonl").read_text() == ""
    assert (d / "flickr_annotations_30k.csv").read_bytes() == csv_bytes
    grounded = json.loads((d / "flickr30k_grounded_detail.json").read_text())
    assert len(grounded) == 30 and set(grounded[0]) == {"image_id", "grounded_caption"}
    text = run(app, "--data-dir", str(d), "--engine", "local")
    assert text.exit_code == 0 and "kept images  30" in text.stdout and "rejected     0" in text.stdout


def test_rejects_do_not_fail_the_command(app, clean_dir: Path):
    (clean_dir / "flickr30k-images" / "101.jpg").write_bytes(b"garbage")
    result = run(app, "--data-dir", str(clean_dir), "--engine", "local", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rejected"] == {"unreadable_image": 1} and summary["kept"] == 9
    assert json.loads((clean_dir / "rejects.jsonl").read_text())["image_id"] == "101"


def test_folder_without_csv_is_a_clear_error(app, tmp_path: Path):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"")
    result = run(app, "--data-dir", str(d), "--engine", "local")
    assert result.exit_code == 2
    assert "has files but no flickr_annotations_30k.csv" in result.stderr
    bad = run(app, "--data-dir", str(d), "--engine", "spark")
    assert bad.exit_code == 2 and "spark" in bad.output


def test_missing_folder_gets_the_default_synthetic_set(app, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MGPT_DATA__SYNTHETIC_IMAGES", "12")
    d = tmp_path / "fresh"
    result = run(app, "--data-dir", str(d), "--engine", "local", "--json", "--image-size", "48")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["synthetic_written"] == 12 and (d / "scenes.json").is_file()


def test_registered_in_the_real_cli(tmp_path: Path):
    from mgpt_cli.main import app as real_app

    d = tmp_path / "syn"
    result = CliRunner().invoke(
        real_app,
        [
            "prepare",
            "--data-dir",
            str(d),
            "--synthetic",
            "5",
            "--engine",
            "local",
            "--json",
            "--image-size",
            "48",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kept"] == 5


def test_auto_engine_picks_local_for_small_sets():
    import sys

    from mgpt_data.check import AUTO_RAY_MIN_IMAGES, resolve_engine

    running = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    assert resolve_engine("auto", 600) == ("ray" if running else "local")
    assert resolve_engine("auto", AUTO_RAY_MIN_IMAGES) == "ray"
    assert resolve_engine("local", 10**6) == "local" and resolve_engine("ray", 1) == "ray"


def test_one_bad_row_costs_only_itself(app, clean_dir: Path):
    csv_path = clean_dir / "flickr_annotations_30k.csv"
    lines = csv_path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"Caption", b"Capti\xf3n")  # latin-1, not UTF-8
    lines[5] = lines[5].replace(b"Caption 0", b"C" * 200_000)  # over csv's field limit
    csv_path.write_bytes(b"".join(lines))
    (clean_dir / "flickr30k-images" / "107.jpg").unlink()
    (clean_dir / "flickr30k-images" / "107.jpg").mkdir()
    result = run(app, "--data-dir", str(clean_dir), "--engine", "local")
    assert result.exit_code == 0, result.output
    assert "kept images  7" in result.stdout and "rejected     3" in result.stdout
    assert "malformed_row      2" in result.stdout and "not_a_file         1" in result.stdout
    details = [json.loads(x)["detail"] for x in (clean_dir / "rejects.jsonl").read_text().splitlines()]
    assert details[0].startswith("line 4: field 1 ('raw') has bytes that are not UTF-8 (b'\\xf3'")
    assert details[1] == "line 6: a field is longer than the 65536-character limit"
    assert details[2] == "line 9: flickr30k-images/107.jpg is a directory, not an image file"
