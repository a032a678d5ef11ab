"""The lab's nodes on real (emulated) VMs: booted from the stack's own seeds and shared-disk XSLT.

Slow (a cached image, then several minutes of boot under software emulation): `make lab`.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import pytest

from catalogue import endpoints
from components.endpoints import load_rules
from lab import checks, drill, keystone

pytestmark = pytest.mark.lab

# The stack's XSLT gives the shared disk this serial; udev names it after it on every node.
SHARED_DEVICE = "/dev/disk/by-id/virtio-osha-shared"
BLOCK = 4096


def test_every_node_passes_the_stacks_ready_gate(lab):
    """SSH with the rendered admin key, cloud-init done, hostname and static address as rendered."""
    gates = [f"{node['name']}-ready" for node in lab.manifest["nodes"]]
    results = lab.replayer().run("create", gates)
    assert sorted(r.name for r in results if r.returncode == 0) == sorted(gates)


def test_cloud_init_finished_without_errors(lab):
    for node in lab.manifest["nodes"]:
        status = lab.ssh(node, "cloud-init status")
        assert "status: done" in status.stdout, (node["name"], status.stdout, status.stderr)


def test_control_nodes_see_one_shared_disk(lab):
    """A block written on one control node reads back on the others (cache='none', shareable)."""
    writer, *readers = lab.controls
    marker = f"osha-lab-{secrets.token_hex(8)}"
    # The last block: far from where the stack's mkfs puts its superblock, and zeroed again below.
    last = f"$(( $(blockdev --getsize64 {SHARED_DEVICE}) / {BLOCK} - 1 ))"
    write = (f"dd if=/dev/stdin of={SHARED_DEVICE} bs={BLOCK} count=1 seek={last} "
             "oflag=direct iflag=fullblock conv=notrunc status=none")
    read = f"dd if={SHARED_DEVICE} bs={BLOCK} count=1 skip={last} iflag=direct status=none"
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
    singletons = ["nova-consoleauth", "neutron-l2-agent"]
    for resource in ["shared-fs", "mysql", "broker", *singletons]:
        assert view.running[resource] == [holder], (resource, view.running)
    assert sorted(view.running["haproxy"]) == sorted(view.online)


def test_shared_filesystem_mounted_on_exactly_one_node(lab):
    view = checks.cluster_view(lab, lab.controls[0])
    assert checks.mounted_on(lab, lab.mysql_datadir) == view.running["shared-fs"]


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


def test_failover_drill(lab, tmp_path):
    """bench/failover.py's drill, once (bench/failover.py kills every node, in both layouts)."""
    (result,) = [drill.run_drill(lab, lab.settings.cluster.haproxy_layout, lab.holder_of_vip(),
                                 first_row=1000)]
    drill.report([result], tmp_path / "failover.json")
    assert result.survivor != result.victim, result
    assert result.rows_found == result.rows_written, result
    assert result.max_mounts <= 1, result
    assert all(result.seconds[m] is not None for m in drill.MILESTONES), result
    assert result.rejoin_seconds is not None, result


def all_steps(lab) -> list[str]:
    cluster_steps, repoint_steps = lab.steps()
    return cluster_steps + repoint_steps


def test_rerun_without_changes_keeps_the_cib_and_restarts_nothing(lab):
    first = lab.controls[0]
    units = "haproxy mariadb rabbitmq-server apache2"
    epoch = lambda: lab.ssh(first, "cibadmin --query | head -1 | grep -o 'epoch=\"[0-9]*\"'").stdout  # noqa: E731
    starts = lambda: {n["name"]: lab.ssh(n, f"systemctl show -p ActiveEnterTimestampMonotonic {units}").stdout for n in lab.controls}  # noqa: E731
    before_epoch, before_starts = epoch(), starts()
    lab.replayer().run("update", all_steps(lab))
    assert epoch() == before_epoch
    assert starts() == before_starts


def test_delete_scripts_unwind_the_cluster(lab):
    lab.replayer().run("delete", all_steps(lab))
    for node in lab.controls:
        assert lab.ssh(node, "test -e /etc/corosync/corosync.conf").returncode != 0, node["name"]
        assert lab.ssh(node, f"ip -o addr | grep -w {lab.manifest['vip']}").returncode != 0
