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


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_read_from_stdin_arrive_whole(rendered, stack):
    """Each script's `read` of its secret, fed the rendered stdin exactly (no final newline)."""
    out = rendered(stack)
    manifest = json.loads((out / "manifest.json").read_text())
    checked = 0
    for resource in manifest["resources"]:
        if "stdin" not in resource["files"]:
            continue
        secret = (out / resource["files"]["stdin"]).read_text()
        for role in ("create", "update"):
            path = resource["files"].get(role)
            lines = (out / path).read_text().splitlines() if path else []
            for line in [l for l in lines if l.startswith("IFS= read -r ")]:
                variable = line.split()[3]
                probe = f'set -euo pipefail\n{line}\nprintf %s "${variable}"\n'
                result = subprocess.run(["bash", "-c", probe], input=secret,
                                        capture_output=True, text=True)
                assert result.returncode == 0, f"{path}: {line}"
                assert result.stdout == secret.split("\n")[0], path
                checked += 1
    assert checked
