"""The rendered cluster destroy (cluster-setup's delete) with a node down: a stand-in `pcs` on
PATH answers `pcs status pcsd` as pcs 0.11 does and records every call; the script text is the
rendered one, with only its corosync.conf path pointed into the test's directory."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from manifest_schema import Manifest

FAKE_PCS = """#!/bin/bash
printf '%s\\n' "$*" >> "$PCS_CALLS"
if [ "$1 $2" = "status pcsd" ]; then
  printf '%s' "$PCSD_STATUS"
fi
"""


def destroy_script(out: Path) -> str:
    step = Manifest.load(out).resource("cluster-setup")
    return (out / step.files["delete"]).read_text()


def run_destroy(out: Path, tmp_path: Path, pcsd_status: str, configured: bool = True) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pcs").write_text(FAKE_PCS)
    (bin_dir / "pcs").chmod(0o755)
    conf = tmp_path / "corosync.conf"
    if configured:
        conf.write_text("totem {\n    cluster_name: osha\n}\n")
    script = destroy_script(out).replace("/etc/corosync/corosync.conf", str(conf))
    calls = tmp_path / "calls"
    calls.touch()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PCS_CALLS": str(calls),
           "PCSD_STATUS": pcsd_status}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines()


def test_every_node_answering_destroys_the_whole_cluster(rendered, tmp_path):
    calls = run_destroy(rendered("dev"), tmp_path,
                        "  ctl1: Online\n  ctl2: Online\n  ctl3: Online\n")
    assert [c for c in calls if not c.startswith("status pcsd")] == \
        ["cluster destroy --all --request-timeout=300"]


@pytest.mark.parametrize("down", [["ctl3"], ["ctl2", "ctl3"]])
def test_nodes_whose_pcsd_does_not_answer_are_removed_first(rendered, tmp_path, down):
    status = "".join(f"  ctl{i}: {'Offline' if f'ctl{i}' in down else 'Online'}\n"
                     for i in (1, 2, 3))
    calls = [c for c in run_destroy(rendered("dev"), tmp_path, status)
             if not c.startswith("status pcsd")]
    assert calls == [f"cluster node remove {' '.join(down)} --skip-offline --force "
                     "--request-timeout=300", "cluster destroy --all --request-timeout=300"]


def test_a_node_without_a_cluster_is_left_alone(rendered, tmp_path):
    assert run_destroy(rendered("dev"), tmp_path, "", configured=False) == []
