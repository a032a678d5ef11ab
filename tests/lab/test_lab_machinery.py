"""The lab's hypervisor-side artifacts, checked without booting anything (part of `make test`).

The lab must hand the stack's own files to libvirt unchanged: the cloud-init seed verbatim; for
VMs a domain XML that the stack's XSLT turns into exactly one shareable, uncached raw disk; for
containers a domain XML libvirt's own schema accepts, with the shared disk at the stack's path.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tty
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

import settings as stack_settings
from bench import interrupted
from bench import maintenance as maintenance_bench
from lab import (checks, consoles, containers, drill, evidence, hypervisor, openstack, session,
                 tempest, vms)
from lab.hypervisor import STATE_DIR
from manifest_schema import Manifest, Network, Node
from tools import render, replay

LAB = Path(__file__).resolve().parents[2] / "lab"


@pytest.fixture(scope="module")
def lab_stack(rendered):
    out = rendered("lab")
    return out, Manifest.load(out)


def transformed_domain(out: Path, manifest: Manifest, node: Node, tmp_path: Path) -> ET.Element:
    """The XML the lab defines for `node`: its own domain XML through the stack's XSLT (the
    control nodes')."""
    shared = STATE_DIR / manifest.resource("shared-disk-volume").inputs["name"]
    plain = tmp_path / f"{node.name}-plain.xml"
    plain.write_text(vms.domain_xml(node, Path("/image"), tmp_path / "root.qcow2",
                                    tmp_path / "seed.iso", shared if node.shared_disk else None,
                                    manifest.network.name, f"osha-{node.name}"))
    files = manifest.resource(f"{node.name}-domain").files
    if "xslt" not in files:  # a compute node: no shared disk, nothing to transform
        return ET.fromstring(plain.read_text())
    xslt = out / files["xslt"]
    return ET.fromstring(subprocess.run(["xsltproc", str(xslt), str(plain)], capture_output=True,
                                        text=True, check=True).stdout)


def test_only_the_shared_disk_becomes_shareable_and_uncached(lab_stack, tmp_path):
    out, manifest = lab_stack
    for node in manifest.nodes:
        domain = transformed_domain(out, manifest, node, tmp_path)
        disks = domain.findall("devices/disk[@device='disk']")
        shared = [d for d in disks if d.find("shareable") is not None]
        assert len(shared) == (1 if node.shared_disk else 0), node.name
        for disk in shared:
            assert disk.find("driver").attrib["type"] == "raw"
            assert disk.find("driver").attrib["cache"] == "none"
        root = next(d for d in disks if d.find("target").attrib["dev"] == "vda")
        assert root.find("shareable") is None
        assert root.find("driver").attrib["type"] == "qcow2"


def test_domains_are_software_emulated_with_a_small_translation_cache(lab_stack, tmp_path):
    out, manifest = lab_stack
    domain = transformed_domain(out, manifest, manifest.nodes[0], tmp_path)
    assert domain.attrib["type"] == "qemu"
    assert domain.find("cpu") is None
    assert domain.find("features/tcg/tb-cache").text == str(vms.TB_CACHE_MIB)


def test_domains_attach_to_the_stacks_network_with_the_rendered_mac(lab_stack, tmp_path):
    out, manifest = lab_stack
    for node in manifest.nodes:
        interfaces = transformed_domain(out, manifest, node, tmp_path).findall("devices/interface")
        assert [(i.find("source").attrib["network"], i.find("mac").attrib["address"])
                for i in interfaces] == [(manifest.network.name, node.mac)]


SHARED_DEVICE = "/dev/disk/by-id/virtio-osha-shared"
REPOSITORY = Path("/var/cache/openstack-ha-lab/repo-0123456789abcdef")


def container_domain(manifest: Manifest, node: Node) -> str:
    return containers.domain_xml(node, Path("/var/lib/osha-lab/nodes") / node.name / "root",
                                 manifest.network.name, f"osha-{node.name}",
                                 SHARED_DEVICE if node.shared_disk else None, REPOSITORY)


def passes_libvirts_schema(path: Path, schema: str) -> None:
    subprocess.run(["virt-xml-validate", str(path), schema], check=True, capture_output=True)


needs_libvirts_schema = pytest.mark.skipif(not shutil.which("virt-xml-validate"),
                                           reason="libvirt-clients is not installed")


@needs_libvirts_schema
def test_container_domains_pass_libvirts_schema(lab_stack, tmp_path):
    _, manifest = lab_stack
    for node in manifest.nodes:
        path = tmp_path / f"{node.name}.xml"
        path.write_text(container_domain(manifest, node))
        passes_libvirts_schema(path, "domain")


@needs_libvirts_schema
def test_vm_domains_pass_libvirts_schema_before_and_after_the_stacks_xslt(lab_stack, tmp_path):
    out, manifest = lab_stack
    for node in manifest.nodes:
        transformed = tmp_path / f"{node.name}.xml"
        transformed.write_bytes(ET.tostring(transformed_domain(out, manifest, node, tmp_path)))
        passes_libvirts_schema(tmp_path / f"{node.name}-plain.xml", "domain")
        passes_libvirts_schema(transformed, "domain")


@needs_libvirts_schema
def test_the_lab_network_passes_libvirts_schema(lab_stack, tmp_path):
    _, manifest = lab_stack
    path = tmp_path / "network.xml"
    path.write_text(hypervisor.network_xml(manifest.network))
    passes_libvirts_schema(path, "network")


HOSTILE = "x'<&>\"y"


def test_a_value_in_the_labs_libvirt_xml_stays_text(tmp_path):
    """Names and paths land in element text and single-quoted attributes: escaped, they can
    neither end an attribute nor open an element."""
    node = Node(name=HOSTILE, role="control", ip=HOSTILE, mac=HOSTILE, domain=HOSTILE, vcpu=1,
                memory_mib=1, disk_gib=1, hypervisor=None, shared_disk=True)
    path = tmp_path / HOSTILE
    container = ET.fromstring(containers.domain_xml(node, path, HOSTILE, HOSTILE, HOSTILE, path))
    vm = ET.fromstring(vms.domain_xml(node, path, path, path, path, HOSTILE, HOSTILE))
    for domain in (container, vm):
        assert domain.find("name").text == HOSTILE
        (interface,) = domain.findall("devices/interface")
        assert [interface.find(e).attrib[a] for e, a in
                (("source", "network"), ("mac", "address"), ("target", "dev"))] == [HOSTILE] * 3
    assert container.find("devices/hostdev/source/block").text == HOSTILE
    assert {f.find("source").attrib["dir"] for f in container.iterfind("devices/filesystem")} == \
        {str(path)}
    assert [d.find("source").attrib["file"] for d in vm.iterfind("devices/disk")] == \
        [str(path)] * 3
    assert vm.find("os/kernel").text == str(path / "vmlinuz")
    network = ET.fromstring(hypervisor.network_xml(Network(
        name=HOSTILE, domain=HOSTILE, gateway=HOSTILE, cidr="10.20.0.0/24", mode="isolated")))
    assert network.find("name").text == HOSTILE
    assert network.find("domain").attrib["name"] == network.find("ip").attrib["address"] == HOSTILE


def test_control_containers_get_the_shared_disk_at_the_stacks_device_path(lab_stack):
    _, manifest = lab_stack
    for node in manifest.nodes:
        domain = ET.fromstring(container_domain(manifest, node))
        assert domain.attrib["type"] == "lxc"
        # The wrapper that gives the container's systemd its own cgroup tree, then runs it.
        assert domain.find("os/init").text == f"/{containers.INIT_PATH}"
        blocks = [b.text for b in domain.iterfind("devices/hostdev/source/block")]
        assert blocks == ([SHARED_DEVICE] if node.shared_disk else []), node.name
        (interface,) = domain.findall("devices/interface")
        assert interface.find("mac").attrib["address"] == node.mac
        assert interface.find("source").attrib["network"] == manifest.network.name


def test_the_containers_init_runs_systemd_as_pid_1_after_moving_to_its_own_cgroup():
    script = containers.INIT.read_text().splitlines()
    assert os.access(containers.INIT, os.X_OK)
    assert 'echo $$ > "$cgroup/cgroup.procs"' in script
    # exec keeps the PID: systemd must be the container's PID 1.
    assert script[-1] == 'exec /sbin/init "$@"'


def test_every_container_mounts_the_package_repository_read_only_at_its_apt_source(lab_stack):
    """The nodes' only apt source (the rootfs's sources.list) is the repository libvirt mounts
    read-only into every container."""
    _, manifest = lab_stack
    sources = re.findall(r"^echo '(deb .*)' > \"\$root/etc/apt/sources.list\"$",
                         (LAB / "build-rootfs.sh").read_text(), re.MULTILINE)
    assert sources == [f"deb [trusted=yes] file:{containers.REPOSITORY_DIR} ./"]
    for node in manifest.nodes:
        domain = ET.fromstring(container_domain(manifest, node))
        mounts = {f.find("target").attrib["dir"]: f for f in domain.iterfind("devices/filesystem")}
        assert sorted(mounts) == ["/", containers.REPOSITORY_DIR], node.name
        repository = mounts[containers.REPOSITORY_DIR]
        assert repository.find("source").attrib["dir"] == str(REPOSITORY)
        assert repository.find("readonly") is not None
        assert mounts["/"].find("readonly") is None


def test_the_repository_holds_every_package_the_install_step_asks_for(lab_stack):
    """The lab repository's package names are exactly the union of the install step's lists
    (rendered into each node's script), for control and compute nodes alike."""
    out, manifest = lab_stack
    asked = set()
    for node in manifest.nodes:
        script = (out / manifest.resource(f"{node.name}-openstack-install").files["create"]
                  ).read_text()
        (line,) = re.findall(r"^packages=\((.*)\)$", script, re.MULTILINE)
        asked |= set(line.split())
    settings = stack_settings.parse(render.stack_config("lab"), "lab")
    assert asked and sorted(asked) == session.repository_packages(settings)
    assert {"nova-compute", "keystone", "neutron-linuxbridge-agent"} <= asked


def test_drill_table_gives_median_and_max_and_counts_missing_figures():
    def failover(victim, vip, fault="destroy"):
        seconds = {c: 10.0 for c in drill.COLUMNS}
        seconds["vip"] = vip
        return drill.Failover(layout="clone", fault=fault, victim=victim, seconds=seconds,
                              rows_acknowledged=5, rows_found=4, max_fs_mounts=1,
                              max_vip_holders=1)
    results = [failover("ctl1", 4.0), failover("ctl2", 8.0), failover("ctl3", None),
               failover("ctl1", 3.0, fault="cut")]
    (destroy, cut) = drill.summary(results)
    assert destroy["vip"] == ((6.0, 8.0), 1)
    assert cut["vip"] == ((3.0, 3.0), 0)
    assert destroy["rows"] == "12/15"  # found/acknowledged
    text = drill.table(results)
    assert "6.0/8.0 (1 never)" in text and "3.0/3.0" in text
    # The table's column is "rows acked/found".
    destroy_row = text.splitlines()[2]
    assert "15/12" in destroy_row and "12/15" not in destroy_row


def test_every_apis_outage_is_tabled_per_fault_kind_with_its_failed_calls():
    def failover(outage, failed, vip_holder=True):
        return drill.Failover(layout="clone", fault="kill", victim="ctl1", vip_holder=vip_holder,
                              apis={"keystone": {"outage": outage, "failed": failed}},
                              server_active=20.0, servers_stuck=1 if outage is None else 0)
    results = [failover(4.0, 3), failover(8.0, 5), failover(None, 40), failover(0.0, 0, False)]
    header, lines = drill.api_rows(results)
    assert header[:5] == ["profile", "layout", "fault", "n", "keystone"]
    (holder, bystander) = lines
    assert holder[2:5] == ["kill", "3", "6.0/8.0 (1 never) [48]"]
    assert holder[-1] == "1"
    assert bystander[2:5] == ["kill (no VIP)", "1", "0.0/0.0 [0]"]
    assert "API outage" in drill.table(results)


def test_drill_chart_draws_a_png(tmp_path):
    seconds = {c: float(i) for i, c in enumerate(drill.COLUMNS, start=1)}
    results = [drill.Failover(layout=layout, fault=fault, victim="ctl1", seconds=seconds)
               for layout in ("clone", "group") for fault in ("destroy", "kill", "cut")]
    drill.chart(results, tmp_path / "chart.png", "test machine")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not shutil.which("genisoimage") or not shutil.which("isoinfo"),
                    reason="genisoimage (with isoinfo) is not installed")
def test_seed_iso_holds_the_rendered_cloud_init_files_verbatim(lab_stack, tmp_path):
    out, manifest = lab_stack
    node = manifest.nodes[0]
    seed = manifest.resource(f"{node.name}-cloudinit")
    iso = vms.seed_iso(out, seed, tmp_path / "seed.iso")
    volume = subprocess.run(["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True,
                            check=True).stdout
    assert "Volume id: cidata" in volume
    for role, path in seed.files.items():
        carried = subprocess.run(["isoinfo", "-R", "-i", str(iso), "-x", f"/{role}"],
                                 capture_output=True, text=True, check=True).stdout
        assert carried == (out / path).read_text(), role


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
@pytest.mark.parametrize("script", sorted(p.name for p in LAB.glob("*.sh")))
def test_lab_scripts_pass_shellcheck(script):
    # -x from the repository's top: the build scripts source lab/chroot.sh.
    subprocess.run(["shellcheck", "-x", str(LAB / script)], check=True, cwd=LAB.parent)


class StandInKeystone(http.server.BaseHTTPRequestHandler):
    """Answers the probe's three calls as keystone does, for one user and password."""

    TOKEN = "gAAAA-stand-in"
    CATALOGUE = {"endpoints": [{"id": "e1", "service_id": "s1", "interface": "public",
                                "region_id": "RegionOne", "url": "http://vip:5000/v3"}],
                 "services": [{"id": "s1", "type": "identity", "name": "keystone"}]}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        password = body["auth"]["identity"]["password"]["user"]["password"]
        ok = self.path == "/v3/auth/tokens" and password == "right"
        self.send_response(201 if ok else 401)
        if ok:
            self.send_header("X-Subject-Token", self.TOKEN)
        self.end_headers()

    def do_GET(self):
        name = self.path.removeprefix("/v3/")
        ok = self.headers.get("X-Auth-Token") == self.TOKEN and name in self.CATALOGUE
        self.send_response(200 if ok else 401)
        self.end_headers()
        if ok:
            self.wfile.write(json.dumps({name: self.CATALOGUE[name]}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in_keystone():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInKeystone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


@pytest.mark.parametrize("password, listed", [("right", True), ("wrong", False)])
def test_keystone_probe_gets_a_token_then_the_catalogue(stand_in_keystone, password, listed):
    result = subprocess.run([sys.executable, str(LAB / "probe.py"), "keystone", "127.0.0.1",
                             str(stand_in_keystone), "admin", "admin", password],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode == 0) == listed, result.stdout
    if listed:
        assert json.loads(result.stdout) == StandInKeystone.CATALOGUE
    else:
        assert "HTTP 401" in result.stdout


def test_drill_report_round_trips_and_renders_as_markdown(tmp_path):
    seconds = {c: 2.0 for c in drill.COLUMNS}
    results = [drill.Failover(layout="group", fault="kill", victim="ctl2", seconds=seconds,
                              rows_acknowledged=3, rows_found=3, max_fs_mounts=1,
                              max_vip_holders=1)]
    drill.report(results, tmp_path / "report.json", "test machine")
    machine, loaded = drill.load(tmp_path / "report.json")
    assert machine == "test machine" and loaded == results
    header, separator, row = drill.markdown(loaded).splitlines()
    assert header.startswith("| profile | layout | fault | n | membership |")
    assert row.startswith("| default | group | kill | 1 | 2.0/2.0 |")


# crm_mon --output-as=xml (Pacemaker 2.1) of three nodes online, the group on ctl1, and a start of
# glance-api that failed on ctl3.
CRM_MON_FAILED_START = """<pacemaker-result api-version="2.20" request="crm_mon -1 --output-as=xml">
  <summary><current_dc present="true" name="ctl1" with_quorum="true"/></summary>
  <nodes>
    <node name="ctl1" online="true"/><node name="ctl2" online="true"/><node name="ctl3" online="true"/>
  </nodes>
  <resources>
    <group id="osha-core" number_resources="2">
      <resource id="vip" role="Started"><node name="ctl1"/></resource>
      <resource id="glance-api" role="Started"><node name="ctl1"/></resource>
    </group>
  </resources>
  <failures>
    <failure op_key="glance-api_start_0" node="ctl3" exitstatus="error" exitreason="" exitcode="1"
             call="71" status="complete" task="start"/>
  </failures>
  <status code="0" message="OK"/>
</pacemaker-result>
"""


class FakeNodes:
    """A substrate whose nodes answer `exec` with canned text; `down` nodes are not running."""

    def __init__(self, down=()):
        self.down = set(down)
        self.commands: list[tuple[str, str]] = []

    def is_running(self, node):
        return node.name not in self.down

    def exec(self, node, command, timeout=30):
        self.commands.append((node.name, command))
        return subprocess.CompletedProcess([], 0, f"{command.split()[0]} output of {node.name}\n", "")


def fake_node(name: str, role: str) -> Node:
    return Node(name=name, role=role, ip="10.0.0.1", mac="52:54:00:00:00:01", domain=name,
                vcpu=1, memory_mib=1024, disk_gib=10, hypervisor=None,
                shared_disk=role == "control")


class FakeLab:
    def __init__(self, tmp_path, crm_mon=CRM_MON_FAILED_START, down=()):
        self.manifest = SimpleNamespace(nodes=[fake_node(f"ctl{i}", "control") for i in (1, 2, 3)]
                                        + [fake_node("cmp1", "compute")])
        self.controls = self.manifest.nodes[:3]
        self.nodes = FakeNodes(down)
        self.crm_mon = crm_mon
        self.artifacts = tmp_path / "artifacts"
        self.log_dir = self.artifacts / "replay-logs"

    def ssh(self, node, command, **_kwargs):
        if command.startswith("crm_mon"):
            return subprocess.CompletedProcess([], 0, self.crm_mon, "")
        return subprocess.CompletedProcess([], 0, "", "")


def test_an_unsettled_cluster_error_names_the_failed_action_and_carries_the_clusters_view(tmp_path):
    lab = FakeLab(tmp_path)
    with pytest.raises(RuntimeError) as raised:
        drill.wait_settled(lab, seconds=0.5)
    message = str(raised.value)
    assert "failed actions: ['glance-api_start_0']" in message
    for command in evidence.CLUSTER_VIEW.values():
        assert f"({command}) on ctl1 ---\n{command.split()[0]} output of ctl1" in message


def test_evidence_holds_the_clusters_view_with_scores_and_every_running_nodes_logs(tmp_path):
    lab = FakeLab(tmp_path, down=("ctl2",))
    saved = evidence.save(lab, "test_failover_round[clone].call")
    assert saved.parent == lab.artifacts
    cluster = (saved / "cluster.txt").read_text()
    assert all(command in cluster for command in
               [*evidence.CLUSTER_VIEW.values(), *evidence.SCORES.values()])
    for name in ("ctl1", "ctl3", "cmp1"):
        for log, command in evidence.NODE_LOGS.items():
            assert (saved / f"{name}.{log}").read_text().startswith(command.split()[0]), name
    assert (saved / "ctl2.down").exists() and not (saved / "ctl2.journal.txt").exists()
    # Read through a running node's own way in, never the one that is down.
    assert all(name != "ctl2" for name, _ in lab.nodes.commands)


def test_the_first_converge_is_killed_where_chosen_or_where_the_seed_draws(lab_stack, monkeypatch):
    """Without OSHA_LAB_INTERRUPT_SEED, the test's own point; with it, a step another one waits
    for, at most 120 s in, the same for the same seed."""
    rendered = replay.Rendered.load(lab_stack[0])
    steps, _ = session.steps_of(rendered)
    chosen = replay.Interruption("ctl1-openstack-install", 60)
    monkeypatch.delenv("OSHA_LAB_INTERRUPT_SEED", raising=False)
    assert session.interruption_from_environment(rendered, steps, chosen) == chosen
    drawn = set()
    for seed in range(20):
        monkeypatch.setenv("OSHA_LAB_INTERRUPT_SEED", str(seed))
        point = session.interruption_from_environment(rendered, steps, chosen)
        assert point == session.interruption_from_environment(rendered, steps, chosen)
        assert any(point.step in rendered.dependencies(s) for s in steps), point
        assert 0 <= point.seconds <= 120
        drawn.add(point.step)
    assert len(drawn) > 5


def test_the_bench_kills_within_the_drawn_steps_time_in_the_clean_run(lab_stack):
    """The bench's points: a 0-120 s point fell after a short late step and the whole run had
    ended, so nothing was killed. Given the clean run's step times, each point is within its
    step's."""
    rendered = replay.Rendered.load(lab_stack[0])
    steps, _ = session.steps_of(rendered)
    durations = {step: 1.0 + index % 7 for index, step in enumerate(steps)}
    for seed in range(40):
        point = session.drawn_interruption(rendered, steps, seed, durations)
        assert point == session.drawn_interruption(rendered, steps, seed, durations)
        assert 0 <= point.seconds <= durations[point.step], point


def test_the_interrupted_bench_report_round_trips_and_tables_each_run(tmp_path):
    runs = [interrupted.Run(None, second_run_seconds=400.0),
            interrupted.Run(3, "ctl1-openstack-install", 61.4,
                            ["ctl1-openstack-install", "ctl2-openstack-install"], 300.2),
            interrupted.Run(4, "cluster-setup", 12.0, ["cluster-setup"], 250.0,
                            ["keystone lists twice: {'user': ['nova']}"]),
            interrupted.Run(5, "ctl1-sysctl", 0.0, ["ctl1-sysctl"], None,
                            ["ctl1-openstack-install create exited 100"])]
    path = tmp_path / "interrupted.json"
    interrupted.save(runs, path, "a machine")
    assert interrupted.load(path) == runs
    assert [r.converged for r in runs] == [True, True, False, False]
    assert interrupted.markdown(runs).splitlines()[2:] == [
        "| - | clean run (the reference) | - | 400.0 s | converged |",
        "| 3 | ctl1-openstack-install +61 s | ctl1-openstack-install, ctl2-openstack-install "
        "| 300.2 s | converged |",
        "| 4 | cluster-setup +12 s | cluster-setup | 250.0 s "
        "| keystone lists twice: {'user': ['nova']} |",
        # A second run that did not finish has no duration.
        "| 5 | ctl1-sysctl +0 s | ctl1-sysctl | - | ctl1-openstack-install create exited 100 |"]


class Answering:
    """A lab whose every node answers any command with `text`."""

    def __init__(self, text: str):
        self.text = text

    def ssh(self, node, command, **_kwargs):
        return subprocess.CompletedProcess([], 0, self.text, "")


def test_cib_configurations_are_equal_but_for_the_time_of_the_last_cleanup():
    cib = ('<configuration>\n  <crm_config><cluster_property_set id="opts">'
           '<nvpair id="opts-stonith" name="stonith-enabled" value="true"/>{}'
           '</cluster_property_set></crm_config>\n  <resources/></configuration>')
    node = {"name": "ctl1"}
    cleaned = checks.cib_configuration(Answering(cib.format(
        '<nvpair id="opts-refresh" name="last-lrm-refresh" value="1765000000"/>')), node)
    assert cleaned == checks.cib_configuration(Answering(cib.format("").replace("\n  ", "")), node)
    assert cleaned != checks.cib_configuration(
        Answering(cib.format("").replace('"true"', '"false"')), node)


def test_the_maintenance_bench_tables_each_scenarios_failed_calls_per_api(tmp_path):
    apis = {"keystone": {"calls": 100, "failed": 3}, "nova-api": {"calls": 90, "failed": 0}}
    done = [drill.PlannedWork("maintenance-holder", "clone", 120.5, apis, 10, 10,
                              {"median": 0.8, "saturated_share": 0.3,
                               "median_during_timeouts": 0.99}),
            drill.PlannedWork("maintenance", "clone", 70.1, {"keystone": apis["keystone"]}, 5, 5)]
    path = tmp_path / "maintenance.json"
    drill.report_planned(done, path, "a machine")
    assert maintenance_bench.markdown(json.loads(path.read_text())["scenarios"]).splitlines() == [
        "| scenario | seconds | keystone | nova-api | host CPU busy (median, during timeouts) |",
        "|---|---|---|---|---|",
        "| maintenance-holder | 120.5 | 3/100 | 0/90 | 0.8, 0.99 |",
        "| maintenance | 70.1 | 3/100 | - | None, None |"]


def test_a_console_is_read_from_before_its_reader_opened_it_to_its_close(tmp_path):
    """lab/consoles.py: what the boot wrote before the reader opened the pty is kept (a flush
    would drop it), everything after too, and the reader ends when the pty's other end closes,
    as a container's controller closes it when the container stops."""
    controller_end, console_end = os.openpty()
    tty.setraw(console_end)  # as libvirt opens it
    log = tmp_path / "lab-ctl1.log"
    reader = threading.Thread(target=consoles.read_console, args=(os.ttyname(console_end), log),
                              daemon=True)
    try:
        os.write(controller_end, b"Welcome to Debian\r\n")
        reader.start()
        os.write(controller_end, b"Rebooting.\r\n")
        deadline = time.monotonic() + 30
        while b"Rebooting." not in (log.read_bytes() if log.exists() else b""):
            assert time.monotonic() < deadline, "the reader did not copy what was written"
            time.sleep(0.05)
    finally:
        os.close(console_end)
        os.close(controller_end)
    reader.join(30)
    assert not reader.is_alive()
    assert log.read_bytes() == b"Welcome to Debian\r\nRebooting.\r\n"


TEMPEST_OUTPUT = """\
{0} tempest.api.compute.flavors.test_flavors.FlavorsV2TestJSON.test_get_flavor [0.412s] ... ok
{1} tempest.api.network.test_extensions.ExtensionsTestJSON.test_list_show_extensions [1.204s] ... FAILED
{0} tempest.api.volume.test_volumes_get.VolumesGetTest.test_volume_create_get_update_delete [9.1s] ... ok

======
Totals
======
Ran: 3 tests in 12.0000 sec.
 - Passed: 2
 - Skipped: 0
 - Expected Fail: 0
 - Unexpected Success: 0
 - Failed: 1
"""


def test_tempest_totals_and_failed_tests_are_read_from_its_output():
    outcome = tempest.parse(TEMPEST_OUTPUT)
    assert outcome.counts == {"passed": 2, "skipped": 0, "expected_fail": 0,
                              "unexpected_success": 0, "failed": 1}
    assert outcome.failed == [
        "tempest.api.network.test_extensions.ExtensionsTestJSON.test_list_show_extensions"]
    assert outcome.ran == 3
    assert tempest.parse("Traceback: tempest did not start").counts == {}


class _ListingCloud(openstack.Cloud):
    """A cloud whose client answers from a table: (first words of the call) -> stdout."""

    answers = {("flavor", "show", openstack.FLAVOR): "f1\n",
               ("flavor", "show", tempest.ALT_FLAVOR): "f2\n",
               ("image", "show", "lab-kept"): "i1\n",
               ("extension", "list"): "router\nsecurity-group\n"}

    def run(self, *args, timeout=0):
        return next(v for k, v in self.answers.items() if args[:len(k)] == k)


def test_tempest_is_configured_from_the_stack(tmp_path):
    cloud = _ListingCloud("openstack.osha-lab.internal", "pw", "RegionOne",
                          {"nova-api": True, "glance-api": True, "neutron": True,
                           "horizon": True, "cinder": True}, Path("/ca.pem"), volumes=True)
    conf = tempest.tempest_conf(cloud, tmp_path, "lab-kept")
    assert conf["identity"]["uri_v3"] == "https://openstack.osha-lab.internal:5000/v3"
    assert conf["identity"]["ca_certificates_file"] == "/ca.pem"
    assert (conf["compute"]["image_ref"], conf["compute"]["flavor_ref"],
            conf["compute"]["flavor_ref_alt"]) == ("i1", "f1", "f2")
    assert conf["network-feature-enabled"]["api_extensions"] == "router,security-group"
    assert conf["service_available"]["cinder"] == "true"
    assert conf["service_available"]["swift"] == "false"
    assert conf["auth"]["admin_password"] == "pw"
    assert conf["dashboard"]["dashboard_url"] == "https://openstack.osha-lab.internal/"
    without_volumes = _ListingCloud("openstack.osha-lab.internal", "pw", "RegionOne",
                                    {"cinder": True}, None)
    assert tempest.tempest_conf(without_volumes, tmp_path, "lab-kept")[
        "service_available"]["cinder"] == "false"


class _CinderCloud(openstack.Cloud):
    """A client whose cinder makes every volume and snapshot available at once and deletes
    them at once; it records each call's kind and verb."""

    def __init__(self):
        super().__init__("openstack.osha-lab.internal", "pw", "RegionOne", {"cinder": True},
                         None, volumes=True)
        self.calls: list[str] = []
        self.present: set[str] = set()

    def run(self, *args, timeout=0):
        words = 3 if args[:2] == ("volume", "snapshot") else 2
        call, rest = " ".join(args[:words]), args[words:]
        self.calls.append(call)
        if call.endswith("create"):
            self.present.add(rest[rest.index("-f") - 1])
        elif call.endswith("delete"):
            self.present.difference_update(rest)
        elif call.endswith("list"):
            name = rest[rest.index("--name") + 1]
            return json.dumps([{"Status": "available"}] if name in self.present else [])
        return ""


def _volume_check_calls(lifecycle: bool) -> tuple[list[str], set[str]]:
    """The calls of the volume check a drill runs after its fault, and what it left behind."""
    cloud = _CinderCloud()
    checks = openstack.CloudChecks(cloud, schedulers=3)
    checks.kept = ("lab-kept", b"")
    checks.checks(after_fault=True, lifecycle=lifecycle)["volume"]()
    return [c for c in cloud.calls if not c.endswith("list")], cloud.present


def test_a_drills_volume_check_makes_and_deletes_one_volume_and_the_first_check_the_lifecycle():
    calls, left = _volume_check_calls(lifecycle=False)
    assert calls == ["volume create", "volume delete"] and not left
    calls, left = _volume_check_calls(lifecycle=True)
    assert calls.count("volume create") == 3 and "volume set" in calls, calls
    assert calls.count("volume snapshot create") == 1 and not left, (calls, left)
