"""Every script the stack runs, of every stack file, passes `bash -n` and shellcheck."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

STACKS = sorted(p.name.split(".")[1] for p in Path(__file__).resolve().parents[2].glob("Pulumi.*.yaml"))


def scripts(out: Path) -> list[Path]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [out / path for resource in manifest["resources"]
            for role, path in resource["files"].items() if role in ("create", "update", "delete")]


@pytest.mark.parametrize("stack", STACKS)
def test_every_script_parses(rendered, stack):
    found = scripts(rendered(stack))
    assert found
    for script in found:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_script_passes_shellcheck(rendered, stack):
    found = scripts(rendered(stack))
    result = subprocess.run(["shellcheck", "--shell=bash", "--severity=style",
                             *map(str, found)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
