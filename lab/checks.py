"""What a converged lab must show: the cluster's own view, and the services answering at the VIP."""
from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

from components.haproxy import STATS_PORT
from components.shared_disk import DEVICE
from lab.hypervisor import in_namespace
from manifest_schema import Node
from tools import crm_mon
from tools.crm_mon import ClusterView

PROBE = Path(__file__).resolve().parent / "probe.py"
# The lab's MySQL user for write checks (lab-only, created by `ensure_mysql_user`).
MYSQL_USER = "osha_lab"
MYSQL_PASSWORD = "osha-lab-writes"
MYSQL_DATABASE = "osha_lab"


def cluster_view(lab, node: Node) -> ClusterView:
    """crm_mon's view from `node`."""
    result = lab.ssh(node, "crm_mon -1 --output-as=xml", timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"crm_mon on {node.name}: {result.stderr}")
    return crm_mon.parse(result.stdout)


def filesystem_signatures(lab, node: Node) -> list[str]:
    """The signatures on the shared disk as `node` reads it (`wipefs`: type and offset each)."""
    result = lab.ssh(node, f"wipefs --noheadings --output TYPE,OFFSET {DEVICE}")
    if result.returncode != 0:
        raise RuntimeError(f"wipefs on {node.name}: {result.stderr}")
    return result.stdout.split("\n")[:-1]


def cib_configuration(lab, node: Node) -> str:
    """The CIB's configuration section, canonical XML, without what differs between equal runs
    (the time of the last resource cleanup)."""
    result = lab.ssh(node, "cibadmin --query --scope configuration", timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"cibadmin on {node.name}: {result.stderr}")
    root = ET.fromstring(result.stdout)
    for parent in root.iter():
        for pair in [c for c in parent if c.get("name") == "last-lrm-refresh"]:
            parent.remove(pair)
    return ET.canonicalize(ET.tostring(root, encoding="unicode"), strip_text=True)


def mounted_on(lab, directory: str) -> list[str]:
    """Control nodes that have `directory` mounted (read through the substrate)."""
    return [node.name for node in lab.controls
            if any(line.split()[4] == directory
                   for line in (lab.nodes.mountinfo(node) or "").splitlines())]


def vip_on(lab) -> list[str]:
    """Control nodes that have the VIP configured (read through the substrate)."""
    vip = f" {lab.manifest.vip}/"
    return [node.name for node in lab.controls if vip in (lab.nodes.addresses(node) or "")]


def probe(kind: str, host: str, port: int, *rest: str,
          ca_file: Optional[Path] = None) -> tuple[bool, str]:
    """A probe from the hypervisor side of the lab network; with `ca_file`, over TLS."""
    tls = ("--ca", str(ca_file)) if ca_file else ()
    # Past the probe's own timeouts (keystone's: three calls of up to a minute).
    result = subprocess.run(in_namespace("python3", str(PROBE), *tls, kind, host, str(port),
                                         *rest),
                            capture_output=True, text=True, timeout=200)
    return result.returncode == 0, result.stdout.strip()


def haproxy_servers(lab) -> dict[str, dict[str, str]]:
    """{proxy: {server: status}} as HAProxy at the VIP reports them (its stats page)."""
    ok, answer = probe("servers", lab.manifest.vip, STATS_PORT)
    if not ok:
        raise RuntimeError(answer)
    return json.loads(answer)


def mysql(host: str, statement: str, ca_file: Optional[Path], timeout: float = 15,
          user: str = MYSQL_USER, password: str = MYSQL_PASSWORD,
          database: str = MYSQL_DATABASE) -> subprocess.CompletedProcess:
    """A statement as the lab's MySQL user (or `user`), over TCP at `host` (the VIP), from the
    lab network; with `ca_file`, over TLS with the server's certificate verified by it."""
    tls = (f"--ssl-ca={ca_file}", "--ssl-verify-server-cert") if ca_file else ("--skip-ssl",)
    return subprocess.run(
        in_namespace("mysql", f"--connect-timeout={int(timeout)}", *tls, "-h", host, "-u", user,
                     f"-p{password}", database, "-N", "-e", statement),
        capture_output=True, text=True, timeout=timeout + 10)


def ensure_mysql_user(lab, holder: Node) -> None:
    """The lab's own database and user, created through the local socket on the VIP's node."""
    sql = (f"CREATE DATABASE IF NOT EXISTS {MYSQL_DATABASE}; "
           f"CREATE USER IF NOT EXISTS '{MYSQL_USER}'@'%' IDENTIFIED BY '{MYSQL_PASSWORD}'; "
           f"GRANT ALL ON {MYSQL_DATABASE}.* TO '{MYSQL_USER}'@'%'; "
           f"CREATE TABLE IF NOT EXISTS {MYSQL_DATABASE}.writes "
           "(id INT PRIMARY KEY, written TIMESTAMP DEFAULT CURRENT_TIMESTAMP);")
    result = lab.ssh(holder, f'mysql -e "{sql}"', timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"creating the lab's MySQL user: {result.stderr}")


def served_certificate_end(host: str, port: int, ca_file: Path,
                           starttls: Optional[str] = None) -> str:
    """`notAfter=...` of the certificate served at host:port (after STARTTLS `starttls`, such as
    mysql), from the lab network, the chain verified by `ca_file`."""
    hello = subprocess.run(
        in_namespace("openssl", "s_client", "-connect", f"{host}:{port}", "-CAfile", str(ca_file),
                     "-verify_return_error", *(("-starttls", starttls) if starttls else ())),
        input="", capture_output=True, text=True, timeout=60)
    if hello.returncode != 0:
        raise RuntimeError(f"TLS at {host}:{port}: {hello.stderr.strip()[-300:]}")
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=hello.stdout,
                         capture_output=True, text=True, timeout=60, check=True)
    return end.stdout.strip()
