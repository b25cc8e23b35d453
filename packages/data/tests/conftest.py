"""Fixtures for mgpt_data tests: every file is written by the test itself under tmp_path."""

from __future__ import annotations

import csv
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

HEADER = ["raw", "sentids", "split", "filename", "img_id"]
SPEC = {
    "image_size": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "interpolation": "bicubic",
    "resize_mode": "squash",
}


def _write_jpeg(
    path: Path, color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (48, 40)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    image.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 2))  # some structure, so crops differ
    image.save(path, "JPEG", quality=95)
    return path


def _write_png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims ``width`` x ``height`` 8-bit grey pixels (one scanline of data).

    Past ``PIL.Image.MAX_IMAGE_PIXELS`` this is what a decompression bomb looks like before decoding.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _good_row(stem: str, split: str = "train", n: int = 5) -> list[str]:
    caps = [f"Caption {k} of image {stem}." for k in range(n)]
    return [json.dumps(caps), json.dumps(list(range(n))), split, f"{stem}.jpg", stem]


def write_csv(data_dir: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "flickr_annotations_30k.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def good_row() -> Callable[..., list[str]]:
    """``good_row(stem, split="train", n=5)`` → a valid CSV row with n captions."""
    return _good_row


@pytest.fixture
def write_jpeg() -> Callable[..., Path]:
    """``write_jpeg(path, color=..., size=...)`` → a small two-colour JPEG."""
    return _write_jpeg


@pytest.fixture
def write_png_claiming() -> Callable[..., Path]:
    """``write_png_claiming(path, width, height)`` → a tiny PNG whose header claims that size."""
    return _write_png_claiming


@pytest.fixture
def spec() -> dict:
    return dict(SPEC)


@pytest.fixture
def make_dir(tmp_path: Path) -> Callable[..., Path]:
    """A Flickr30k-format folder with the given CSV rows; images written for ``with_images`` stems."""

    def make(rows: list[list[str]], with_images: list[str] | None = None, name: str = "flickr") -> Path:
        data_dir = tmp_path / name
        write_csv(data_dir, rows)
        stems = with_images if with_images is not None else [r[3].split(".")[0] for r in rows if len(r) > 3]
        for i, stem in enumerate(stems):
            _write_jpeg(data_dir / "flickr30k-images" / f"{stem}.jpg", color=(40 * i % 255, 120, 60))
        return data_dir

    return make


@pytest.fixture
def clean_dir(make_dir) -> Path:
    """Ten good images: 6 train, 2 val, 2 test."""
    splits = ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    return make_dir([_good_row(str(100 + i), s) for i, s in enumerate(splits)])
