"""The lab: the stack's own steps on real nodes (libvirt LXC containers by default, VMs opt-in).

Converge, checks, a failover round per HAProxy layout (every fault, a different victim each),
the no-change re-run, a changed template, and the delete path with a node down. `make lab`.
"""
from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import pytest

from catalogue import endpoints
from components import templating
from components import shared_disk
from components.endpoints import load_rules
from components.fencing import KEY_FILE
from lab import checks, drill, keystone, session
from lab.substrate import FAULTS
from tools import replay

pytestmark = pytest.mark.lab

BLOCK = 4096
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "lab-round.json"


def test_every_node_passes_the_stacks_ready_gate(lab):
    """SSH with the rendered admin key, cloud-init done, hostname and static address as rendered."""
    gates = [f"{node['name']}-ready" for node in lab.manifest["nodes"]]
    results = lab.replayer().run("create", gates)
    assert sorted(r.name for r in results if r.returncode == 0) == sorted(gates)


def test_cloud_init_finished_without_errors(lab):
    for node in lab.manifest["nodes"]:
        status = lab.ssh(node, "cloud-init status --long")
        assert "status: done" in status.stdout, (node["name"], status.stdout, status.stderr)


def test_control_nodes_see_one_shared_disk(lab):
    """A block written on one control node reads back on the others, at the stack's device path."""
    device = shared_disk.DEVICE
    writer, *readers = lab.controls
    marker = f"osha-lab-{secrets.token_hex(8)}"
    # The last block: far from where the stack's mkfs puts its superblock, and zeroed again below.
    last = f"$(( $(blockdev --getsize64 {device}) / {BLOCK} - 1 ))"
    write = (f"dd if=/dev/stdin of={device} bs={BLOCK} count=1 seek={last} "
             "oflag=direct iflag=fullblock conv=notrunc status=none")
    read = f"dd if={device} bs={BLOCK} count=1 skip={last} iflag=direct status=none"
    assert lab.ssh(writer, write, stdin=marker.ljust(BLOCK, "\0")).returncode == 0
    try:
        for node in readers:
            seen = lab.ssh(node, f"{read} | tr -d '\\0'")
            assert seen.stdout == marker, (node["name"], seen.stdout, seen.stderr)
    finally:
        lab.ssh(writer, write, stdin="\0" * BLOCK)


def test_the_stacks_cluster_steps_converge_the_cluster(lab):
    cluster_steps, _ = lab.steps()
    results = lab.replayer().run("create", cluster_steps)
    assert {r.name for r in results} == set(cluster_steps)


def test_every_node_online_with_quorum_and_every_resource_started_once(lab):
    view = checks.cluster_view(lab, lab.controls[0])
    assert view.quorate and sorted(view.online) == sorted(n["name"] for n in lab.controls)
    assert not view.failed, view.failed
    (holder,) = view.running["vip"]
    singletons = [s.name for s in lab.settings.cluster.singletons]
    cloned_broker = lab.settings.cluster.broker_layout == "clone"
    for resource in ["shared-fs", "mysql", *([] if cloned_broker else ["broker"]), *singletons]:
        assert view.running[resource] == [holder], (resource, view.running)
    assert sorted(view.running["haproxy"]) == sorted(view.online)
    if cloned_broker:
        assert sorted(view.running["broker"]) == sorted(view.online)


def test_shared_filesystem_and_vip_on_exactly_the_vips_node(lab):
    view = checks.cluster_view(lab, lab.controls[0])
    assert checks.mounted_on(lab, lab.shared_dir) == view.running["shared-fs"]
    assert checks.vip_on(lab) == view.running["vip"]


def test_services_answer_at_the_vip(lab):
    vip = lab.manifest["vip"]
    assert checks.probe("http", vip, drill.STATS_PORT, "/") == (True, "200")
    assert checks.probe("amqp", vip, drill.BROKER_PORT) == (True, "amqp")
    checks.ensure_mysql_user(lab, lab.holder_of_vip())
    written = checks.mysql(vip, "INSERT INTO writes (id) VALUES (0);")
    assert written.returncode == 0, written.stderr
    assert checks.mysql(vip, "SELECT COUNT(*) FROM writes WHERE id = 0;").stdout.strip() == "1"


def endpoint_urls(catalogue: dict) -> dict[tuple[str, str, str], list[str]]:
    """(service type, interface, region) -> the URLs keystone lists for it."""
    types = {s["id"]: s["type"] for s in catalogue["services"]}
    urls: dict[tuple[str, str, str], list[str]] = {}
    for e in catalogue["endpoints"]:
        urls.setdefault((types[e["service_id"]], e["interface"], e["region_id"]), []).append(e["url"])
    return urls


BOOTSTRAPPED_TYPES = {"identity", "image", "compute", "network"}


def test_keystone_installed_at_node_addresses_as_a_non_ha_install_leaves_it(lab):
    lab.install_openstack()
    holder = lab.holder_of_vip()
    listed = keystone.catalogue(holder["ip"])
    assert listed is not None, "no token from keystone at its own node"
    urls = endpoint_urls(listed)
    assert {key[0] for key in urls} == BOOTSTRAPPED_TYPES
    assert all(url.startswith(f"http://{holder['ip']}:") for u in urls.values() for url in u)


def test_the_stacks_repoint_moves_every_endpoint_to_the_vip(lab):
    _, repoint_steps = lab.steps()
    results = lab.replayer().run("create", repoint_steps)
    assert {r.name for r in results} == set(repoint_steps)
    listed = keystone.catalogue(lab.manifest["vip"])
    assert listed is not None, "no token through the VIP"
    urls = endpoint_urls(listed)
    region = lab.settings.keystone.region
    wanted = {(t, i, region): [u] for t, i, u in
              endpoints(lab.settings.services, lab.settings.vip_fqdn, lab.settings.tls_enabled)
              if t in BOOTSTRAPPED_TYPES}
    # Exactly one endpoint per service and interface, at the VIP's name: none at a node address.
    assert urls == wanted


def test_a_second_keystone_run_keeps_every_endpoint(lab):
    before = keystone.catalogue(lab.manifest["vip"])
    (result,) = lab.replayer().run("update", ["keystone-endpoints"])
    assert result.stdout.strip().endswith("0 endpoint(s) re-created"), result.stdout
    after = keystone.catalogue(lab.manifest["vip"])
    ids = lambda listed: sorted((e["id"], e["url"]) for e in listed["endpoints"])  # noqa: E731
    assert ids(after) == ids(before)


def test_keystone_conf_names_the_vip(lab):
    """The real keystone.conf on every node: database and identity URI at the VIP's name."""
    fqdn = lab.settings.vip_fqdn
    for node in lab.controls:
        connection = keystone.config_value(lab, node, "database", "connection")
        assert urlsplit(connection).hostname == fqdn, (node["name"], connection.split("@")[-1])
        assert keystone.config_value(lab, node, "DEFAULT", "public_endpoint") == \
            f"http://{fqdn}:{keystone.PORT}", node["name"]
        # No other repointed file on the node still names a node address.
        present = [r["path"] for r in load_rules()
                   if lab.ssh(node, f"test -f {r['path']}").returncode == 0]
        addresses = "|".join(n["ip"].replace(".", "\\.") for n in lab.controls)
        left = lab.ssh(node, f"grep -EHn '({addresses})([^0-9]|$)' {' '.join(present)}")
        assert left.returncode == 1, (node["name"], left.stdout)


def all_steps(lab) -> list[str]:
    cluster_steps, repoint_steps = lab.steps()
    return cluster_steps + repoint_steps


def cib_epoch(lab) -> str:
    return lab.ssh(lab.controls[0], "cibadmin --query | head -1 | grep -o 'epoch=\"[0-9]*\"'").stdout


def node_state(lab) -> dict[str, str]:
    """Per node: its boot id (a fenced node has a new one) and when its services last started."""
    units = "haproxy mariadb rabbitmq-server apache2 corosync pacemaker"
    return {n["name"]: lab.ssh(n, "cat /proc/sys/kernel/random/boot_id; "
                                  f"systemctl show -p ActiveEnterTimestampMonotonic {units}").stdout
            for n in lab.controls}


def test_rerun_without_changes_keeps_the_cib_restarts_nothing_and_fences_nobody(lab):
    drill.wait_settled(lab)
    before_epoch, before = cib_epoch(lab), node_state(lab)
    lab.replayer().run("update", all_steps(lab))
    assert cib_epoch(lab) == before_epoch
    assert node_state(lab) == before


def test_a_changed_template_reruns_only_the_steps_it_renders(lab, tmp_path):
    """One template edited: only the steps rendered from it differ (and they run cleanly)."""
    changed_templates = tmp_path / "templates"
    shutil.copytree(templating.TEMPLATES, changed_templates)
    sysctl = changed_templates / "cluster-sysctl.sh.j2"
    sysctl.write_text(sysctl.read_text() + "# edited\n")
    shell = templating.environment_for(sysctl.name)
    loader = shell.loader
    shell.loader = jinja2.FileSystemLoader(str(changed_templates))
    try:
        rendered = session.render_stack(tmp_path / "rendered", session.profile_from_environment(),
                                        lab.settings.cluster.haproxy_layout)
    finally:
        shell.loader = loader
    changed = replay.changed_steps(replay.Rendered.load(lab.rendered), replay.Rendered.load(rendered))
    assert sorted(changed) == sorted(f"{n['name']}-sysctl" for n in lab.controls)
    before_epoch = cib_epoch(lab)
    lab.update_to(rendered)
    assert cib_epoch(lab) == before_epoch


@pytest.fixture(scope="module")
def drills():
    """Every drill of this session; the table is printed and written once they have all run."""
    results: list[drill.Failover] = []
    yield results
    if results:
        drill.report(results, RESULTS)


def drill_round(lab, drills: list) -> None:
    """Every fault once, each on another victim (the VIP's node when it has not been one)."""
    layout = lab.settings.cluster.haproxy_layout
    pending = list(lab.controls)
    for fault in FAULTS:
        drill.wait_settled(lab)
        holder = lab.holder_of_vip()
        victim = holder if holder in pending else pending[0]
        pending.remove(victim)
        result = drill.run_drill(lab, layout, victim, fault, session.profile_from_environment())
        drills.append(result)
        assert result.survivor != result.victim, result
        assert result.rows_found == result.rows_acknowledged > 0, result
        assert result.max_fs_mounts == 1, result
        assert result.max_vip_holders == 1, result
        assert all(result.seconds[c] is not None for c in drill.COLUMNS), result


def test_failover_round_clone_layout(lab, drills):
    assert lab.settings.cluster.haproxy_layout == "clone"
    drill_round(lab, drills)


def test_switching_to_the_group_layout_runs_only_the_changed_steps(lab, tmp_path):
    drill.wait_settled(lab)
    rendered = session.render_stack(tmp_path / "rendered", session.profile_from_environment(),
                                    "group")
    changed = replay.changed_steps(replay.Rendered.load(lab.rendered), replay.Rendered.load(rendered))
    assert "cluster-layout" in changed and "cluster-setup" not in changed, changed
    results = lab.update_to(rendered)
    assert sorted(r.name for r in results) == sorted(changed)
    view = checks.cluster_view(lab, lab.controls[0])
    assert "haproxy" in view.running and len(view.on("haproxy")) == 1, view.running
    assert view.on("haproxy") == view.on("vip")


def test_failover_round_group_layout(lab, drills):
    drill_round(lab, drills)


def test_delete_leaves_nothing_with_a_node_down(lab):
    """`pulumi destroy` with one control node powered off: the cluster-wide steps still unwind
    the cluster on the others. (The down node's own steps cannot run: its SSH does not answer.)"""
    drill.wait_settled(lab)
    down = lab.controls[-1]
    lab.nodes.stop(down)
    rendered = replay.Rendered.load(lab.rendered)
    reachable = [n for n in all_steps(lab)
                 if (rendered.steps[n].get("host") or {}).get("host") != down["ip"]]
    lab.replayer().run("delete", reachable)
    for node in lab.controls:
        if node is down:
            continue
        assert lab.ssh(node, "test -e /etc/corosync/corosync.conf").returncode != 0, node["name"]
        assert lab.ssh(node, "systemctl is-active --quiet pacemaker").returncode != 0, node["name"]
        assert lab.ssh(node, f"test -e {KEY_FILE}").returncode != 0, node["name"]
    assert checks.vip_on(lab) == []
    authorized = Path("/run/osha-lab/authorized_keys").read_text()
    assert "osha-fence:" not in authorized
