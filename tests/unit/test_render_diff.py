"""The code-review workflow's steps, run here: the render diff between two commits of a temporary
clone (git worktrees, the real render tool), and the workflow's own shell steps."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools import render

ROOT = render.ROOT
WORKFLOW = ROOT / ".github" / "workflows" / "review.yml"
GIT = ["git", "-c", "user.name=review-test", "-c", "user.email=review-test@localhost"]


def git(repo: Path, *argv: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *argv], check=True, capture_output=True,
                          text=True).stdout


def render_diff(repo: Path, base: str, head: str, out: Path, stacks: str = "") -> \
        subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    if stacks:
        env["STACKS"] = stacks
    return subprocess.run([str(repo / "tools" / "render_diff.sh"), base, head, str(out)],
                          cwd=repo, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The project's current tree as commit 1; commit 2 switches dev to the seed's HAProxy group."""
    repo = tmp_path_factory.mktemp("review") / "repo"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                           check=True, capture_output=True, text=True).stdout.split()
    for relative in files:
        if (ROOT / relative).is_file():
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, repo / relative)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    dev = repo / "Pulumi.dev.yaml"
    dev.write_text(dev.read_text().replace("haproxyLayout: clone", "haproxyLayout: group"))
    git(repo, "commit", "-qam", "dev: HAProxy in the VIP's group")
    return repo


def test_the_diff_shows_exactly_the_changed_stack(repo, tmp_path):
    out = tmp_path / "render.diff"
    result = render_diff(repo, "HEAD~1", "HEAD", out)
    assert result.returncode == 0, result.stderr
    diff = out.read_text()
    changed = re.findall(r"^diff -ruN base/(\S+) head/\1$", diff, re.M)
    assert changed and all(path.startswith("dev/") for path in changed), changed
    assert "dev/cluster-layout/create.sh" in changed
    assert re.search(r"^-shadow resource create haproxy systemd:haproxy .* clone ", diff, re.M)
    assert re.search(r"^\+shadow resource create haproxy systemd:haproxy .*--group osha-core",
                     diff, re.M)
    assert "/secrets/" not in diff and "PRIVATE KEY" not in diff
    assert f"{len(changed)} file(s) differ" in result.stdout
    # The worktrees are gone again.
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_the_same_revision_gives_an_empty_diff(repo, tmp_path):
    """Rendering is deterministic (the manifest is ordered), so only real changes show."""
    out = tmp_path / "render.diff"
    result = render_diff(repo, "HEAD", "HEAD", out, stacks="dev multihost")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "" and "0 file(s) differ" in result.stdout


def test_a_head_that_fails_to_render_shows_in_the_diff_and_fails(repo, tmp_path):
    branch = tmp_path / "broken"
    git(repo, "worktree", "add", "-q", "-b", "broken", str(branch), "HEAD")
    try:
        dev = branch / "Pulumi.dev.yaml"
        dev.write_text(dev.read_text().replace("vip: 10.20.0.10", "vip: 10.99.0.10"))
        git(branch, "commit", "-qam", "a VIP outside the network")
        out = tmp_path / "render.diff"
        result = render_diff(repo, "main", "broken", out, stacks="dev")
        assert result.returncode == 1
        diff = out.read_text()
        assert "head/dev/RENDER-FAILED" in diff
        assert re.search(r"^\+.*openstack-ha:vip: '10\.99\.0\.10' is invalid", diff, re.M)
        assert "openstack-ha:vip" in result.stderr
    finally:
        git(repo, "worktree", "remove", "--force", str(branch))


def test_bad_arguments_are_refused(repo, tmp_path):
    usage = subprocess.run([str(repo / "tools" / "render_diff.sh"), "HEAD"], cwd=repo,
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    missing = render_diff(repo, "no-such-revision", "HEAD", tmp_path / "y")
    assert missing.returncode != 0 and not (tmp_path / "y").exists()


# ---- the workflow file -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict, job: str) -> dict[str, dict]:
    return {s.get("name", s.get("uses")): s for s in workflow["jobs"][job]["steps"]}


def script(step: dict) -> str:
    """A run block with GitHub's ${{ }} expressions replaced by a plain word."""
    return re.sub(r"\$\{\{[^}]*\}\}", "expr", step["run"])


def run_step(step: dict, tmp_path: Path, env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """Runs the step as GitHub does (bash -eo pipefail); returns (GITHUB_OUTPUT, summary)."""
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("")
    summary.write_text("")
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                             script(step)], cwd=cwd, capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output),
                                 "GITHUB_STEP_SUMMARY": str(summary), **env})
    assert result.returncode == 0, result.stderr
    return output.read_text(), summary.read_text() + result.stdout


def test_the_workflow_runs_on_pull_requests_with_the_whole_history(workflow):
    # YAML 1.1 reads the key `on` as True.
    assert "pull_request" in workflow[True]
    review = steps(workflow, "test-and-render-diff")
    assert review["actions/checkout@v4"]["with"]["fetch-depth"] == 0
    diff_step = review["Render diff (base -> head)"]
    assert "tools/render_diff.sh \"$BASE_SHA\" \"$HEAD_SHA\" render.diff" in diff_step["run"]
    assert diff_step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert review["Upload the render diff"]["with"]["path"] == "render.diff"
    assert "make test" in review["Tests"]["run"]
    assert "pulumi preview --diff" in steps(workflow, "preview")[
        "pulumi preview --diff (with the guardrail policies)"]["run"]
    assert (ROOT / f"Pulumi.{workflow['env']['PREVIEW_STACK']}.yaml").is_file()


def test_every_run_block_passes_bash_and_shellcheck(workflow, tmp_path):
    for job in workflow["jobs"]:
        for name, step in steps(workflow, job).items():
            if "run" not in step:
                continue
            path = tmp_path / f"{job}-{len(list(tmp_path.iterdir()))}.sh"
            path.write_text("#!/bin/bash\n" + script(step))
            for check in (["bash", "-n", str(path)], ["shellcheck", "-S", "warning", str(path)]):
                result = subprocess.run(check, capture_output=True, text=True)
                assert result.returncode == 0, f"{job}/{name}: {result.stdout}{result.stderr}"


def test_the_preview_is_skipped_with_a_clear_message_without_a_backend(workflow, tmp_path):
    gate = steps(workflow, "preview")["Backend and credentials present?"]
    env = {"PREVIEW_STACK": "dev", "PULUMI_BACKEND_URL": "", "PULUMI_ACCESS_TOKEN": "",
           "PULUMI_CONFIG_PASSPHRASE": ""}
    output, summary = run_step(gate, tmp_path, env, ROOT)
    assert output == "run=false\n"
    assert "pulumi preview skipped for stack dev" in summary
    assert "PULUMI_BACKEND_URL" in summary and "PULUMI_CONFIG_PASSPHRASE" in summary


def test_the_preview_runs_with_a_backend_and_credentials(workflow, tmp_path):
    gate = steps(workflow, "preview")["Backend and credentials present?"]
    env = {"PREVIEW_STACK": "dev", "PULUMI_BACKEND_URL": "s3://state/openstack-ha",
           "PULUMI_ACCESS_TOKEN": "", "PULUMI_CONFIG_PASSPHRASE": "passphrase"}
    assert run_step(gate, tmp_path, env, ROOT)[0] == "run=true\n"
    env["PREVIEW_STACK"] = "nosuchstack"
    output, summary = run_step(gate, tmp_path, env, ROOT)
    assert output == "run=false\n" and "Pulumi.nosuchstack.yaml" in summary


def test_the_job_summary_lists_the_changed_files(workflow, repo, tmp_path):
    out = repo / "render.diff"
    assert render_diff(repo, "HEAD~1", "HEAD", out, stacks="dev").returncode == 0
    step = steps(workflow, "test-and-render-diff")["Render diff in the job summary"]
    env = {"BASE_SHA": git(repo, "rev-parse", "HEAD~1").strip(),
           "HEAD_SHA": git(repo, "rev-parse", "HEAD").strip()}
    try:
        summary = run_step(step, tmp_path, env, repo)[1]
    finally:
        out.unlink()
    assert f"## Rendered artifacts {env['BASE_SHA'][:12]} -> {env['HEAD_SHA'][:12]}" in summary
    assert "- `dev/cluster-layout/create.sh`" in summary and "```diff" in summary
    empty = run_step(step, tmp_path, env, ROOT / "policy")[1]
    assert "No render diff was produced" in empty


def test_the_script_passes_shellcheck():
    result = subprocess.run(["shellcheck", str(ROOT / "tools" / "render_diff.sh")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
