"""The driver's progress bar reads only the tail of metrics.jsonl and skips polls when it did not grow
(the log-line mode without a terminal: test_run_policies.py)."""

from __future__ import annotations

import json
from pathlib import Path

from mgpt_train.progress import TAIL_BYTES, MetricsProgress, _last_record


def _record(step: int) -> dict:
    return {"epoch": 0, "step": step - 1, "global_step": step, "loss": 1.0 / step, "lr": 1e-3}


def test_last_record_of_a_long_file_with_a_line_being_written(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps(_record(s)) for s in range(1, 200)]
    path.write_text("\n".join(lines) + "\n" + '{"epoch": 0, "glo')  # the last line is half written
    assert path.stat().st_size > TAIL_BYTES  # so only the tail is read
    assert _last_record(path) == _record(199)


def test_last_record_absent_or_empty(tmp_path: Path) -> None:
    assert _last_record(tmp_path / "none.jsonl") is None
    (tmp_path / "empty.jsonl").write_text("")
    assert _last_record(tmp_path / "empty.jsonl") is None


def test_progress_follows_the_file_and_skips_unchanged_polls(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(_record(1)) + "\n")
    reads = []
    import mgpt_train.progress as progress

    def counting(p: Path):
        reads.append(p)
        return _last_record(p)

    monkeypatch.setattr(progress, "_last_record", counting)
    with MetricsProgress(path, total=10, interval=3600, tty=True) as bar:  # no background poll in the test
        assert bar._bar is not None and bar._bar.n == 1
        bar._update()  # same size: no read
        assert len(reads) == 1
        with path.open("a") as f:
            f.write(json.dumps(_record(2)) + "\n")
        bar._update()
        assert bar._bar.n == 2 and len(reads) == 2
