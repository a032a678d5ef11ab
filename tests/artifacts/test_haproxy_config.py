"""The rendered haproxy.cfg through the real `haproxy -c`, both layouts, TLS on and off."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from manifest_schema import Manifest
from tests.conftest import stack_config
from tools import render

PLAIN = {"tls": {"enabled": False}}
VARIANTS = {
    "clone-tls": ("dev", {}),
    "clone-plain": ("dev", PLAIN),
    "group-plain": ("dev", {"cluster": {"haproxyLayout": "group", "broker": "qpid"},
                            "openstack": {"install": "none"}, **PLAIN}),
    "prod-tls": ("prod", {}),
    "group-tls": ("prod", {"cluster": {"haproxyLayout": "group", "broker": "rabbitmq"}}),
    "debian-tls": ("debian", {}),
}


def split_blocks(stdin: str, into: Path) -> dict[str, Path]:
    """The TLS install step's stdin, split the way the step splits it (`### <name>` headers)."""
    files: dict[str, Path] = {}
    current = None
    for line in stdin.splitlines(keepends=True):
        if line.startswith("### "):
            current = into / line.split()[1]
            files[current.name] = current
            current.write_text("")
        elif current is not None:
            with current.open("a") as handle:
                handle.write(line)
    return files


def rendered_config(variant: str, tmp_path: Path) -> tuple[Path, Manifest]:
    """ctl1's copied haproxy.cfg, its certificate paths pointed at the files its stdin carries."""
    stack, overrides = VARIANTS[variant]
    out = tmp_path / "out"
    render.write(render.run_program(stack_config(stack, **overrides), stack), out)
    manifest = Manifest.load(out)
    config = (out / manifest.resource("ctl1-haproxy-config").files["source"]).read_text()
    if any(r.name == "ctl1-tls-install" for r in manifest.resources):
        stdin = (out / manifest.resource("ctl1-tls-install").files["stdin"]).read_text()
        certs = tmp_path / "certs"
        certs.mkdir()
        split_blocks(stdin, certs)
        config = re.sub(r"/etc/haproxy/certs/([a-z0-9-]+)\.pem", rf"{certs}/\1-bundle", config)
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    return path, manifest


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_haproxy_accepts_the_config(variant, tmp_path):
    path, _ = rendered_config(variant, tmp_path)
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout
    assert ("ssl crt" in path.read_text()) == variant.endswith("-tls")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_backend_has_every_control_node_with_a_check(variant, tmp_path):
    path, manifest = rendered_config(variant, tmp_path)
    controls = [n for n in manifest.nodes if n.role == "control"]
    sections = re.split(r"^(?=listen )", path.read_text(), flags=re.M)[1:]
    backends = [s for s in sections if not s.startswith("listen stats")]
    assert len(backends) >= 10
    for section in backends:
        servers = re.findall(r"^\s+server (\S+) (\S+):(\d+)(.*)$", section, flags=re.M)
        assert [(name, ip) for name, ip, _, _ in servers] == \
            [(n.name, n.ip) for n in controls], section
        assert all(" check" in rest for _, _, _, rest in servers), section
        assert len({port for _, _, port, _ in servers}) == 1
