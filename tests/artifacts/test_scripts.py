"""Every script the stack runs, of every stack file, passes `bash -n` and shellcheck, and reads
its secret from stdin whole."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from components.node import ROOT_PROLOGUE
from manifest_schema import Manifest
from tests.conftest import STACKS


def scripts(out: Path) -> list[Path]:
    return [out / path for resource in Manifest.load(out).resources
            for role, path in resource.files.items() if role in ("create", "update", "delete")]


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


# A pipe into `grep -q`: grep exits at the first match, the writer's next write gets SIGPIPE, and
# under pipefail the pipeline fails although the text matched: a check that is sometimes wrong
# (`ip -o addr | grep -q ADDRESS` failed one time in five where the VIP's line followed).
PIPE_INTO_GREP_Q = re.compile(r"\|\s*grep\s+(-\S+\s+)*-[A-Za-z]*q")


@pytest.mark.parametrize("stack", STACKS)
def test_no_check_pipes_into_a_grep_that_stops_reading(rendered, stack):
    found = scripts(rendered(stack))
    assert all("set -euo pipefail" in script.read_text() for script in found)
    piped = [f"{script.relative_to(rendered(stack))}: {line.strip()}" for script in found
             for line in script.read_text().splitlines() if PIPE_INTO_GREP_Q.search(line)]
    assert not piped, "read the whole output first (a variable, then grep <<<):\n" + "\n".join(piped)


@dataclass(frozen=True)
class SecretRead:
    """One read of stdin: `probe` runs the script up to it and prints what it read."""

    probe: str
    # stdin -> what the probe prints
    expected: Callable[[str], str]


def bundle_of(stdin: str, prefix: str) -> str:
    """read_bundle's array for `stdin`, one sorted `NAME=value` line per entry (the last line of
    a name wins; a line without `=` is its own name and value)."""
    found = {}
    for line in stdin.rstrip("\n").split("\n"):
        if line:
            found[prefix + line.split("=", 1)[0]] = line.split("=", 1)[-1]
    return "".join(sorted(f"{name}={value}\n" for name, value in found.items()))


def secret_reads(script: str) -> list[SecretRead]:
    """Each top-level `VAR=$(read_secret ...)` and `read_bundle WHAT ARRAY [PREFIX]`."""
    lines = script.replace(ROOT_PROLOGUE, "").splitlines(keepends=True)
    reads = []
    for index, line in enumerate(lines):
        head = "".join(lines[:index + 1])
        if match := re.match(r"(\w+)=\$\(read_secret ", line):
            reads.append(SecretRead(f'{head}printf %s "${match.group(1)}"\n',
                                    lambda stdin: stdin.rstrip("\n")))
        elif match := re.match(r"read_bundle '[^']*' (\w+) ?(\w*)$", line):
            array, prefix = match.groups()
            print_array = (f'for name in "${{!{array}[@]}}"; do printf "%s=%s\\n" "$name" '
                           f'"${{{array}[$name]}}"; done | LC_ALL=C sort\n')
            reads.append(SecretRead(head + print_array,
                                    lambda stdin, prefix=prefix: bundle_of(stdin, prefix)))
    return reads


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_read_from_stdin_arrive_whole(rendered, stack, tmp_path):
    """Each step with stdin reads it once, whole: a two-line secret arrives intact (only trailing
    newlines dropped), a bundle of NAME=value lines arrives as its names and values, the rendered
    stdin too, and an empty stdin stops the script."""
    out = rendered(stack)
    checked = 0
    for resource in Manifest.load(out).resources:
        if "stdin" not in resource.files:
            continue
        rendered_stdin = (out / resource.files["stdin"]).read_text()
        for role in ("create", "update"):
            path = resource.files.get(role)
            if path is None:
                continue
            reads = secret_reads((out / path).read_text())
            assert len(reads) == 1, f"{path}: the secret is read {len(reads)} times"
            (read,) = reads
            for secret in ("first line of it\nsecond=line $(:>MARKER)", rendered_stdin):
                result = subprocess.run(["bash", "-c", read.probe], input=secret, cwd=tmp_path,
                                        capture_output=True, text=True)
                assert result.returncode == 0, f"{path}: {result.stderr}"
                assert result.stdout == read.expected(secret), path
            empty = subprocess.run(["bash", "-c", read.probe], input="", capture_output=True,
                                   text=True)
            assert empty.returncode != 0 and "stdin carries no" in empty.stderr, path
            checked += 1
    assert checked and not (tmp_path / "MARKER").exists()
