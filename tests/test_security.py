"""Security checks as tests: how foreign weights are loaded, and where paths from data files may lead.

1. The source of packages/, apps/ and benchmarks/ (tests excluded) is parsed with :mod:`ast` and every
   call is checked: ``torch.load`` only with a literal ``weights_only=True``, no ``pickle.load(s)``,
   no ``trust_remote_code`` other than a literal ``False``, and every ``*load*(..., strict=...)`` with a
   literal ``strict=True`` (a silent ``strict=False`` load can load nothing, see minimind-v #75).
   A failure names file:line.
2. A file name from ``flickr_annotations_30k.csv`` never reaches a file outside the data folder:
   ``../``, absolute names, sub-folders and symlinks that resolve outside are rejected, and every kept
   path lies inside ``flickr30k-images/``. Checkpoint names read from Ray's record of a run
   (``checkpoint_manager_snapshot.json``) or given as ``train.resume_from`` stay inside ``checkpoints/``.

What mgpt listens on is tested in tests/test_listening_sockets.py (slow), Ray's token authentication
and the loopback-only private Ray in tests/test_ray_start.py.
"""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from mgpt_data.annotations import scan_annotations

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("packages", "apps", "benchmarks")


def _literal(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _call_name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_call_name(func.value)}.{func.attr}" if _call_name(func.value) else func.attr
    return func.id if isinstance(func, ast.Name) else ""


def unsafe_loads(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: what`` for each unsafe weight-loading call in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node.func)
        kwargs = {k.arg: k.value for k in node.keywords}
        where = f"{filename}:{node.lineno}"
        if name == "torch.load" and not _literal(kwargs.get("weights_only"), True):
            found.append(f"{where}: torch.load without weights_only=True")
        if name in ("pickle.load", "pickle.loads"):
            found.append(f"{where}: {name} (runs code from the file; use safetensors or torch.load)")
        if "trust_remote_code" in kwargs and not _literal(kwargs["trust_remote_code"], False):
            found.append(f"{where}: trust_remote_code is not False")
        if "load" in name.rsplit(".", 1)[-1] and "strict" in kwargs and not _literal(kwargs["strict"], True):
            found.append(f"{where}: {name}(strict=...) is not strict=True (report what is ignored instead)")
    return found


def _sources() -> list[Path]:
    files = [p for top in SCANNED for p in (ROOT / top).rglob("*.py")]
    return sorted(p for p in files if "tests" not in p.relative_to(ROOT).parts and ".venv" not in p.parts)


def test_the_scanner_finds_each_kind_of_unsafe_load():
    bad = (
        "import torch, pickle\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "torch.load(p, **kw)\n"
        "pickle.loads(b)\n"
        "AutoModel.from_pretrained(p, trust_remote_code=True)\n"
        "model.load_state_dict(sd, strict=False)\n"
        "model.load_state_dict(sd, strict=flag)\n"
    )
    assert [f.split(": ", 1)[0] for f in unsafe_loads(bad, "x.py")] == [f"x.py:{n}" for n in range(2, 9)]
    fine = (
        "torch.load(p, map_location='cpu', weights_only=True)\n"
        "AutoModel.from_pretrained(p, trust_remote_code=False, local_files_only=True)\n"
        "model.load_state_dict(sd, strict=True, assign=True)\n"
        "zip(a, b, strict=False)\n"
    )
    assert unsafe_loads(fine) == []


def test_no_unsafe_weight_loading_in_the_source():
    sources = _sources()
    assert len(sources) > 50, sources  # the scan really covers the tree
    found = [f for p in sources
             for f in unsafe_loads(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert found == [], "\n".join(found)


def _data_dir(root: Path, filenames: list[str]) -> Path:
    images = root / "flickr30k-images"
    images.mkdir(parents=True)
    with (root / "flickr_annotations_30k.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["raw", "sentids", "split", "filename", "img_id"])
        for i, name in enumerate(filenames):
            w.writerow([json.dumps([f"caption {i}"]), "[0]", "train", name, str(i)])
    return root


@pytest.mark.parametrize("name", ["../secret.jpg", "../../secret.jpg", "/tmp/secret.jpg", "sub/../secret.jpg",
                                  "flickr30k-images/../../secret.jpg", "./ok.jpg", "..", ".", "x/"])
def test_names_that_leave_the_images_folder_are_rejected(tmp_path: Path, name: str):
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.jpg")
    data_dir = _data_dir(tmp_path / "data", [name, "ok.jpg"])
    Image.new("RGB", (4, 4)).save(data_dir / "flickr30k-images" / "ok.jpg")
    scan = scan_annotations(data_dir)
    assert [i["filename"] for i in scan.images] == ["ok.jpg"]
    assert [(r["reason"], r["detail"].split(": ", 1)[1]) for r in scan.rejects] == [
        ("malformed_row", f"filename {name!r} is not a plain file name")]


def test_symlinks_out_of_the_folder_are_rejected_and_kept_paths_stay_inside(tmp_path: Path):
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.jpg")
    data_dir = _data_dir(tmp_path / "data", ["out.jpg", "hop.jpg", "in.jpg", "ok.jpg"])
    images = data_dir / "flickr30k-images"
    Image.new("RGB", (4, 4)).save(images / "ok.jpg")
    (images / "out.jpg").symlink_to(tmp_path / "secret.jpg")
    (data_dir / "hop").symlink_to(tmp_path)  # a link via a folder link still resolves outside
    (images / "hop.jpg").symlink_to(data_dir / "hop" / "secret.jpg")
    (images / "in.jpg").symlink_to("ok.jpg")  # relative, inside: fine
    scan = scan_annotations(data_dir)
    assert [(r["filename"], r["reason"]) for r in scan.rejects] == [("out.jpg", "outside_data_dir"),
                                                                   ("hop.jpg", "outside_data_dir")]
    assert [i["filename"] for i in scan.images] == ["in.jpg", "ok.jpg"]
    assert all(Path(i["path"]).is_relative_to(images.resolve()) for i in scan.images)


@pytest.mark.parametrize("name", ["../../elsewhere", "/tmp/elsewhere", "..", "epoch_0/../../x", ""])
def test_a_checkpoint_name_in_rays_record_never_leaves_the_checkpoints_folder(tmp_path: Path, name: str):
    from mgpt_train.checkpointing import latest_checkpoint_dir
    from mgpt_train.resume_point import rewind_to

    snapshot = tmp_path / "checkpoints" / "checkpoint_manager_snapshot.json"
    snapshot.parent.mkdir()
    result = {"checkpoint_dir_name": name, "metrics": {}}
    snapshot.write_text(json.dumps({"latest_checkpoint_result": result, "checkpoint_results": [result],
                                    "checkpoint_report_indices": [1]}))
    with pytest.raises(ValueError, match="not a folder inside checkpoints/"):
        latest_checkpoint_dir(tmp_path)
    with pytest.raises(ValueError, match="not a folder inside checkpoints/"):
        rewind_to(tmp_path, "epoch_0")


@pytest.mark.parametrize("name", ["../epoch_0", "/tmp/epoch_0", "..", ".epoch_1.tmp-x", "a/b", ""])
def test_resume_from_takes_only_a_checkpoint_folder_name(name: str):
    from pydantic import ValidationError

    from mgpt_train.settings import TrainSettings

    with pytest.raises(ValidationError, match="resume_from must be a checkpoint folder name"):
        TrainSettings(resume_from=name)
    assert TrainSettings(resume_from="epoch_0").resume_from == "epoch_0"
