"""The rendered repoint scripts run with the real crudini on sample config files, twice.

Each node's own create script runs unchanged in its test mode (OSHA_ROOT: files under a temp
dir), followed by the node's rolling restart, as the engine runs them; systemctl and the Pacemaker
tools are stand-ins that record what would restart, and python3 stands in for the rolling
restart's HAProxy and API waits (no HAProxy at the VIP: nothing to drain; tests/artifacts/
test_drain.py drains).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from components.node import ROOT_PROLOGUE
from tests.conftest import stack_config
from tools import render

DB_PASSWORD = "NovaDbPw-7f3a"
RABBIT_PASSWORD = "RabbitPw-91c2"
OLD = "10.20.0.11"
# A seed-era broker list: both hosts collapse to the VIP.
SECOND_BROKER = f"openstack:{RABBIT_PASSWORD}@10.20.0.12:5672"

SAMPLES = {
    "/etc/nova/nova.conf": f"""[DEFAULT]
transport_url = rabbit://openstack:{RABBIT_PASSWORD}@{OLD}:5672,{SECOND_BROKER}/
qpid_hostname = {OLD}
glance_host = {OLD}
osapi_compute_listen = 0.0.0.0
[database]
connection = mysql+pymysql://nova:{DB_PASSWORD}@{OLD}/nova?charset=utf8
[api_database]
connection = mysql+pymysql://nova_api:{DB_PASSWORD}@{OLD}/nova_api
[keystone_authtoken]
www_authenticate_uri = http://{OLD}:5000
auth_url = http://{OLD}:5000
password = ServicePw-0001
[glance]
api_servers = http://{OLD}:9292
[neutron]
auth_url = http://{OLD}:5000
[vnc]
novncproxy_base_url = http://{OLD}:6080/vnc_auto.html
""",
    "/etc/neutron/neutron.conf": f"""[DEFAULT]
transport_url = rabbit://openstack:{RABBIT_PASSWORD}@{OLD}:5672/
bind_host = 0.0.0.0
[database]
connection = mysql+pymysql://neutron:{DB_PASSWORD}@{OLD}/neutron
[keystone_authtoken]
www_authenticate_uri = http://{OLD}:5000
auth_url = http://{OLD}:5000
[nova]
auth_url = http://{OLD}:5000
""",
    "/etc/glance/glance-api.conf": f"""[DEFAULT]
bind_host = 0.0.0.0
registry_host = {OLD}
[database]
connection = mysql+pymysql://glance:{DB_PASSWORD}@{OLD}/glance
[keystone_authtoken]
auth_url = http://{OLD}:5000
""",
    "/etc/cinder/cinder.conf": f"""[DEFAULT]
transport_url = rabbit://openstack:{RABBIT_PASSWORD}@{OLD}:5672/
glance_api_servers = http://{OLD}:9292
[database]
connection = mysql+pymysql://cinder:{DB_PASSWORD}@{OLD}/cinder
""",
    "/etc/keystone/keystone.conf": f"""[DEFAULT]
admin_token = AdminToken-11
[database]
connection = mysql+pymysql://keystone:{DB_PASSWORD}@{OLD}/keystone
""",
    "/etc/heat/heat.conf": f"""[DEFAULT]
heat_metadata_server_url = http://{OLD}:8000
transport_url = rabbit://openstack:{RABBIT_PASSWORD}@{OLD}:5672/
[database]
connection = mysql+pymysql://heat:{DB_PASSWORD}@{OLD}/heat
[clients_keystone]
auth_uri = http://{OLD}:5000
[heat_api]
bind_host = 0.0.0.0
""",
}
COMPUTE_FILES = ("/etc/nova/nova.conf", "/etc/neutron/neutron.conf")
# The seed's way: the image carries the services, the stack repoints them.
IMAGE_CARRIES = {"install": "none"}

STUBS = {
    # `systemctl cat` finds every unit, each runs; try-restart is recorded.
    "systemctl": '#!/bin/bash\ncase $1 in cat|is-active) exit 0;; esac\n'
                 'echo "systemctl $*" >> "$OSHA_TEST_LOG"\n',
    "python3": "#!/bin/bash\nexit 0\n",
    "crm_node": "#!/bin/bash\necho ctl1\n",
    "crm_resource": '#!/bin/bash\nif [ "$1" = --locate ]; then\n'
                    '  echo "resource $3 is running on: ctl1"; exit 0\nfi\n'
                    'echo "crm_resource $*" >> "$OSHA_TEST_LOG"\n',
}


class Node:
    """One node's file tree and its rendered repoint scripts."""

    def __init__(self, graph: render.Graph, name: str, base: Path, files: tuple[str, ...]):
        step = graph.named(f"{name}-repoint")
        self.settings = graph.settings
        self.create = step.inputs["create"].replace(ROOT_PROLOGUE, "")
        self.delete = step.inputs["delete"].replace(ROOT_PROLOGUE, "")
        self.rolling_restart = graph.named(f"{name}-rolling-restart").inputs["create"].replace(
            ROOT_PROLOGUE, "")
        self.root = base / name
        self.log = base / f"{name}.log"
        bin_dir = base / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool, text in STUBS.items():
            (bin_dir / tool).write_text(text)
            (bin_dir / tool).chmod(0o755)
        self.env = {**os.environ, "OSHA_ROOT": str(self.root), "OSHA_TEST_LOG": str(self.log),
                    "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        for path in files:
            target = self.root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(SAMPLES[path])

    def run(self, script: str) -> tuple[str, list[str]]:
        """`script`, then (after a create) the node's rolling restart: their output, and what
        they would have restarted."""
        self.log.write_text("")
        output = ""
        for text in (script, self.rolling_restart) if script == self.create else (script,):
            result = subprocess.run(["bash", "-c", text], env=self.env, capture_output=True,
                                    text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            output += result.stdout
        return output, self.log.read_text().splitlines()

    def get(self, path: str, section: str, key: str) -> str:
        return subprocess.run(["crudini", "--get", str(self.root / path.lstrip("/")), section, key],
                              capture_output=True, text=True, check=True).stdout.strip()

    def digest(self) -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.root.rglob("*.conf"))}


@pytest.fixture(scope="module")
def graphs() -> dict[str, render.Graph]:
    return {stack: render.run_program(stack_config(stack), stack) for stack in ("lab", "prod")}


@pytest.mark.parametrize("stack", ["lab", "prod"])
def test_control_node_files_point_at_the_vip_and_keep_their_passwords(graphs, stack, tmp_path):
    graph = graphs[stack]
    node = Node(graph, "ctl2", tmp_path, tuple(SAMPLES))
    s = node.settings
    host = s.vip_fqdn
    node.run(node.create)
    tls = s.tls_enabled
    scheme, port = ("https", 5671) if tls else ("http", 5672)
    query = "&ssl_ca=/etc/openstack-ha/tls/ca.pem" if tls else ""
    assert node.get("/etc/nova/nova.conf", "database", "connection") == \
        f"mysql+pymysql://nova:{DB_PASSWORD}@{host}/nova?charset=utf8{query}"
    assert node.get("/etc/nova/nova.conf", "DEFAULT", "transport_url") == \
        f"rabbit://openstack:{RABBIT_PASSWORD}@{host}:{port}/"
    assert node.get("/etc/nova/nova.conf", "keystone_authtoken", "www_authenticate_uri") == \
        f"{scheme}://{host}:5000"
    assert node.get("/etc/nova/nova.conf", "keystone_authtoken", "password") == "ServicePw-0001"
    assert node.get("/etc/nova/nova.conf", "glance", "api_servers") == f"{scheme}://{host}:9292"
    assert node.get("/etc/nova/nova.conf", "DEFAULT", "glance_host") == host
    assert node.get("/etc/nova/nova.conf", "vnc", "novncproxy_base_url") == \
        f"{scheme}://{host}:6080/vnc_auto.html"
    # The APIs leave the VIP's ports to HAProxy.
    ctl2 = str(s.controls[1].ip)
    assert node.get("/etc/nova/nova.conf", "DEFAULT", "osapi_compute_listen") == ctl2
    assert node.get("/etc/glance/glance-api.conf", "DEFAULT", "bind_host") == ctl2
    assert node.get("/etc/heat/heat.conf", "heat_api", "bind_host") == ctl2
    assert node.get("/etc/neutron/neutron.conf", "database", "connection").startswith(
        f"mysql+pymysql://neutron:{DB_PASSWORD}@{host}/neutron")
    assert node.get("/etc/keystone/keystone.conf", "DEFAULT", "admin_token") == "AdminToken-11"
    assert node.get("/etc/heat/heat.conf", "DEFAULT", "heat_metadata_server_url") == \
        f"{scheme}://{host}:8000"
    # The broker follows the settings: no qpid key is touched with RabbitMQ.
    assert node.get("/etc/nova/nova.conf", "DEFAULT", "qpid_hostname") == OLD
    for path in SAMPLES:
        text = (node.root / path.lstrip("/")).read_text()
        assert OLD not in text.replace("qpid_hostname = " + OLD, ""), path


@pytest.mark.parametrize("stack", ["lab", "prod"])
def test_second_run_changes_nothing_and_restarts_nothing(graphs, stack, tmp_path):
    node = Node(graphs[stack], "ctl1", tmp_path, tuple(SAMPLES))
    _, first_log = node.run(node.create)
    assert any("try-restart" in line for line in first_log)
    after_first = node.digest()
    output, second_log = node.run(node.create)
    assert node.digest() == after_first
    assert second_log == []
    assert [line.strip() for line in output.splitlines()] == ["changed:", "nothing to restart"]


def test_only_the_readers_of_a_changed_file_restart(graphs, tmp_path):
    graph = graphs["lab"]
    node = Node(graph, "ctl1", tmp_path, tuple(SAMPLES))
    node.run(node.create)
    nova = node.root / "etc/nova/nova.conf"
    subprocess.run(["crudini", "--set", str(nova), "glance", "api_servers", f"http://{OLD}:9292"],
                   check=True)
    _, log = node.run(node.create)
    restarted = {line.split()[2] for line in log if "try-restart" in line}
    assert restarted and all(unit.startswith("nova-") for unit in restarted)
    assert "nova-api.service" in restarted and not any("glance" in u for u in restarted)
    # nova-consoleauth is a Pacemaker resource on releases that have it: never via systemctl.
    managed = {x.unit for x in graph.settings.cluster.singletons}
    assert not {u.removesuffix(".service") for u in restarted} & managed


def test_pacemaker_singleton_restarts_through_pacemaker(tmp_path):
    graph = render.run_program(stack_config("dev", release="stein", openstack=IMAGE_CARRIES),
                               "dev")
    (consoleauth,) = [x for x in graph.settings.cluster.singletons if x.name == "nova-consoleauth"]
    node = Node(graph, "ctl1", tmp_path, ("/etc/nova/nova.conf",))
    _, log = node.run(node.create)
    assert "crm_resource --restart --resource nova-consoleauth --timeout=300s" in log
    assert not any(consoleauth.unit in line for line in log)
    restarted = [u for line in log if line.startswith("systemctl try-restart")
                 for u in line.split()[2:]]
    assert "openstack-nova-api.service" in restarted, log


def test_seed_era_qpid_keys_are_repointed_where_present(tmp_path):
    graph = render.run_program(stack_config("dev", cluster={"broker": "qpid"},
                                            openstack=IMAGE_CARRIES), "dev")
    node = Node(graph, "ctl1", tmp_path, ("/etc/nova/nova.conf",))
    node.run(node.create)
    assert node.get("/etc/nova/nova.conf", "DEFAULT", "qpid_hostname") == graph.settings.vip_fqdn
    # A RabbitMQ URL is not the qpid broker's: left alone.
    assert OLD in node.get("/etc/nova/nova.conf", "DEFAULT", "transport_url")
    # Legacy keys that are absent stay absent.
    text = (node.root / "etc/nova/nova.conf").read_text()
    assert "qpid_port" not in text and "rabbit_host" not in text


def test_compute_node_repoint_twice(graphs, tmp_path):
    graph = graphs["prod"]
    node = Node(graph, "cmp1", tmp_path, COMPUTE_FILES)
    node.run(node.create)
    host = graph.settings.vip_fqdn
    assert node.get("/etc/nova/nova.conf", "glance", "api_servers") == f"https://{host}:9292"
    assert node.get("/etc/nova/nova.conf", "DEFAULT", "osapi_compute_listen") == "0.0.0.0"
    digest = node.digest()
    _, log = node.run(node.create)
    assert node.digest() == digest and log == []


def test_delete_puts_the_original_files_back(graphs, tmp_path):
    node = Node(graphs["lab"], "ctl1", tmp_path, tuple(SAMPLES))
    node.run(node.create)
    _, log = node.run(node.delete)
    for path, text in SAMPLES.items():
        assert (node.root / path.lstrip("/")).read_text() == text
    assert log
