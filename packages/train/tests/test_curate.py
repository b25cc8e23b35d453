"""`curate` on synthetic scenes with the tiny preset as captioner: two-turn generation, the post-filter,
and a Flickr30k-format output folder that `prepare` (check_data_dir) reads with zero rejects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mgpt_data import check_data_dir, scan_annotations
from mgpt_data.caption_filter import REASONS
from mgpt_train.curate import CurateOptions, curate
from mgpt_train.inference.loading import resolve_source

# the tiny LM is random: sampling gives words (greedy repeats one token), 6 new tokens keep it quick
FAST = {"max_new_tokens": 6}
N = 6


@pytest.fixture(scope="module")
def source(tiny_data_dir: Path):
    return resolve_source(None, None, "tiny", {"data": {"data_dir": str(tiny_data_dir)}})


@pytest.fixture(scope="module")
def unfiltered(source, tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("curate") / "unfiltered"
    options = CurateOptions(max_images=N, decoding=FAST, filter=False, batch_size=4)
    return curate(source, out, data_dir=tiny_data_dir, options=options, device="cpu", progress=False)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_curated_folder_is_read_by_prepare_with_zero_rejects(unfiltered, tiny_data_dir: Path) -> None:
    assert (unfiltered.images, unfiltered.kept, unfiltered.rejected) == (N, N, {})
    summary = check_data_dir(unfiltered.output_dir, engine="local", progress=False)
    assert (summary["csv_rows"], summary["kept"], summary["rejected_total"]) == (N, N, 0)
    source_images = {img["image_id"]: img for img in scan_annotations(tiny_data_dir).images[:N]}
    curated = scan_annotations(unfiltered.output_dir).images
    splits = {img["image_id"]: img["split"] for img in curated}
    assert splits == {k: v["split"] for k, v in source_images.items()}
    for img in curated:  # the same picture, its description as the one caption
        assert Path(img["path"]).read_bytes() == Path(source_images[img["image_id"]]["path"]).read_bytes()
        assert len(img["captions"]) == 1 and img["captions"][0].strip()


def test_short_answers_get_a_continue_turn_and_are_joined(unfiltered) -> None:
    generations = _lines(unfiltered.paths["curate_generations.jsonl"])
    assert len(generations) == N and unfiltered.continued == N  # 6 new tokens < 80: every answer continued
    assert all(g["tokens"] < 80 and g["second"] is not None for g in generations)
    captions = {a["image_id"]: a["caption"] for a in
                json.loads(unfiltered.paths["filter_cap.json"].read_text())["annotations"]}
    for g in generations:
        assert captions[g["image_id"]] == " ".join(f"{g['first']} {g['second']}".split())
        assert g["instruction"] in CurateOptions().instructions


def test_filter_cap_json_has_upstreams_layout(unfiltered) -> None:
    payload = json.loads(unfiltered.paths["filter_cap.json"].read_text())
    assert list(payload) == ["annotations"] and len(payload["annotations"]) == N
    assert all(set(a) == {"image_id", "caption"} for a in payload["annotations"])


def test_the_filter_rejects_random_text_with_reasons(source, tiny_data_dir: Path, tmp_path: Path) -> None:
    options = CurateOptions(max_images=N, decoding=FAST, batch_size=4)
    summary = curate(source, tmp_path / "filtered", data_dir=tiny_data_dir, options=options, device="cpu",
                     progress=False)
    rejects = _lines(summary.paths["curate_rejects.jsonl"])
    assert summary.kept + len(rejects) == N and sum(summary.rejected.values()) == len(rejects)
    assert rejects and all(r["reason"] in REASONS and r["detail"] and "text" in r for r in rejects)
    assert check_data_dir(summary.output_dir, engine="local", progress=False)["rejected_total"] == 0


def test_an_unreadable_source_image_is_a_reject_not_a_crash(source, tiny_data_dir: Path,
                                                              tmp_path: Path) -> None:
    data = shutil.copytree(tiny_data_dir, tmp_path / "data")
    broken = scan_annotations(data).images[0]
    Path(broken["path"]).write_bytes(b"not a jpeg")
    options = CurateOptions(max_images=3, decoding=FAST, filter=False)
    summary = curate(source, tmp_path / "out", data_dir=data, options=options, device="cpu", progress=False)
    assert summary.kept == 2 and summary.rejected == {"unreadable_image": 1}
    assert _lines(summary.paths["curate_rejects.jsonl"])[0]["image_id"] == broken["image_id"]


def test_bad_output_folders_are_refused(source, tiny_data_dir: Path, unfiltered) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        curate(source, unfiltered.output_dir, data_dir=tiny_data_dir, progress=False)
    with pytest.raises(ValueError, match="must differ"):
        curate(source, tiny_data_dir, data_dir=tiny_data_dir, overwrite=True, progress=False)
    with pytest.raises(ValueError, match="(?i)extra"):
        CurateOptions(decoding={"beams": 2})
