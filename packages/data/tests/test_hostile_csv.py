"""Done-when of issue 12: good rows mixed with every kind of hostile row, through the library and the CLI.

Every good row is kept, every bad one is rejected with its reason, and nothing prints a traceback.
The README's "Reliability" table quotes these cases and counts.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mgpt_data.annotations import MAX_CAPTIONS
from mgpt_data.check import check_data_dir
from mgpt_data.csv_records import MAX_FIELD_CHARS
from mgpt_data.rejects import read_rejects

ROOT = Path(__file__).resolve().parents[3]
HEADER = "raw,sentids,split,filename,img_id\n"


def _line(fields: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue().encode("utf-8")


def _row(stem: str, *, raw: str | None = None, filename: str | None = None, split: str = "train") -> bytes:
    raw = raw if raw is not None else json.dumps([f"A photo of {stem}.", f"Another view of {stem}."])
    return _line([raw, "[0, 1]", split, filename if filename is not None else f"{stem}.jpg", stem])


def build_hostile_dir(root: Path, write_jpeg, write_png_claiming) -> tuple[Path, list[tuple[str, str]]]:
    """The folder, and per CSV row (in order) ``(case, "kept" | expected reason)``."""
    images = root / "flickr30k-images"
    images.mkdir(parents=True)
    rows: list[tuple[str, str, bytes]] = []

    def add(case: str, expect: str, data: bytes, image: str | None = None) -> None:
        rows.append((case, expect, data))
        if image is not None:
            write_jpeg(images / image)

    add("good", "kept", _row("g1"), "g1.jpg")
    add("non-UTF-8 byte in a caption (latin-1 'café')", "malformed_row",
        _row("u1").replace(b"photo", b"caf\xe9"), "u1.jpg")
    add("non-UTF-8 bytes in the file name", "malformed_row", _row("u2").replace(b"u2.jpg", b"u\xff\xfe.jpg"))
    add("good, captions in UTF-8 with accents", "kept",
        _row("g2", raw=json.dumps(["Un café près d'un vélo.", "Ein Hund läuft."], ensure_ascii=False)),
        "g2.jpg")
    add("caption field of 200 KiB (over csv's own limit)", "malformed_row",
        _row("o1", raw=json.dumps(["x" * 200 * 1024])), "o1.jpg")
    add(f"caption field of {MAX_FIELD_CHARS + 4464} characters (over MAX_FIELD_CHARS)", "malformed_row",
        _row("o2", raw=json.dumps(["y" * (MAX_FIELD_CHARS + 4460)])), "o2.jpg")
    add(f"5000 captions in one list (over MAX_CAPTIONS = {MAX_CAPTIONS})", "invalid_json",
        _row("o3", raw=json.dumps(["a dog"] * 5000)), "o3.jpg")
    add("3 fields", "malformed_row", _line([json.dumps(["short"]), "[0]", "train"]))
    add("7 fields", "malformed_row", _row("f7")[:-1] + b",extra,more\n", "f7.jpg")
    add("no split", "malformed_row", _row("m1", split=""), "m1.jpg")
    add("raw is not JSON", "invalid_json", _row("j1", raw="a dog, running"), "j1.jpg")
    add("raw is a JSON object", "invalid_json", _row("j2", raw='{"caption": "a dog"}'), "j2.jpg")
    add("raw nests 5000 lists deep", "invalid_json", _row("j3", raw="[" * 5000 + "]" * 5000), "j3.jpg")
    add("raw has a lone surrogate escape", "invalid_json", _row("j4", raw='["\\udc80 dog"]'), "j4.jpg")
    add("raw has only blank captions", "empty_captions", _row("e1", raw='["", "  "]'), "e1.jpg")
    add("good, raw spread over 4 lines (pretty JSON)", "kept",
        _row("g3", raw=json.dumps(["A cat.", "A cat on a mat."], indent=1)), "g3.jpg")
    add("path traversal ../g1.jpg", "malformed_row", _row("t1", filename="../g1.jpg"))
    add("absolute path /etc/passwd", "malformed_row", _row("t2", filename="/etc/passwd"))
    add("sub-folder path sub/t3.jpg", "malformed_row", _row("t3", filename="sub/t3.jpg"))
    add("symlink to a file outside the folder", "outside_data_dir", _row("s1"))
    (images / "s1.jpg").symlink_to(write_jpeg(root.parent / "outside" / "secret.jpg"))
    add("a directory named d1.jpg", "not_a_file", _row("d1"))
    (images / "d1.jpg").mkdir()
    add("a FIFO named p1.jpg (opening it would block)", "not_a_file", _row("p1"))
    os.mkfifo(images / "p1.jpg")
    add("image file missing", "missing_file", _row("x1"))
    add("PNG header claiming 20000x9000 px (> 2 x MAX_IMAGE_PIXELS)", "image_too_large",
        _row("b1", filename="b1.png"))
    write_png_claiming(images / "b1.png", 20_000, 9_000)
    add("PNG header claiming 10000x9000 px (PIL only warns)", "image_too_large",
        _row("b2", filename="b2.png"))
    write_png_claiming(images / "b2.png", 10_000, 9_000)
    add("truncated JPEG", "unreadable_image", _row("r1"), "r1.jpg")
    jpeg = (images / "r1.jpg").read_bytes()
    (images / "r1.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    add("text file named r2.jpg", "unreadable_image", _row("r2"))
    (images / "r2.jpg").write_text("not an image")
    add("unclosed quote", "malformed_row", b'"[""never closed, [0], train, q1.jpg, q1\n')
    add("good, right after the unclosed quote", "kept", _row("g4"), "g4.jpg")
    add("repeated image_id", "duplicate_id", _row("g1", raw=json.dumps(["The same image again."])))
    add("good", "kept", _row("g5", split="test"), "g5.jpg")
    add("good, last line without a newline", "kept", _row("g6", split="val")[:-1], "g6.jpg")
    csv_path = root / "flickr_annotations_30k.csv"
    csv_path.write_bytes(HEADER.encode() + b"".join(data for _, _, data in rows))
    return root, [(case, expect) for case, expect, _ in rows]


@pytest.fixture
def hostile(tmp_path: Path, write_jpeg, write_png_claiming) -> tuple[Path, list[tuple[str, str]]]:
    return build_hostile_dir(tmp_path / "hostile", write_jpeg, write_png_claiming)


def _check_outcome(data_dir: Path, summary: dict, expected: list[tuple[str, str]]) -> None:
    rejects = {r["row"]: r for r in read_rejects(data_dir / "rejects.jsonl")}
    kept = [i for i, (_, e) in enumerate(expected) if e == "kept"]
    assert summary["csv_rows"] == len(expected) and summary["kept"] == len(kept)
    assert sorted(rejects) == [i for i in range(len(expected)) if i not in kept]
    for i, (case, expect) in enumerate(expected):
        if expect != "kept":
            assert rejects[i]["reason"] == expect and rejects[i]["detail"], (case, rejects[i])
    grounded = json.loads((data_dir / "flickr30k_grounded_detail.json").read_text())
    assert [g["image_id"] for g in grounded] == ["g1", "g2", "g3", "g4", "g5", "g6"]
    assert grounded[1]["grounded_caption"] == "Un café près d'un vélo. Ein Hund läuft."


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_every_good_row_is_kept_and_every_bad_one_rejected_with_its_reason(hostile):
    data_dir, expected = hostile
    summary = check_data_dir(data_dir, engine="local", progress=False)
    _check_outcome(data_dir, summary, expected)
    assert summary["rejected"] == {"duplicate_id": 1, "empty_captions": 1, "image_too_large": 2,
                                   "invalid_json": 5, "malformed_row": 11, "missing_file": 1,
                                   "not_a_file": 2, "outside_data_dir": 1, "unreadable_image": 2}
    assert (summary["kept"], summary["csv_rows"]) == (6, 32)
    assert Image.MAX_IMAGE_PIXELS is not None  # the bomb limit was left on


def test_through_the_cli_with_no_traceback(hostile):
    data_dir, expected = hostile
    uv = shutil.which("uv")
    cmd = ([uv, "run", "apps/cli"] if uv else [sys.executable, "apps/cli"]) + [
        "prepare", "--data-dir", str(data_dir), "--engine", "local", "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    _check_outcome(data_dir, json.loads(proc.stdout), expected)
    assert "line 3: field 1 ('raw') has bytes that are not UTF-8" in proc.stderr  # logged with its line
