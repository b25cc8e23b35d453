"""A 2-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, one CPU per node): the tiny preset
trains with one Ray Train worker on each node (0.75 CPU each, so two cannot share a node; the rest
of each node runs the plan's Ray Data tasks), the plan streaming to both through Ray Data."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import ray
    from ray.cluster_utils import Cluster

    from mgpt_data.ray_runtime import apply_process_env
    from mgpt_train import RunSettings, fit
    from mgpt_train.metrics_log import read_metrics

    apply_process_env()
    root = Path(sys.argv[1])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                           "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        settings = RunSettings.load("tiny", {
            "data": {"data_dir": str(root / "data")},
            "train": {"output_dir": str(root / "runs"), "workers": 2, "cpus_per_worker": 0.75,
                      "max_epoch": 1, "iters_per_epoch": 3, "address": cluster.address}})
        fit(settings, root / "runs" / "two-nodes", progress=False)
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        workers = json.loads((root / "runs" / "two-nodes" / "summary.json").read_text()).get("worker_nodes")
        out = {"nodes": len(nodes), "worker_nodes": workers,
               "records": read_metrics(root / "runs" / "two-nodes" / "metrics.jsonl")}
        print("RESULT " + json.dumps(out))
    finally:
        ray.shutdown()
        cluster.shutdown()
    """
)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_tiny_trains_across_two_nodes(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-6000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["nodes"] == 2 and len(set(out["worker_nodes"])) == 2  # one worker on each node
    assert [r["global_step"] for r in out["records"]] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) for r in out["records"])
