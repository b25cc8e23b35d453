"""Shared pytest fixtures for every package's tests: the process environment and one Ray per session."""

from __future__ import annotations

import os

import pytest

from mgpt_data.ray_runtime import apply_process_env, start_ray

# Offline, quiet, Ray workers on this interpreter: mgpt's one environment definition, before any `import ray`.
apply_process_env()
# `train` starts the Ray dashboard by default; the CLI runs of the default suite (subprocesses inherit this)
# skip it to stay light. tests/test_ray_job.py (-m slow) checks the default, the URL and --no-dashboard.
os.environ.setdefault("MGPT_TRAIN__INCLUDE_DASHBOARD", "false")


@pytest.fixture(scope="session")
def ray_session():
    """One private local Ray for the whole test session (never `ray stop`: it kills every Ray on the box)."""
    import ray

    start_ray(num_cpus=4, log_to_driver=False)
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------------------------------------- LLaMA vocab
LLAMA_VOCAB_SDIST = ("llama-cpp-python", "0.3.36")
LLAMA_VOCAB_FILES = tuple(f"ggml-vocab-llama-spm.gguf{ext}" for ext in ("", ".inp", ".out"))


def _fetch_llama_vocab(dest):
    """Unpack llama.cpp's vocab-only LLaMA SentencePiece GGUF (and its reference tokenisations) from the
    llama-cpp-python source distribution on PyPI (the simple index, sha256-checked) into ``dest``."""
    import hashlib
    import os
    import re
    import tarfile
    import tempfile
    import urllib.request
    from pathlib import Path

    name, version = LLAMA_VOCAB_SDIST
    index = (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    with urllib.request.urlopen(f"{index}/{name}/", timeout=60) as response:
        page = response.read().decode()
    sdist = f"{name.replace('-', '_')}-{version}.tar.gz"
    link = next((m for m in re.findall(r'href="([^"]+)"', page) if sdist in m), None)
    if link is None:
        raise FileNotFoundError(f"{sdist} not on {index}")
    url, _, digest = link.partition("#sha256=")
    models = f"{name.replace('-', '_')}-{version}/vendor/llama.cpp/models"
    members = {f"{models}/{f}": f for f in LLAMA_VOCAB_FILES}
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / sdist
        urllib.request.urlretrieve(url, archive)
        if digest and hashlib.sha256(archive.read_bytes()).hexdigest() != digest:
            raise ValueError(f"{sdist}: sha256 differs from the index")
        with tarfile.open(archive) as tar:
            for member, file_name in members.items():
                data = tar.extractfile(member)
                part = dest / f".{file_name}.part"
                part.write_bytes(data.read())
                part.replace(dest / file_name)


@pytest.fixture(scope="session")
def llama_vocab_dir():
    """The cached LLaMA SentencePiece vocab (fetched once from PyPI); skips, saying why, when offline."""
    from mgpt_vision.paths import cache_dir

    dest = cache_dir() / "vocab"
    if not all((dest / f).is_file() for f in LLAMA_VOCAB_FILES):
        try:
            _fetch_llama_vocab(dest)
        except OSError as e:
            pytest.skip(f"LLaMA vocab not cached at {dest} and not fetchable from PyPI: {e}")
    return dest


# ---------------------------------------------------------------------------------------------- tiny run dir
@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory):
    """A run directory laid out as `mgpt train` writes it (settings.json, checkpoints/epoch_0..1) on the
    tiny preset, made in seconds: each checkpoint is the seeded initial bridge plus seeded noise, so
    the two epochs and the untrained bridge differ. (Real training is tested in tests/test_cli_e2e.py.)"""
    from pathlib import Path

    import torch

    from mgpt_train.checkpointing import write_checkpoint_dir
    from mgpt_train.modeling import build_model
    from mgpt_train.run_settings import RunSettings
    from mgpt_train.rundir import SETTINGS_FILE, write_json

    root = tmp_path_factory.mktemp("tiny_run")
    run_dir = root / "runs" / "tiny"
    settings = RunSettings.load(Path(__file__).parent / "configs" / "tiny.toml",
                                {"data": {"data_dir": str(root / "data")},
                                 "train": {"output_dir": str(root / "runs"), "run_name": "tiny"}})
    write_json(run_dir / SETTINGS_FILE, settings.to_json_dict())
    initial = build_model(settings).trainable_state_dict()
    generator = torch.Generator().manual_seed(0)
    for epoch in range(2):
        trainable = {k: v + 0.5 * torch.randn(v.shape, generator=generator) for k, v in initial.items()}
        write_checkpoint_dir(run_dir / "checkpoints" / f"epoch_{epoch}", trainable,
                             {"epoch": epoch + 1, "step_in_epoch": 0, "global_step": 2 * (epoch + 1)},
                             settings.to_json_dict())
    return run_dir
