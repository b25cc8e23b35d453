"""Shared inputs for mgpt_eval tests: a fixed small caption set written by hand."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Six images, several references each; candidates range from near-copies to wrong to empty.
REFERENCES: dict[str, list[str]] = {
    "img1": [
        "A dog runs across the green grass.",
        "A brown dog is running on a lawn.",
        "A dog playing in a field.",
    ],
    "img2": [
        "Two men ride bicycles down a city street.",
        "Two cyclists on a busy road.",
        "Men riding bikes past parked cars.",
    ],
    "img3": [
        "A woman holds an umbrella in the rain.",
        "A lady with a red umbrella walks in the rain.",
        "A person walking with an umbrella on a wet street.",
    ],
    "img4": [
        "A plate of pizza on a wooden table.",
        "A pizza with cheese and tomatoes sits on a table.",
        "Sliced pizza served on a table.",
    ],
    "img5": [
        "A cat sleeps on a sofa.",
        "A grey cat curled up on the couch.",
        "A kitten sleeping on a couch cushion.",
    ],
    "img6": [
        "A red bus drives past tall buildings.",
        "A double decker bus on a city street.",
        "A bus in traffic near some buildings.",
    ],
}
CANDIDATES: dict[str, str] = {
    "img1": "A brown dog is running on the grass.",
    "img2": "Two men riding bikes on a street.",
    "img3": "A woman with an umbrella walks in the rain.",
    "img4": "A dog sitting on a couch.",
    "img5": "A cat sleeping on a couch.",
    "img6": "",
}


def java_children() -> list[int]:
    """PIDs of live (non-zombie) java processes whose parent is this test process (Linux /proc)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me and comm == "java" and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def caption_set() -> tuple[dict[str, list[str]], dict[str, str]]:
    """(references, candidates) of the fixed hand-written set; shared by all tests: do not mutate."""
    return {k: list(v) for k, v in REFERENCES.items()}, dict(CANDIDATES)


@pytest.fixture(scope="session")
def find_java_children():
    """The ``java_children`` helper, as a fixture (test modules cannot import conftest)."""
    return java_children


@pytest.fixture
def no_java(monkeypatch, tmp_path):
    """PATH without java: METEOR/PTB/SPICE must degrade to 'unavailable'/fallback."""
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.fixture(scope="session")
def scored(caption_set, find_java_children):
    """One full run (one METEOR JVM) over the fixed set, recording the METEOR process it closed."""
    from unittest import mock

    from mgpt_eval import meteor_runner, score_captions

    references, candidates = caption_set
    closed = []
    original = meteor_runner.close_meteor

    def recording_close(meteor):
        closed.append(meteor.meteor_p)
        original(meteor)

    before = set(find_java_children())
    with mock.patch.object(meteor_runner, "close_meteor", recording_close):
        report = score_captions(references, candidates)
    return report, closed, set(find_java_children()) - before
