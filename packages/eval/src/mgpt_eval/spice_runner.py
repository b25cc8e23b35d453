"""SPICE, opt-in: needs Java and the Stanford CoreNLP 3.6.0 jars, which pycocoevalcap downloads at
``Spice()`` construction (it has no offline switch). We never call ``Spice()``: we run the same
``spice-1.0.jar`` with the user's jar folder on the class path, without the LMDB ``-cache`` (its
native library is what breaks on recent JVMs), and parse the output exactly as ``Spice.compute_score``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import tempfile
from pathlib import Path

from mgpt_eval.tokenize import java_available

logger = logging.getLogger(__name__)

CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def spice_unavailable_reason(spice_jars: Path | str | None) -> str | None:
    """None when SPICE can run, else the reason it cannot."""
    if spice_jars is None:
        return (
            "SPICE needs the Stanford CoreNLP 3.6.0 jars: set spice_jars to a folder holding "
            + " and ".join(CORENLP_JARS)
        )
    folder = Path(spice_jars)
    missing = [j for j in CORENLP_JARS if not (folder / j).is_file()]
    if missing:
        return f"spice_jars folder {folder} lacks {missing}"
    if not java_available():
        return "java is not on PATH"
    return None


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def score_spice(
    gts: dict[str, list[str]], res: dict[str, list[str]], spice_jars: Path | str
) -> tuple[float, list[float]]:
    """Corpus SPICE (mean of per-image F, as pycocoevalcap) and per-image F scores."""
    import numpy as np
    import pycocoevalcap.spice as spice_pkg

    reason = spice_unavailable_reason(spice_jars)
    if reason:
        raise RuntimeError(reason)
    spice_dir = Path(next(iter(spice_pkg.__path__)))
    classpath = os.pathsep.join(
        [str(spice_dir / "spice-1.0.jar"), str(spice_dir / "lib" / "*"), str(Path(spice_jars) / "*")]
    )
    ids = list(gts)
    with tempfile.TemporaryDirectory(prefix="mgpt_spice_") as tmp:
        in_file, out_file = Path(tmp) / "in.json", Path(tmp) / "out.json"
        in_file.write_text(json.dumps([{"image_id": i, "test": res[i][0], "refs": gts[i]} for i in ids]))
        cmd = [
            "java",
            "-Xmx8G",
            "-cp",
            classpath,
            "edu.anu.spice.SpiceScorer",
            str(in_file),
            "-out",
            str(out_file),
            "-subset",
            "-silent",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"SPICE failed (rc={done.returncode}): {done.stderr[-2000:]}")
        results = json.loads(out_file.read_text())
    by_id = {str(item["image_id"]): _float(item["scores"]["All"]["f"]) for item in results}
    per_image = [by_id[str(i)] for i in ids]
    return float(np.mean(per_image)), per_image
