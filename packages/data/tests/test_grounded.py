"""flickr30k_grounded_detail.json equals the seed prep script's output, byte for byte."""

import json
import os
from pathlib import Path

import pandas as pd

from mgpt_data.annotations import scan_annotations
from mgpt_data.check import check_data_dir
from mgpt_data.grounded import grounded_records, write_grounded_json


def seed_prepare(flickr30k_path: Path) -> Path:
    """The seed's prepare_flickr30k_annotations(), minus its prints."""
    df = pd.read_csv(os.path.join(flickr30k_path, "flickr_annotations_30k.csv"))
    output_path = os.path.join(flickr30k_path, "seed_grounded.json")
    images_path = os.path.join(flickr30k_path, "flickr30k-images")
    annotations = []
    for _, row in df.iterrows():
        filename = row["filename"]
        if not os.path.exists(os.path.join(images_path, filename)):
            continue
        captions = json.loads(row["raw"])
        img_id = filename.split(".")[0]
        annotations.append({"image_id": img_id, "grounded_caption": " ".join(captions)})
    with open(output_path, "w") as f:
        json.dump(annotations, f, indent=4)
    return Path(output_path)


def known_rows(good_row):
    tricky = good_row("1000092795")
    tricky[0] = json.dumps(
        [
            "Two young guys with shaggy hair look at their hands.",
            'A man says "hi", then waves; café, naïve.',
            "Two friends enjoy time spent together.",
        ]
    )
    return [tricky, good_row("10002456", "val"), good_row("1000268201", "test"), good_row("missing")]


def test_grounded_json_matches_the_seed_byte_for_byte(make_dir, good_row):
    data_dir = make_dir(known_rows(good_row), with_images=["1000092795", "10002456", "1000268201"])
    summary = check_data_dir(data_dir, engine="local", progress=False)
    ours = (data_dir / "flickr30k_grounded_detail.json").read_bytes()
    assert ours == seed_prepare(data_dir).read_bytes()
    records = json.loads(ours)
    assert records[0] == {
        "image_id": "1000092795",
        "grounded_caption": "Two young guys with shaggy hair look at their hands. "
        'A man says "hi", then waves; café, naïve. Two friends enjoy time spent together.',
    }
    assert [r["image_id"] for r in records] == ["1000092795", "10002456", "1000268201"]
    assert summary["rejected"] == {"missing_file": 1}  # the seed skips it silently; we report it


def test_records_and_writer(tmp_path: Path, clean_dir: Path):
    images = scan_annotations(clean_dir).images
    path = write_grounded_json(images, tmp_path / "out" / "g.json")
    assert json.loads(path.read_text()) == grounded_records(images)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temp file left behind
