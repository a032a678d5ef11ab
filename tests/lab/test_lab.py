"""The lab's nodes on real (emulated) VMs: booted from the stack's own seeds and shared-disk XSLT.

Slow (a cached image, then several minutes of boot under software emulation): `make lab`.
"""
from __future__ import annotations

import secrets

import pytest

from lab import checks, drill
from tools import replay

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


# The stack's steps that need an OpenStack install the lab does not have (keystone is bootstrapped
# by a later lab step): everything else runs exactly as rendered.
NEEDS_OPENSTACK = ("-repoint", "keystone-endpoints")


def stack_steps(lab) -> list[str]:
    steps = replay.Rendered.load(lab.rendered)
    return [n for n in steps.order() if not n.endswith(NEEDS_OPENSTACK)]


def test_the_stacks_steps_converge_the_cluster(lab):
    results = lab.replayer().run("create", stack_steps(lab))
    assert {r.name for r in results} == set(stack_steps(lab))


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
    checks.ensure_mysql_user(lab, drill.holder_of_vip(lab))
    written = checks.mysql(vip, "INSERT INTO writes (id) VALUES (0);")
    assert written.returncode == 0, written.stderr
    assert checks.mysql(vip, "SELECT COUNT(*) FROM writes WHERE id = 0;").stdout.strip() == "1"


def test_failover_drill(lab, tmp_path):
    """bench/failover.py's drill, once per node, in the running layout."""
    results = [drill.run_drill(lab, "clone", node, first_row=1000 * (i + 1))
               for i, node in enumerate(lab.controls)]
    drill.report(results, tmp_path / "failover.json")
    for result in results:
        assert result.survivor != result.victim, result
        assert result.rows_found == result.rows_written, result
        assert result.max_mounts <= 1, result
        assert all(result.seconds[m] is not None for m in drill.MILESTONES), result
        assert result.rejoin_seconds is not None, result


def test_rerun_without_changes_keeps_the_cib_and_restarts_nothing(lab):
    first = lab.controls[0]
    epoch = lambda: lab.ssh(first, "cibadmin --query | head -1 | grep -o 'epoch=\"[0-9]*\"'").stdout  # noqa: E731
    starts = lambda: {n["name"]: lab.ssh(n, "systemctl show -p ActiveEnterTimestampMonotonic haproxy mariadb rabbitmq-server").stdout for n in lab.controls}  # noqa: E731
    before_epoch, before_starts = epoch(), starts()
    lab.replayer().run("update", stack_steps(lab))
    assert epoch() == before_epoch
    assert starts() == before_starts


def test_delete_scripts_unwind_the_cluster(lab):
    lab.replayer().run("delete", stack_steps(lab))
    for node in lab.controls:
        assert lab.ssh(node, "test -e /etc/corosync/corosync.conf").returncode != 0, node["name"]
        assert lab.ssh(node, f"ip -o addr | grep -w {lab.manifest['vip']}").returncode != 0
