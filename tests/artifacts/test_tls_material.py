"""The TLS material a node receives, checked with openssl: a real chain with the expected names."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.tls import certificate_names
from manifest_schema import Manifest
from tests.artifacts.test_haproxy_config import split_blocks
from tests.conftest import stack_config
from tools import render


def openssl(*argv: str) -> str:
    result = subprocess.run(["openssl", *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered_material(tmp_path_factory, **config) -> tuple[render.Graph, dict[str, Path]]:
    """ctl1's TLS install stdin from the rendered prod stack, one file per block, and the CA its
    trust step installs (`ca`)."""
    graph = render.run_program(stack_config("prod", **config), "prod")
    out = tmp_path_factory.mktemp("prod")
    render.write(graph, out)
    manifest = Manifest.load(out)
    step = manifest.resource("ctl1-tls-install")
    blocks = tmp_path_factory.mktemp("blocks")
    files = split_blocks((out / step.files["stdin"]).read_text(), blocks)
    files["ca"] = out / manifest.resource("ctl1-tls-trust").files["stdin"]
    return graph, files


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> tuple[render.Graph, dict[str, Path]]:
    return rendered_material(tmp_path_factory)


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


def test_during_a_ca_change_both_generations_verify_against_the_nodes_two_ca_file(
        material, tmp_path_factory, tmp_path):
    """What a node trusts between its trust step and its prune: the new CA, then the old."""
    graph, files = material
    rotated, new_files = rendered_material(tmp_path_factory,
                                           tls={"enabled": True, "caGeneration": 2})
    both = tmp_path / "both.pem"
    both.write_text(new_files["ca"].read_text() + files["ca"].read_text())
    for generation, found in ((1, certificates(graph, files)),
                              (2, certificates(rotated, new_files))):
        for name, cert in found.items():
            result = openssl("verify", "-CAfile", str(both), "-purpose", "sslserver", str(cert))
            assert result.strip().endswith("OK"), (generation, name)


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
