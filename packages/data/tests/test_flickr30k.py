"""Rows from a Flickr30k-format folder: sample modes, splits, caption normalisation (local path)."""

import json
from pathlib import Path

import pytest

from mgpt_data.flickr30k import read_local, read_rows
from mgpt_data.text import normalize_caption


def test_per_caption_rows_keep_all_references(clean_dir: Path):
    rows = read_rows(clean_dir, split="train")
    assert len(rows) == 6 * 5
    first = rows[:5]
    assert {r["image_id"] for r in first} == {"100"}
    assert [r["caption"] for r in first] == first[0]["captions"]
    assert all(r["captions"] == first[0]["captions"] and len(r["captions"]) == 5 for r in first)
    assert set(rows[0]) == {"row", "image_id", "path", "split", "captions", "caption"}
    assert Path(rows[0]["path"]).is_absolute() and Path(rows[0]["path"]).is_file()


def test_grounded_rows_join_captions(clean_dir: Path):
    read = read_local(clean_dir, split="test", sample_mode="grounded", caption_options={"max_words": None})
    assert [r["image_id"] for r in read.rows] == ["108", "109"]
    assert read.rows[0]["caption"] == " ".join(read.rows[0]["captions"])
    assert read.summary["images"] == 2 and read.summary["samples"] == 2 and read.summary["split"] == "test"
    assert read.summary["per_split"] == {
        "test": {"images": 2, "samples": 2},
        "train": {"images": 6, "samples": 0},
        "val": {"images": 2, "samples": 0},
    }


def test_caption_options_shape_only_the_target(make_dir, good_row):
    row = good_row("7")
    row[0] = json.dumps(["A Man (in RED) rides: a bike!  Fast.", "two"])
    d = make_dir([row])
    opts = {"lowercase": True, "strip_punctuation": True, "max_words": 5}
    rows = read_rows(d, caption_options=opts)
    assert rows[0]["caption"] == "a man in red rides"
    assert rows[0]["captions"][0] == "A Man (in RED) rides: a bike!  Fast."  # references stay verbatim
    grounded = read_rows(d, sample_mode="grounded", caption_options={"max_words": 3})
    assert grounded[0]["caption"] == "A Man (in"


def test_unknown_split_and_sample_mode(clean_dir: Path, caplog):
    assert read_rows(clean_dir, split="dev") == []
    assert "split 'dev' has no images" in caplog.text
    with pytest.raises(ValueError, match="sample_mode"):
        read_rows(clean_dir, sample_mode="both")


def test_normalize_caption():
    assert normalize_caption("  A  b\nc ") == "A b c"
    assert normalize_caption("Hi; there.", lowercase=True, strip_punctuation=True) == "hi there"
    assert normalize_caption("one two three", max_words=2) == "one two"


def test_rows_around_a_bad_row_reach_training(clean_dir: Path):
    csv_path = clean_dir / "flickr_annotations_30k.csv"
    lines = csv_path.read_bytes().splitlines(keepends=True)
    lines[2] = b'"[""caf\xe9""]",[0],train,101.jpg,101\r\n'  # image 101's row: not UTF-8, CRLF
    csv_path.write_bytes(b"".join(line.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for line in lines))
    read = read_local(clean_dir, split="train", sample_mode="grounded")
    assert [r["image_id"] for r in read.rows] == ["100", "102", "103", "104", "105"]
    assert [r["reason"] for r in read.rejects] == ["malformed_row"]
    assert read.rejects[0]["detail"].startswith("line 3: ") and read.rejects[0]["image_id"] == "101"
    assert read.summary["csv_rows"] == 10
