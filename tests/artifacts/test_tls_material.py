"""The TLS material a node receives, checked with openssl: a real chain with the expected names."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.tls import certificate_names
from tests.artifacts.test_haproxy_config import split_blocks
from tests.conftest import stack_config
from tools import render


def openssl(*argv: str) -> str:
    result = subprocess.run(["openssl", *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> tuple[render.Graph, dict[str, Path]]:
    """ctl1's TLS install stdin from the rendered prod stack, one file per block."""
    graph = render.run_program(stack_config("prod"), "prod")
    out = tmp_path_factory.mktemp("prod")
    render.write(graph, out)
    manifest = json.loads((out / "manifest.json").read_text())
    (step,) = [r for r in manifest["resources"] if r["name"] == "ctl1-tls-install"]
    blocks = tmp_path_factory.mktemp("blocks")
    return graph, split_blocks((out / step["files"]["stdin"]).read_text(), blocks)


def certificates(graph: render.Graph, files: dict[str, Path]) -> dict[str, Path]:
    """Certificate file of each service: HAProxy bundles hold certificate then key."""
    return {name: files.get(f"{name}-cert") or files[f"{name}-bundle"]
            for name in certificate_names(graph.settings)}


def test_every_certificate_chains_to_the_stack_ca(material):
    graph, files = material
    assert "CA:TRUE" in openssl("x509", "-in", str(files["ca"]), "-noout", "-text")
    for name, cert in certificates(graph, files).items():
        result = openssl("verify", "-CAfile", str(files["ca"]), "-purpose", "sslserver", str(cert))
        assert result.strip().endswith("OK"), name


def test_certificates_name_the_vip_and_every_control_node(material):
    graph, files = material
    s = graph.settings
    for name, cert in certificates(graph, files).items():
        sans = openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
        assert f"DNS:{s.vip_fqdn}" in sans and f"IP Address:{s.vip}" in sans, name
        for node in s.controls:
            assert f"DNS:{node.name}.{s.network.domain}" in sans and f"IP Address:{node.ip}" in sans


def test_each_key_matches_its_certificate_and_is_p256(material):
    graph, files = material
    for name, cert in certificates(graph, files).items():
        key = files.get(f"{name}-key") or files[f"{name}-bundle"]
        assert "prime256v1" in openssl("pkey", "-in", str(key), "-noout", "-text")
        assert openssl("pkey", "-in", str(key), "-pubout") == \
            openssl("x509", "-in", str(cert), "-noout", "-pubkey"), name
