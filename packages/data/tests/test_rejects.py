"""Every bad-input kind ends in rejects.jsonl with the right reason and is counted; nothing crashes."""

import json
from pathlib import Path

import pytest

from mgpt_data.annotations import Flickr30kFormatError, scan_annotations
from mgpt_data.check import check_data_dir
from mgpt_data.flickr30k import read_local
from mgpt_data.rejects import append_rejects, count_by_reason, read_rejects, unique_rejects


def bad_rows(good_row):
    blank_inside = good_row("13")
    blank_inside[0] = json.dumps(["A dog runs.", "   ", "A dog is running."])
    odd_sentids = good_row("14")
    odd_sentids[1] = "[1, 2"
    return [
        good_row("1"),  # 0 kept
        good_row("2"),  # 1 missing_file (no image written)
        good_row("3"),  # 2 unreadable_image (truncated JPEG)
        good_row("4"),  # 3 unreadable_image (not an image)
        [json.dumps(["short"]), "[0]", "train"],  # 4 malformed_row (3 fields)
        good_row("6") + ["extra"],  # 5 malformed_row (6 fields)
        [json.dumps(["x"]), "[0]", "train", "", "7"],  # 6 malformed_row (no filename)
        ["not json", "[0]", "train", "8.jpg", "8"],  # 7 invalid_json
        ['{"a": 1}', "[0]", "train", "9.jpg", "9"],  # 8 invalid_json (not a list)
        ["[]", "[]", "val", "10.jpg", "10"],  # 9 empty_captions
        [json.dumps(["  ", ""]), "[0, 1]", "val", "11.jpg", "11"],  # 10 empty_captions (blank only)
        good_row("1", "test"),  # 11 duplicate_id
        blank_inside,  # 12 kept, one blank caption removed
        odd_sentids,  # 13 kept, sentids unparsable
        [json.dumps(["x"]), "[0]", "train", "../15.jpg", "15"],  # 14 malformed_row (not a plain name)
    ]


EXPECTED = {
    1: "missing_file",
    2: "unreadable_image",
    3: "unreadable_image",
    4: "malformed_row",
    5: "malformed_row",
    6: "malformed_row",
    7: "invalid_json",
    8: "invalid_json",
    9: "empty_captions",
    10: "empty_captions",
    11: "duplicate_id",
    14: "malformed_row",
}


@pytest.fixture
def bad_dir(make_dir, good_row):
    stems = ["1", "3", "4", "6", "8", "9", "10", "11", "13", "14", "15"]
    data_dir = make_dir(bad_rows(good_row), with_images=stems)
    images = data_dir / "flickr30k-images"
    jpeg = (images / "3.jpg").read_bytes()
    (images / "3.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (images / "4.jpg").write_bytes(b"this is not an image at all")
    return data_dir


def test_every_bad_input_is_rejected_with_its_reason(bad_dir: Path):
    summary = check_data_dir(bad_dir, engine="local", progress=False)
    rejects = read_rejects(bad_dir / "rejects.jsonl")
    assert {r["row"]: r["reason"] for r in rejects} == EXPECTED
    assert len(rejects) == len(EXPECTED)
    for r in rejects:
        assert set(r) == {"row", "image_id", "filename", "reason", "detail"} and r["detail"]
    by_row = {r["row"]: r for r in rejects}
    assert "truncated" in by_row[2]["detail"].lower()
    assert by_row[11]["image_id"] == "1" and "row 0" in by_row[11]["detail"]
    assert by_row[5]["detail"] == "6 fields, the header has 5"
    assert summary["csv_rows"] == 15 and summary["kept"] == 3
    assert summary["rejected"] == {
        "duplicate_id": 1,
        "empty_captions": 2,
        "invalid_json": 2,
        "malformed_row": 4,
        "missing_file": 1,
        "unreadable_image": 2,
    }
    assert summary["rejected_total"] == 12
    assert summary["warnings"] == {"blank_captions_removed": 1, "invalid_sentids": 1}
    grounded = json.loads((bad_dir / "flickr30k_grounded_detail.json").read_text())
    assert [g["image_id"] for g in grounded] == ["1", "13", "14"]
    assert grounded[1]["grounded_caption"] == "A dog runs. A dog is running."


def test_read_counts_csv_rejects_and_appends_them(bad_dir: Path, tmp_path: Path):
    out = tmp_path / "run" / "rejects.jsonl"
    read = read_local(bad_dir, rejects_path=out)
    # decode problems (rows 2, 3) are found later, by the preprocessor
    assert [r["row"] for r in read.rejects] == [1, 4, 5, 6, 7, 8, 9, 10, 11, 14]
    assert read_rejects(out) == read.rejects
    assert read.summary["rejected_total"] == 10 and read.summary["images"] == 5
    read_local(bad_dir, rejects_path=out)
    assert len(read_rejects(out)) == 20  # appended, not overwritten


def test_split_selection_keeps_split_and_unknown_split_rejects(bad_dir: Path):
    val = read_local(bad_dir, split="val")
    assert sorted(r["row"] for r in val.rejects) == [9, 10]
    test = read_local(bad_dir, split="test")
    assert [r["row"] for r in test.rejects] == [11]
    scan = scan_annotations(bad_dir)
    assert len(scan.rejects_for(None)) == 10


def test_blank_line_is_counted_not_rejected(make_dir, good_row):
    data_dir = make_dir([good_row("1"), good_row("2")])
    csv_path = data_dir / "flickr_annotations_30k.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text(lines[0] + lines[1] + "\n" + lines[2])
    scan = scan_annotations(data_dir)
    assert [i["image_id"] for i in scan.images] == ["1", "2"] and scan.rejects == []
    assert scan.warnings == {"blank_lines": 1}


def test_folder_level_errors_are_clear(tmp_path: Path, make_dir, good_row):
    with pytest.raises(Flickr30kFormatError, match="flickr_annotations_30k.csv not found"):
        scan_annotations(tmp_path / "nowhere")
    d = tmp_path / "nocols"
    d.mkdir()
    (d / "flickr_annotations_30k.csv").write_text("caption,file\nx,y.jpg\n")
    with pytest.raises(
        Flickr30kFormatError, match=r"lacks required column\(s\) \['raw', 'split', 'filename'\]"
    ):
        scan_annotations(d)


def test_helpers(tmp_path: Path):
    rs = [
        {"row": 1, "image_id": "a", "reason": "unreadable_image"},
        {"row": 1, "image_id": "a", "reason": "unreadable_image"},
        {"row": 2, "image_id": "b", "reason": "missing_file"},
    ]
    assert len(unique_rejects(rs)) == 2
    assert count_by_reason(rs) == {"missing_file": 1, "unreadable_image": 2}
    assert append_rejects(tmp_path / "x" / "r.jsonl", rs[:1]) == 1
    assert read_rejects(tmp_path / "x" / "r.jsonl") == rs[:1]
    assert read_rejects(tmp_path / "none.jsonl") == []
