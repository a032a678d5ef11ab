"""The trust steps of a CA change, run for real on files under tmp_path: the first adds the stack
CA beside what the node trusted, once each however often it runs, the prune leaves the stack CA
alone, and the system store is rebuilt only when the file changed."""
from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from components.templating import render


@pytest.fixture(scope="module")
def cas(tmp_path_factory) -> dict[str, str]:
    """Two self-signed CA certificates' PEM text, `old` and `new`."""
    work = tmp_path_factory.mktemp("cas")
    pems = {}
    for name in ("old", "new"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                        "-keyout", str(work / f"{name}.key"), "-out", str(work / f"{name}.pem")],
                       check=True, capture_output=True)
        pems[name] = (work / f"{name}.pem").read_text()
    return pems


def split(text: str) -> list[str]:
    return ["-----BEGIN CERTIFICATE-----" + block
            for block in text.split("-----BEGIN CERTIFICATE-----")[1:]]


class Node:
    """A node's CA file and trust anchor under `root`, and the trust steps run against them."""

    def __init__(self, root: Path):
        self.root = root
        self.ca_file, self.anchor = root / "tls" / "ca.pem", root / "anchors" / "stack.crt"
        # update-ca-certificates stands in as a recorder of its calls.
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "update-ca-certificates").write_text(
            f"#!/bin/sh\necho called >> {root / 'updates'}\n")
        (bin_dir / "update-ca-certificates").chmod(0o755)
        self.path = f"{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin"

    def run(self, ca: str, prune: bool) -> str:
        script = render("tls-trust.sh.j2", settings=NS(image=NS(os_family="debian"),
                                                       cluster=NS(broker="rabbitmq")),
                        role="compute", prune=prune, ca_file=str(self.ca_file),
                        trust_anchor=str(self.anchor))
        result = subprocess.run(["bash", "-c", script], input=ca, capture_output=True, text=True,
                                env={"PATH": self.path})
        assert result.returncode == 0, result.stderr
        return result.stdout

    def trusted(self) -> list[str]:
        """The CA file's certificates; the system store's anchors hold the same, one each."""
        blocks = split(self.ca_file.read_text())
        anchors = [self.anchor] + [self.anchor.with_name(f"stack-held-{i}.crt")
                                   for i in range(1, len(blocks))]
        assert sorted(self.anchor.parent.iterdir()) == sorted(anchors)
        assert [a.read_text() for a in anchors] == blocks
        assert all(oct(f.stat().st_mode & 0o777) == "0o644" for f in [self.ca_file, *anchors])
        return blocks

    def updates(self) -> int:
        path = self.root / "updates"
        return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_first_install_trusts_the_stack_ca_alone(tmp_path, cas):
    node = Node(tmp_path)
    node.run(cas["old"], prune=False)
    assert node.trusted() == [cas["old"]]
    assert node.updates() == 1


def test_a_new_ca_is_trusted_beside_the_old_once_however_often_the_step_runs(tmp_path, cas):
    node = Node(tmp_path)
    node.run(cas["old"], prune=False)
    node.run(cas["new"], prune=False)
    assert node.trusted() == [cas["new"], cas["old"]]
    # A re-run (a killed update run again) changes nothing and rebuilds no store.
    assert "changed: false" in node.run(cas["new"], prune=False)
    assert node.trusted() == [cas["new"], cas["old"]]
    assert node.updates() == 2


def test_the_prune_leaves_the_stack_ca_alone_and_is_idempotent(tmp_path, cas):
    node = Node(tmp_path)
    node.run(cas["old"], prune=False)
    node.run(cas["new"], prune=False)
    node.run(cas["new"], prune=True)
    assert node.trusted() == [cas["new"]]
    assert "changed: false" in node.run(cas["new"], prune=True)
    assert node.updates() == 3
