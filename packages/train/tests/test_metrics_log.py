"""metrics.jsonl: append, read, cut back after a resume."""

from __future__ import annotations

import pytest

from mgpt_train.metrics_log import MetricsLog, read_metrics


def _record(step: int) -> dict:
    return {"epoch": 0, "step": step - 1, "global_step": step, "loss": 1.0 / step, "lr": 1e-3,
            "sec_per_it": 0.1, "data_sec": 0.0}


def test_append_and_truncate(tmp_path) -> None:
    log = MetricsLog(tmp_path / "run" / "metrics.jsonl")
    assert read_metrics(log.path) == []
    for step in range(1, 6):
        log.append(_record(step))
    assert log.truncate_after(3) == 2
    assert [r["global_step"] for r in read_metrics(log.path)] == [1, 2, 3]
    assert log.truncate_after(3) == 0
    log.append(_record(4))
    assert [r["global_step"] for r in read_metrics(log.path)] == [1, 2, 3, 4]


def test_incomplete_record_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="lacks"):
        MetricsLog(tmp_path / "m.jsonl").append({"loss": 1.0})


def test_a_last_line_cut_short_is_dropped_and_never_glued_to_the_next(tmp_path) -> None:
    log = MetricsLog(tmp_path / "m.jsonl")
    for step in (1, 2):
        log.append(_record(step))
    with log.path.open("a") as f:  # the writer was killed (or the disk filled) mid-append
        f.write('{"epoch": 0, "step": 2, "glo')
    assert [r["global_step"] for r in read_metrics(log.path)] == [1, 2]
    assert log.truncate_after(2) == 0
    log.append(_record(3))
    assert [r["global_step"] for r in read_metrics(log.path)] == [1, 2, 3]
    log.path.write_text(log.path.read_text().replace('"global_step": 2', '"global_st'))
    with pytest.raises(ValueError, match="line 2 is not a JSON record"):
        read_metrics(log.path)
