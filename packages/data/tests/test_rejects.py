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
    assert by_row[11]["image_id"] == "1" and by_row[11]["detail"] == (
        "line 13: image_id '1' already given by line 2")
    assert by_row[5]["detail"] == "line 7: 6 fields, the header has 5"
    assert by_row[1]["detail"] == "line 3: flickr30k-images/2.jpg does not exist"
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
    csv_file = d / "flickr_annotations_30k.csv"
    header_problems = [
        (b"", "is empty"),
        (b"raw,split,filename,split\n", r"repeats column\(s\) \['split'\]"),
        (b'"raw,split,filename\n', r"line 1 \(the header\): not valid CSV"),
        (b"raw,split,file\xffname\n", r"line 1 \(the header\): field 3 has bytes that are not UTF-8"),
    ]
    for body, message in header_problems:
        csv_file.write_bytes(body)
        with pytest.raises(Flickr30kFormatError, match=message):
            scan_annotations(d)
    csv_file.unlink()
    csv_file.mkdir()
    with pytest.raises(Flickr30kFormatError, match="is a directory, not a CSV file"):
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


def test_file_problems_have_their_own_reasons(make_dir, good_row, tmp_path: Path, write_jpeg):
    import os

    stems = ["1", "dir", "fifo", "out", "in", "dangling", "2"]
    data_dir = make_dir([good_row(s) for s in stems], with_images=["1", "2"])
    images = data_dir / "flickr30k-images"
    (images / "dir.jpg").mkdir()
    os.mkfifo(images / "fifo.jpg")  # opening it would block forever: it must never be opened
    outside = write_jpeg(tmp_path / "elsewhere" / "secret.jpg")
    (images / "out.jpg").symlink_to(outside)
    (images / "in.jpg").symlink_to(images / "1.jpg")  # a link inside the images folder is fine
    (images / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    scan = scan_annotations(data_dir)
    assert [i["image_id"] for i in scan.images] == ["1", "in", "2"]
    got = {r["image_id"]: (r["reason"], r["detail"]) for r in scan.rejects}
    assert got == {
        "dir": ("not_a_file", "line 3: flickr30k-images/dir.jpg is a directory, not an image file"),
        "fifo": ("not_a_file", "line 4: flickr30k-images/fifo.jpg is not a regular file (a FIFO, socket or "
                               "device)"),
        "out": ("outside_data_dir", f"line 5: flickr30k-images/out.jpg is a symlink to {outside.resolve()}, "
                                    "outside flickr30k-images/ (copy the file in, or make flickr30k-images "
                                    "itself the link)"),
        "dangling": ("missing_file", "line 7: flickr30k-images/dangling.jpg does not exist (a symlink to a "
                                     "missing file)"),
    }


def test_a_linked_images_folder_is_followed(make_dir, good_row, tmp_path: Path):
    real = make_dir([good_row("1")], name="real")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "flickr_annotations_30k.csv").write_bytes((real / "flickr_annotations_30k.csv").read_bytes())
    (linked / "flickr30k-images").symlink_to(real / "flickr30k-images")
    scan = scan_annotations(linked)
    assert scan.rejects == [] and [i["image_id"] for i in scan.images] == ["1"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_rejected_when_decoding(make_dir, good_row, write_png_claiming):
    from PIL import Image

    rows = [good_row("ok"), good_row("bomb"), good_row("big")]
    data_dir = make_dir(rows, with_images=["ok"])
    images = data_dir / "flickr30k-images"
    over_twice = Image.MAX_IMAGE_PIXELS * 2 + 1  # PIL raises DecompressionBombError on open
    write_png_claiming(images / "bomb.jpg", 20_000, over_twice // 20_000 + 1)
    write_png_claiming(images / "big.jpg", 10_000, Image.MAX_IMAGE_PIXELS // 10_000 + 1)  # PIL only warns
    summary = check_data_dir(data_dir, engine="local", progress=False)
    rejects = {r["image_id"]: r for r in read_rejects(data_dir / "rejects.jsonl")}
    assert summary["kept"] == 1 and summary["rejected"] == {"image_too_large": 2}
    assert rejects["bomb"]["detail"].startswith("DecompressionBombError: Image size")
    assert rejects["big"]["detail"].startswith(
        f"10000x{Image.MAX_IMAGE_PIXELS // 10_000 + 1} = ") and "MAX_IMAGE_PIXELS" in rejects["big"]["detail"]


def test_decode_reasons_for_a_directory_and_a_missing_file(tmp_path: Path):
    from mgpt_data.images import ImageDecodeError, decode_image

    (tmp_path / "d.jpg").mkdir()
    for path, reason in [(tmp_path / "d.jpg", "not_a_file"), (tmp_path / "none.jpg", "missing_file")]:
        with pytest.raises(ImageDecodeError) as info:
            decode_image(str(path))
        assert info.value.reason == reason


def test_an_unclosed_quote_loses_no_row_below_it(make_dir, good_row):
    data_dir = make_dir([good_row("1"), good_row("2"), good_row("3")])
    path = data_dir / "flickr_annotations_30k.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(2, b'"[""never closed"", [0], train, 9.jpg, 9\n')
    lines.insert(4, b'"[\n""multi-line, kept""\n]",[0],val,1b.jpg,1b\n')
    path.write_bytes(b"".join(lines))
    images = data_dir / "flickr30k-images"
    (images / "1b.jpg").write_bytes((images / "1.jpg").read_bytes())
    scan = scan_annotations(data_dir)
    assert [i["image_id"] for i in scan.images] == ["1", "2", "1b", "3"]
    assert [r["row"] for r in scan.rejects] == [1] and scan.rejects[0]["reason"] == "malformed_row"
    assert scan.rejects[0]["detail"].startswith("line 3: not valid CSV: unbalanced quote (read on to line 4")
    assert scan.row_lines == [(2, 2), (3, 3), (4, 4), (5, 7), (8, 8)] and scan.csv_rows == 5
    assert scan.images[2]["captions"] == ["multi-line, kept"]


def test_lone_surrogates_and_huge_lists_are_invalid_json(make_dir, good_row):
    from mgpt_data.annotations import MAX_CAPTIONS

    surrogate, many, deep = good_row("1"), good_row("2"), good_row("3")
    surrogate[0] = '["fine", "\\ud800"]'
    many[0] = json.dumps(["a"] * (MAX_CAPTIONS + 1))
    deep[0] = "[" * 5000 + "]" * 5000
    scan = scan_annotations(make_dir([surrogate, many, deep, good_row("4")]))
    assert [i["image_id"] for i in scan.images] == ["4"]
    details = [r["detail"] for r in scan.rejects]
    assert [r["reason"] for r in scan.rejects] == ["invalid_json"] * 3
    assert details[0] == "line 2: caption 1 has a lone surrogate escape at character 0 (not valid Unicode)"
    assert details[1] == (
        f"line 3: raw holds {MAX_CAPTIONS + 1} captions, over the limit of {MAX_CAPTIONS} per image")
    assert details[2].startswith("line 4: raw is not valid JSON: RecursionError")
