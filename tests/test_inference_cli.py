"""The inference commands over the literal CLI (`uv run apps/cli ...`) on the tiny preset: a piped
three-turn chat, captioning a folder of 200 images with bad files in it, and the Serve endpoint
under 64 concurrent loopback requests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from processes import stop

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or "uv"
ENV = {**os.environ, "MGPT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, stdin: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([UV, "run", "apps/cli", *args], cwd=ROOT, env=ENV, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nSTDOUT\n{proc.stdout[-3000:]}\nSTDERR\n{proc.stderr[-5000:]}")
    return proc


def _photo(path: Path, seed: int, size: tuple[int, int] = (48, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def test_piped_chat_answers_three_turns_with_history(tiny_run_dir: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "photo.png", 0)
    flags = ["chat", str(photo), "--run", str(tiny_run_dir), "--seed", "0", "--max-new-tokens", "10",
             "--json"]
    turns = [json.loads(line) for line in
             _ok(_cli(*flags, stdin="what is it?\nwhich colour?\nwhere is it?\n")).stdout.splitlines()]
    assert [t["turn"] for t in turns] == [1, 2, 3]
    assert [t["user"] for t in turns] == ["what is it?", "which colour?", "where is it?"]
    assert all(isinstance(t["answer"], str) and t["answer"] for t in turns)
    fresh = json.loads(_ok(_cli(*flags, stdin="which colour?\n")).stdout)
    assert fresh["answer"] != turns[1]["answer"]  # same seed and question: only the history differs


def test_caption_a_folder_of_200_images_skips_bad_files(tiny_run_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    names = [f"img_{i:03d}.{'png' if i % 2 else 'jpg'}" for i in range(200)]
    for i, name in enumerate(names):
        _photo(folder / ("nested" if i % 3 == 0 else "") / name, i, (32, 40))
    (folder / "broken.jpg").write_bytes(b"this is no JPEG")
    (folder / "cut.png").write_bytes((folder / "img_001.png").read_bytes()[:60])
    (folder / "notes.txt").write_text("not an image, not looked at")
    out = tmp_path / "captions.jsonl"
    proc = _ok(_cli("caption", str(folder), str(tmp_path / "missing.jpg"), "--run", str(tiny_run_dir),
                    "--output", str(out), "--batch-size", "16", "--sample", "--max-new-tokens", "4"))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 200
    assert sorted(Path(r["image"]).name for r in rows) == sorted(names)
    assert all(r["caption"] for r in rows)
    assert {r["checkpoint"] for r in rows} == {str(tiny_run_dir / "checkpoints" / "epoch_1")}
    assert {(r["do_sample"], r["max_new_tokens"], r["num_beams"]) for r in rows} == {(True, 4, 1)}
    rejects_file = tmp_path / "captions.jsonl.rejects.jsonl"
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert sorted((r["filename"], r["reason"]) for r in rejects) == [
        ("broken.jpg", "unreadable_image"), ("cut.png", "unreadable_image"), ("missing.jpg", "missing_file")]
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["captioned"] == 200 and summary["skipped"] == 3 and summary["engine"] == "local"
    assert "skipped" in proc.stderr and "broken.jpg" in proc.stderr


def test_inference_commands_report_bad_input_as_errors(tiny_run_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mgpt_cli.main import app

    photo = str(_photo(tmp_path / "a.png", 1))
    cases = [
        (["caption", photo, "--run", str(tiny_run_dir), "--checkpoint", str(tmp_path / "nope")],
         "does not exist"),
        (["caption", photo, "--run", str(tmp_path)], "not a run directory"),
        (["caption", photo, "--run", str(tiny_run_dir), "--engine", "spark"], "engine must be"),
        (["chat", str(tmp_path / "missing.png"), "--run", str(tiny_run_dir)], "missing_file"),
        (["demo", "--run", str(tmp_path)], "not a run directory"),
        (["serve", "--run", str(tiny_run_dir), "--max-batch-size", "256"], "max_ongoing_requests"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output and message in result.output, (args, result.output)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _burst(url: str, bodies: list[bytes]) -> list:
    import httpx

    async with httpx.AsyncClient(timeout=300) as client:
        return await asyncio.gather(*(client.post(url, content=body) for body in bodies))


@pytest.mark.ray
def test_serve_answers_64_concurrent_requests_and_rejects_garbage(tiny_run_dir: Path,
                                                                  tmp_path: Path) -> None:
    import httpx

    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    command = [UV, "run", "apps/cli", "serve", "--run", str(tiny_run_dir), "--port", str(port),
               "--max-batch-size", "16", "--batch-wait-ms", "100", "--sample", "--max-new-tokens", "6"]
    proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/caption"
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-5000:]
            if "serving captions at" in (tmp_path / "serve.log").read_text():
                break
            time.sleep(1)
        else:
            pytest.fail("serve did not start:\n" + (tmp_path / "serve.log").read_text()[-5000:])
        assert httpx.get(url, timeout=60).json()["checkpoint"] == "epoch_1"
        photos = [_photo(tmp_path / f"p{i}.png", i).read_bytes() for i in range(8)]
        replies = asyncio.run(_burst(url, [photos[i % 8] for i in range(64)]))
        assert [r.status_code for r in replies] == [200] * 64
        bodies = [r.json() for r in replies]
        for body in bodies:
            assert set(body) == {"caption", "checkpoint", "instruction", "decoding", "batch_size"}
            assert isinstance(body["caption"], str) and body["caption"]
            assert body["checkpoint"] == "epoch_1" and body["decoding"]["max_new_tokens"] == 6
        assert max(b["batch_size"] for b in bodies) > 1  # concurrent requests were batched together
        bad = httpx.post(url, content=b"\x00 definitely not an image", timeout=60)
        assert bad.status_code == 400 and bad.json()["error"] == "unreadable_image"
        assert "not an image" in bad.json()["detail"]
        empty = httpx.post(url, content=b"", timeout=60)
        assert empty.status_code == 400 and empty.json()["error"] == "empty_body"
    finally:
        stop(proc, 120)
        log.close()
