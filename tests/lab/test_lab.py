"""The lab: the stack's own steps on real nodes (libvirt LXC containers by default, VMs opt-in).

Converge (OpenStack installed, bootstrapped and started by the stack), checks (the cluster's
view, the real `openstack` client at the VIP), a failover round per HAProxy layout (every fault,
a different victim each, the client's checks timed from the fault), the no-change re-run, a
changed template, and the delete path with a node down. `make lab`.
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import jinja2
import pytest

import catalogue
from components import cluster_units, templating
from components import shared_disk
from components.endpoints import BROKER_PORTS, load_rules
from components.fencing import KEY_FILE
from components.openstack_config import node_plan
from components.tls import CA_FILE, HAPROXY_CERT_DIR, TLS_DIR
from lab import checks, drill, evidence, maintenance, openstack, session, tempest
from lab.substrate import FAULTS
from manifest_schema import Manifest
from tools import render, replay

pytestmark = pytest.mark.lab

BLOCK = 4096
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "lab-round.json"
PLANNED_RESULTS = RESULTS.with_name("lab-planned.json")
MAINTENANCE_RESULTS = RESULTS.with_name("lab-maintenance.json")
RENEWAL_RESULTS = RESULTS.with_name("lab-renewal.json")
CA_CHANGE_RESULTS = RESULTS.with_name("lab-ca-change.json")
TEMPEST_RESULTS = RESULTS.with_name("lab-tempest.json")


def test_every_node_passes_the_stacks_ready_gate(lab):
    """SSH with the rendered admin key, cloud-init done, hostname and static address as rendered."""
    gates = [f"{node.name}-ready" for node in lab.manifest.nodes]
    results = lab.replayer().run("create", gates)
    assert sorted(r.name for r in results if r.returncode == 0) == sorted(gates)


def test_cloud_init_finished_without_errors(lab):
    for node in lab.manifest.nodes:
        status = lab.ssh(node, "cloud-init status --long")
        assert "status: done" in status.stdout, (node.name, status.stdout, status.stderr)


def test_no_unit_failed_to_enter_its_cgroup_and_each_container_has_its_own_tree(lab):
    """Containers whose systemds shared the root of the name=systemd hierarchy removed each
    other's unit cgroups while booting: a unit failed with status=219/CGROUP, once the one that
    configures the node's address."""
    for node in lab.manifest.nodes:
        # [P]: the journal also logs this command itself (sudo), which must not match.
        failed = lab.ssh(node, "journalctl -b -q --no-pager | grep -E 'Failed at step CGROU[P]' "
                               "|| true")
        assert failed.returncode == 0 and failed.stdout == "", (node.name, failed.stdout,
                                                                failed.stderr)
        if lab.nodes.name == "containers":
            init = lab.ssh(node, "grep -E '^[0-9]+:name=systemd:' /proc/1/cgroup")
            assert init.stdout.split(":")[-1].strip() == f"/{node.domain}/init.scope", (
                node.name, init.stdout, init.stderr)


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
            assert seen.stdout == marker, (node.name, seen.stdout, seen.stderr)
    finally:
        lab.ssh(writer, write, stdin="\0" * BLOCK)


@pytest.fixture(scope="module")
def cloud(lab):
    """The real client's checks at the VIP (every control node runs a cinder scheduler)."""
    return openstack.CloudChecks(openstack.Cloud.of(lab), schedulers=len(lab.controls))


def test_the_stacks_cluster_steps_converge_the_cluster_after_a_killed_run(lab):
    """Every step but the repoint: the cluster, then OpenStack's install, bootstrap and start. A
    first run is killed part-way (as a `pulumi up` killed by its operator or a lost session), at
    a chosen point (`session.interruption_from_environment`); the second run converges, which
    every check after this one verifies."""
    rendered = replay.Rendered.load(lab.rendered)
    cluster_steps, _ = session.steps_of(rendered)
    # By default a minute into the first control node's package install: every control node's
    # install and the cluster's setup are under way then.
    default = replay.Interruption(f"{lab.controls[0].name}-openstack-install", 60)
    interruption = session.interruption_from_environment(rendered, cluster_steps, default)
    with pytest.raises(replay.Interrupted) as interrupted:
        lab.replayer(interruption=interruption).run("create", cluster_steps)
    print(f"first run: {interrupted.value}", file=sys.stderr, flush=True)
    results = lab.replayer().run("create", cluster_steps)
    assert {r.name for r in results} == set(cluster_steps)
    for result in results:
        if "openstack" in result.name:
            print(f"{result.name}: {result.seconds:.0f}s", file=sys.stderr, flush=True)


def test_every_node_online_with_quorum_and_every_resource_started_once(lab):
    view = checks.cluster_view(lab, lab.controls[0])
    assert view.quorate and sorted(view.online) == sorted(n.name for n in lab.controls)
    assert not view.failed, view.failed
    (holder,) = view.running["vip"]
    singletons = [s.name for s in lab.settings.cluster.singletons]
    cloned_broker = lab.settings.cluster.broker_layout == "clone"
    managed = list(cluster_units.installed_single_node_services(lab.settings))
    for resource in ["shared-fs", "mysql", *([] if cloned_broker else ["broker"]), *managed,
                     *singletons]:
        assert view.running[resource] == [holder], (resource, view.running)
    assert sorted(view.running["haproxy"]) == sorted(view.online)
    if cloned_broker:
        assert sorted(view.running["broker"]) == sorted(view.online)
    # cinder-volume, outside the group: once, anywhere.
    for resource in cluster_units.volume_service(lab.settings):
        assert len(view.running[resource]) == 1, (resource, view.running)


def test_ceph_has_every_monitor_in_quorum_and_every_osd_up_and_in(lab):
    """blockStorage.backend ceph: a monitor and an OSD per control node, all serving."""
    assert lab.settings.block_storage.backend == "ceph", "the lab stack runs its own Ceph"
    shown = lab.ssh(lab.controls[0], "ceph status --format json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    names = sorted(n.name for n in lab.controls)
    assert sorted(status["quorum_names"]) == names, status["quorum_names"]
    osds = status["osdmap"]
    assert osds["num_osds"] == osds["num_up_osds"] == osds["num_in_osds"] == len(names), osds


def test_shared_filesystem_and_vip_on_exactly_the_vips_node(lab):
    view = checks.cluster_view(lab, lab.controls[0])
    assert checks.mounted_on(lab, lab.shared_dir) == view.running["shared-fs"]
    assert checks.vip_on(lab) == view.running["vip"]


def test_services_answer_at_the_vip(lab):
    vip = lab.manifest.vip
    assert checks.probe("http", vip, drill.STATS_PORT, "/") == (True, "200")
    assert checks.probe("amqp", vip, drill.broker_port(lab), ca_file=lab.ca_file) == \
        (True, "amqp")
    checks.ensure_mysql_user(lab, lab.holder_of_vip())
    written = checks.mysql(vip, "INSERT INTO writes (id) VALUES (0);", lab.ca_file)
    assert written.returncode == 0, written.stderr
    counted = checks.mysql(vip, "SELECT COUNT(*) FROM writes WHERE id = 0;", lab.ca_file)
    assert counted.stdout.strip() == "1"


def test_every_api_mysql_and_the_broker_speak_only_tls_verified_by_the_stacks_ca(lab):
    """The seed's "Securing Services": at the VIP's name every public API completes a TLS (1.2
    or later) handshake verified by the stack's CA and answers over it, and refuses plain text
    (Horizon's plain port redirects); MySQL refuses an OpenStack service's plain login and takes
    its TLS one; the broker speaks AMQP on its TLS port only."""
    assert lab.settings.tls_enabled and lab.ca_file, "the lab stack runs with TLS on"
    fqdn, vip = lab.settings.vip_fqdn, lab.manifest.vip
    for service in catalogue.enabled(lab.settings.services):
        if not catalogue.uses_tls(service, True):
            continue
        port = service.tls_port or service.port
        answered, status = checks.probe("http", fqdn, port, "/", ca_file=lab.ca_file)
        assert answered and status.isdigit(), f"{service.name} over TLS at {fqdn}:{port}: {status}"
        plain, status = checks.probe("http", fqdn, service.port, "/")
        assert not plain or status == "301", \
            f"{service.name} answered plain HTTP at {fqdn}:{service.port}: {status}"
    password = (lab.rendered / "secrets" / "openstack-db-keystone").read_text().strip()
    as_keystone = dict(user="keystone", password=password, database="keystone")
    # The same credentials: MariaDB answers a plain login under require_secure_transport with
    # "access denied".
    tls_login = checks.mysql(vip, "SHOW STATUS LIKE 'Ssl_version';", lab.ca_file, **as_keystone)
    assert tls_login.returncode == 0 and "TLSv1." in tls_login.stdout, tls_login.stderr
    plain_login = checks.mysql(vip, "SELECT 1;", None, **as_keystone)
    assert plain_login.returncode != 0, "a plain MySQL login was let in"
    assert checks.probe("amqp", vip, BROKER_PORTS[False])[0] is False, "plain AMQP answered"
    assert checks.probe("amqp", vip, BROKER_PORTS[True], ca_file=lab.ca_file) == (True, "amqp")


def test_openstack_answers_at_the_vip(lab, cloud):
    """The real client at the VIP's name: token, catalogue, image round trip, network and subnet,
    flavor, a server ACTIVE, cinder's schedulers, heat, Horizon's login page. The compute node
    is mapped to its cell by the schedulers' periodic discovery (a minute): the server check
    retries until then."""
    started = time.monotonic()
    passed, errors = cloud.until_all_pass(started, 600)
    print(f"first pass, seconds from the start of the checks: {passed}", file=sys.stderr,
          flush=True)
    assert not errors and None not in passed.values(), errors


def test_tempest_smoke_selection_passes(lab, cloud, tmp_path):
    """A peer's test suite: Debian's Tempest, its smoke selection against the converged cloud
    with no fault injected, passes (lab/tempest.py: configuration and the excluded tests)."""
    outcome = tempest.run_smoke(cloud.cloud, tmp_path / "tempest")
    print(f"tempest smoke: {outcome.counts}; excluded: {sorted(tempest.EXCLUDED)}",
          file=sys.stderr, flush=True)
    TEMPEST_RESULTS.write_text(json.dumps({"counts": outcome.counts, "failed": outcome.failed,
                                           "excluded": tempest.EXCLUDED}, indent=2) + "\n")
    assert outcome.counts.get("passed", 0) > 0 and outcome.counts.get("failed") == 0, \
        (outcome.failed, outcome.output_tail)


def test_the_stacks_repoint_finds_nothing_to_change(lab, cloud):
    """The install already wrote what the repoint writes, the bootstrap made the endpoints:
    nothing to restart, and every control node serves (none is in maintenance)."""
    before = openstack.endpoint_ids(cloud.cloud)
    _, repoint_steps = lab.steps()
    results = lab.replayer().run("create", repoint_steps)
    assert {r.name for r in results} == set(repoint_steps)
    for result in results:
        node, _, kind = result.name.partition("-")
        if kind == "repoint":
            assert result.stdout.strip().splitlines()[-1].strip() == "changed:", result.stdout
        elif kind == "rolling-restart":
            assert result.stdout.strip() == "nothing to restart", result.stdout
        elif kind == "maintenance":
            assert result.stdout.startswith(f"{node} serves: "), result.stdout
        else:
            assert result.stdout.strip().endswith("0 endpoint(s) re-created"), result.stdout
    cloud.cloud.catalogue()
    assert openstack.endpoint_ids(cloud.cloud) == before


def test_a_second_keystone_run_keeps_every_endpoint(lab, cloud):
    before = openstack.endpoint_ids(cloud.cloud)
    (result,) = lab.replayer().run("update", ["keystone-endpoints"])
    assert result.stdout.strip().endswith("0 endpoint(s) re-created"), result.stdout
    assert openstack.endpoint_ids(cloud.cloud) == before


INI_LINE = re.compile(r"^\[ (?P<section>[^]]+) \] (?P<key>[^ =]+) = (?P<value>.*)$")


def test_the_killed_run_left_no_second_keystone_entry_and_one_filesystem(lab, cloud):
    """After the converge's killed first run: each user, service and endpoint once, and one
    filesystem signature on the shared disk (the second run found the first's)."""
    assert openstack.listed_twice(cloud.cloud) == {"user": [], "service": [], "endpoint": []}
    signatures = checks.filesystem_signatures(lab, lab.controls[0])
    assert len(signatures) == 1, signatures


def test_repointed_keys_name_the_vip_and_no_node_address(lab):
    """On every node, every key the repoint points at the VIP (in each repointed file the node
    has, read with crudini) names the VIP's name and no node's address."""
    fqdn = lab.settings.vip_fqdn
    addresses = re.compile("|".join(re.escape(n.ip) + r"(?![0-9])"
                                    for n in lab.manifest.nodes))
    rules = load_rules()
    at_vip = {(r["path"], e["section"], e["key"]) for r in rules for e in r["edits"]
              if re.search(r"\{(host|url\[|identity_admin_url)", str(e["value"]))}
    files = " ".join(sorted({r["path"] for r in rules}))
    for node in lab.manifest.nodes:
        dump = lab.ssh(node, f'for f in {files}; do if [ -f "$f" ]; then '
                             'crudini --get --format=lines "$f" | sed "s|^|$f |"; fi; done')
        assert dump.returncode == 0, dump.stderr
        checked = 0
        for line in dump.stdout.splitlines():
            path, _, rest = line.partition(" ")
            found = INI_LINE.match(rest)
            if found and (path, found["section"], found["key"]) in at_vip:
                checked += 1
                assert fqdn in found["value"], (node.name, line)
                assert not addresses.search(found["value"]), (node.name, line)
        assert checked, node.name


def all_steps(lab) -> list[str]:
    cluster_steps, repoint_steps = lab.steps()
    return cluster_steps + repoint_steps


def cib_epoch(lab) -> str:
    return lab.ssh(lab.controls[0], "cibadmin --query | head -1 | grep -o 'epoch=\"[0-9]*\"'").stdout


CLUSTER_UNITS = ("haproxy", "mariadb", "rabbitmq-server", "corosync", "pacemaker")


def node_units(lab, node: dict) -> list[str]:
    """What runs on `node`: the cluster's units (control nodes) and OpenStack's."""
    plan = node_plan(lab.settings, next(n for n in lab.settings.nodes if n.name == node.name))
    cluster = CLUSTER_UNITS if node.role == "control" else ()
    return [*cluster, *plan.run_units, *plan.cluster_units]


def node_state(lab) -> dict[str, str]:
    """Per node: its boot id (a fenced node has a new one) and when its services last started."""
    return {n.name: lab.ssh(n, "cat /proc/sys/kernel/random/boot_id; systemctl show -p "
                                  f"ActiveEnterTimestampMonotonic {' '.join(node_units(lab, n))}"
                               ).stdout
            for n in lab.manifest.nodes}


def test_rerun_without_changes_keeps_the_cib_restarts_nothing_and_fences_nobody(lab):
    drill.wait_settled(lab)
    before_epoch, before = cib_epoch(lab), node_state(lab)
    lab.replayer().run("update", all_steps(lab))
    assert cib_epoch(lab) == before_epoch
    assert node_state(lab) == before


def test_a_node_taken_out_for_maintenance_and_rebooted_costs_no_refused_call(lab, cloud, tmp_path):
    """`maintenance: [node]` for a node that holds neither the VIP nor the core group, through the
    update path: drained and in standby, rebooted by its operator, then back once the setting no
    longer lists it. The prober calls every API throughout."""
    drill.wait_settled(lab)
    holder = lab.holder_of_vip()
    node = next(n for n in lab.controls if n.name != holder.name)
    planned, outputs = maintenance.rebooted_in_maintenance(lab, cloud, node, tmp_path / "out",
                                                           "maintenance")
    drill.report_planned([planned], MAINTENANCE_RESULTS)
    assert f"{node.name} in maintenance" in outputs[0], outputs
    assert outputs[1].startswith(f"{node.name} serves: "), outputs
    # Refused calls are what the drain prevents; slow answers and closed connections (seen with
    # no work under way too) are reported.
    refused = {api: a for api, a in planned.apis.items() if a["refused"]}
    assert not refused, refused
    assert all(a["calls"] > 0 for a in planned.apis.values()), planned.apis
    assert planned.rows_found == planned.rows_acknowledged > 0, planned
    # Its console was read through the reboot and after it (lab/consoles.py): unread, it fills
    # and the node's PID 1 hangs, at the latest while it shuts down.
    console = (lab.hypervisor.consoles / f"{node.domain}.log").read_bytes()
    assert console.rfind(b"Welcome to") > console.rfind(b"Rebooting.") >= 0, console[-2000:]
    drill.wait_settled(lab)


def render_with_template_edits(lab, tmp_path: Path, edits: dict[str, str]) -> Path:
    """The lab's stack rendered from a copy of the templates, each of `edits` (a template's
    name) with its text appended."""
    changed_templates = tmp_path / "templates"
    shutil.copytree(templating.TEMPLATES, changed_templates)
    environments = {}
    for name, text in edits.items():
        template = changed_templates / name
        template.write_text(template.read_text() + text)
        environment = templating.environment_for(template.name)
        environments[id(environment)] = (environment, environment.loader)
    for environment, _ in environments.values():
        environment.loader = jinja2.FileSystemLoader(str(changed_templates))
    try:
        return session.render_stack(tmp_path / "rendered", session.profile_from_environment(),
                                    lab.settings.cluster.haproxy_layout)
    finally:
        for environment, loader in environments.values():
            environment.loader = loader


def test_a_changed_template_reruns_only_the_steps_it_renders(lab, tmp_path):
    """One template edited: only the steps rendered from it differ (and they run cleanly)."""
    rendered = render_with_template_edits(lab, tmp_path, {"cluster-sysctl.sh.j2": "# edited\n"})
    changed = replay.changed_steps(replay.Rendered.load(lab.rendered), replay.Rendered.load(rendered))
    assert sorted(changed) == sorted(f"{n.name}-sysctl" for n in lab.controls)
    before_epoch = cib_epoch(lab)
    lab.update_to(rendered)
    assert cib_epoch(lab) == before_epoch


# A change every API service on every control node reads (keystonemiddleware's options, keystone's
# own file): harmless values, their defaults.
EVERY_API_CHANGE = {"openstack/_authtoken.j2": "service_token_roles_required = false\n",
                    "openstack/keystone.conf.j2": "[DEFAULT]\nmax_param_size = 64\n"}


def test_a_change_every_api_reads_restarts_them_node_by_node_without_a_refused_call(
        lab, cloud, tmp_path):
    """The update path of a change that restarts every API service: each node drained from
    HAProxy while its services restart, one node at a time. The first run is killed while the
    second node restarts (`session.interruption_from_environment`); the second run finishes the
    change, and every node serves again. An API that runs on one node only (glance-api in the
    core group, with its images on the shared disk) has no other server: its restart in place is
    reported."""
    drill.wait_settled(lab)
    rendered = render_with_template_edits(lab, tmp_path, EVERY_API_CHANGE)
    changed = replay.changed_steps(replay.Rendered.load(lab.rendered), replay.Rendered.load(rendered))
    controls = [n.name for n in lab.controls]
    assert {f"{n}-openstack-install" for n in controls} <= set(changed), changed
    assert {f"{n}-rolling-restart" for n in controls} <= set(changed), changed
    default = replay.Interruption(f"{controls[1]}-rolling-restart", 20)
    interruption = session.interruption_from_environment(
        replay.Rendered.load(rendered), changed, default)
    results = []
    planned = drill.run_planned(lab, cloud, "rolling-change",
                                lambda: results.extend(lab.update_to(rendered, interruption)))
    drill.report_planned([planned], PLANNED_RESULTS)
    assert -signal.SIGKILL in {r.returncode for r in results if r.name == interruption.step}, \
        f"{interruption} killed nothing"
    outputs: dict[str, str] = {}
    for result in results:
        outputs[result.name] = outputs.get(result.name, "") + result.stdout
    for node in controls:
        assert f"drained {node} from:" in outputs[f"{node}-rolling-restart"], outputs
        assert f"{node} serves again:" in outputs[f"{node}-rolling-restart"], outputs
    # No server left drained (a node serves only the core group's APIs where it holds it).
    servers = checks.haproxy_servers(lab)
    assert not [status for by_server in servers.values() for status in by_server.values()
                if "DRAIN" in status or "MAINT" in status], servers
    # Refused (an HTTP error, a refused connection) is what a drain prevents. Answers slower than
    # the prober's timeout (two cores restarting a node's services) and connections closed
    # without an answer (seen in the drills before any fault too) are reported.
    single = cluster_units.installed_single_node_services(lab.settings)
    refused = {api: a for api, a in planned.apis.items() if a["refused"] and api not in single}
    assert not refused, refused
    assert all(a["calls"] > 0 for a in planned.apis.values()), planned.apis
    assert planned.rows_found == planned.rows_acknowledged > 0, planned


@pytest.fixture(scope="module")
def drills():
    """Every drill of this session; the table is printed and written once they have all run."""
    results: list[drill.Failover] = []
    yield results
    if results:
        drill.report(results, RESULTS)


def assert_recovered(result: drill.Failover) -> None:
    """Nothing lost, nothing held twice, every check passing again and every API back while the
    drill probed (how fast is a benchmark's figure: bench/failover.py, README "Every API's
    outage"). (Servers are reported, not checked: one in flight when the VIP's holder dies stays
    in BUILD while each node's broker stands alone.)"""
    assert result.rows_found == result.rows_acknowledged > 0, result
    assert result.max_fs_mounts == 1, result
    assert result.max_vip_holders == 1, result
    assert all(result.seconds[c] is not None for c in drill.COLUMNS), result
    assert not result.errors, result
    assert result.apis and all(a["outage"] is not None for a in result.apis.values()), result.apis


def drill_round(lab, drills: list, cloud: openstack.CloudChecks, faults: tuple[str, ...],
                bystander: bool) -> None:
    """Each of `faults` once on the VIP's holder, each on another victim (the VIP's node when
    it has not been one), then (with `bystander`) a node without the VIP killed; the client's
    checks pass before each fault and are timed after it, every API is called throughout. Then
    the group visits every control node."""
    layout = lab.settings.cluster.haproxy_layout
    profile = session.profile_from_environment()
    pending = list(lab.controls)
    for fault in faults:
        drill.wait_settled(lab)
        holder = lab.holder_of_vip()
        victim = holder if holder in pending else pending[0]
        pending.remove(victim)
        result = drill.run_drill(lab, layout, victim, fault, profile, cloud)
        drills.append(result)
        assert result.survivor != result.victim, result
        assert_recovered(result)
    if bystander:
        drill.wait_settled(lab)
        holder = lab.holder_of_vip()
        victim = next(n for n in lab.controls if n is not holder)
        result = drill.run_drill(lab, layout, victim, "kill", profile, cloud, vip_holder=False)
        drills.append(result)
        assert result.survivor == holder.name, result
        assert_recovered(result)
    # Each victim rejoined: every control node takes the group and gives it back.
    visited = drill.take_the_group_everywhere(lab)
    assert sorted(visited) == sorted(n.name for n in lab.controls), visited


def test_failover_round_clone_layout(lab, drills, cloud):
    """The stack's default layout: every fault on the VIP's holder, and a node without it."""
    assert lab.settings.cluster.haproxy_layout == "clone"
    drill_round(lab, drills, cloud, FAULTS, bystander=True)


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


def test_failover_round_group_layout(lab, drills, cloud):
    """HAProxy in the core group: the split-brain case (the VIP's holder cut off, still running
    the group's HAProxy and holding the VIP until fenced). Every fault in both layouts is
    bench/failover.py's matrix."""
    assert lab.settings.cluster.haproxy_layout == "group"
    drill_round(lab, drills, cloud, ("cut",), bystander=False)


def certificate_end_dates(lab, node: dict) -> set[str]:
    """The end dates of every certificate the node's services present (HAProxy's, MySQL's, the
    broker's)."""
    files = f"{HAPROXY_CERT_DIR}/*.pem {TLS_DIR}/mysql.crt {TLS_DIR}/broker.crt"
    listed = lab.ssh(node, f'for f in {files}; do openssl x509 -noout -enddate -in "$f"; done',
                     timeout=60)
    assert listed.returncode == 0, listed.stderr
    return set(listed.stdout.split("\n")) - {""}


def served_certificate_ends(lab) -> dict[int, str]:
    """The end date of the certificate keystone, MySQL and the broker serve at the VIP, by port,
    each handshake verified by the lab's CA file."""
    vip = lab.manifest.vip
    return {port: checks.served_certificate_end(host, port, lab.ca_file, starttls)
            for host, port, starttls in ((lab.settings.vip_fqdn, openstack.KEYSTONE_PORT, None),
                                         (vip, 3306, "mysql"), (vip, BROKER_PORTS[True], None))}


def server_pids(lab) -> dict[str, str]:
    """Each control node's MySQL (where it runs) and broker main PIDs."""
    pids = {}
    for node in lab.controls:
        shown = lab.ssh(node, "cat /run/mysqld/mysqld.pid 2>/dev/null || true; "
                              "systemctl show --property MainPID --value rabbitmq-server",
                        timeout=60)
        pids[node.name] = shown.stdout.split()
    return pids


def test_renewed_certificates_are_rolled_out_without_a_restart_or_a_refused_call(
        lab, cloud, tmp_path):
    """New service certificates (a changed tls.certificateDays) installed by the update path
    while the prober calls every API: HAProxy reloads, MySQL and the broker load theirs in place
    (same processes), no call is refused, and the VIP and every node present only the new
    ones."""
    drill.wait_settled(lab)
    raw = json.loads((lab.rendered / "settings.json").read_text())
    days = lab.settings.tls.certificate_days + 1
    raw["tls"] = {**raw.get("tls", {}), "certificateDays": days}
    rendered = session.render_settings(tmp_path / "rendered", raw)
    changed = replay.changed_steps(replay.Rendered.load(lab.rendered), replay.Rendered.load(rendered))
    assert sorted(changed) == sorted(f"{n.name}-tls-install" for n in lab.controls), changed
    before = server_pids(lab)
    planned = drill.run_planned(lab, cloud, "certificate-renewal",
                                lambda: lab.update_to(rendered))
    drill.report_planned([planned], RENEWAL_RESULTS)
    assert server_pids(lab) == before
    refused = {api: a for api, a in planned.apis.items() if a["refused"]}
    assert not refused, refused
    assert planned.rows_found == planned.rows_acknowledged > 0, planned
    end = (render.EPOCH + timedelta(days=days)).strftime("notAfter=%b %e %H:%M:%S %Y GMT")
    for node in lab.controls:
        assert certificate_end_dates(lab, node) == {end}, node.name
    served = served_certificate_ends(lab)
    assert served == dict.fromkeys(served, end), served


def test_a_new_ca_is_rolled_out_without_a_restart_or_a_refused_call_and_the_old_one_leaves(
        lab, cloud, tmp_path):
    """A raised tls.caGeneration: every node trusts both CAs, the control nodes install the
    certificates the new CA signed, then every node trusts the new CA alone, while the prober
    (a client off the nodes, given both CAs for the change) calls every API. No call is refused,
    MySQL and the broker keep their processes, and afterwards every node's CA file and the
    certificate served at every TLS port verify by the new CA alone."""
    drill.wait_settled(lab)
    raw = json.loads((lab.rendered / "settings.json").read_text())
    raw["tls"] = {**raw.get("tls", {}), "caGeneration": lab.settings.tls.ca_generation + 1}
    rendered = session.render_settings(tmp_path / "rendered", raw)
    changed = replay.changed_steps(replay.Rendered.load(lab.rendered), replay.Rendered.load(rendered))
    nodes = lab.manifest.nodes
    assert sorted(changed) == sorted(
        [f"{n.name}-tls-{phase}" for n in nodes for phase in ("trust", "trust-prune")]
        + [f"{n.name}-tls-install" for n in lab.controls]), changed
    old_ca, new_ca = lab.ca_file.read_text(), Manifest.load(rendered).outputs["caCertificate"]
    assert new_ca != old_ca
    lab.ca_file.write_text(new_ca + old_ca)
    before = server_pids(lab)
    planned = drill.run_planned(lab, cloud, "ca-change", lambda: lab.update_to(rendered))
    drill.report_planned([planned], CA_CHANGE_RESULTS)
    assert server_pids(lab) == before
    refused = {api: a for api, a in planned.apis.items() if a["refused"]}
    assert not refused, refused
    assert planned.rows_found == planned.rows_acknowledged > 0, planned
    assert lab.ca_file.read_text() == new_ca
    for node in nodes:
        held = lab.ssh(node, f"cat {CA_FILE}", timeout=60)
        assert held.stdout.strip() == new_ca.strip(), node.name
    # Each handshake verifies by the lab's CA file, now the new CA alone.
    served_certificate_ends(lab)


def test_no_api_worker_hung_after_the_drills_and_planned_work(lab):
    """An eventlet code base served by several uwsgi threads (neutron-api had 4) loses a greenlet
    to another thread now and then: the requests that worker holds hang until uwsgi's harakiri
    kills it, and HAProxy answers them 502. Every API log on every control node, after every
    drill and planned change above, shows neither. A failure names the log and the lines before
    (the traceback: which code switched)."""
    for node in lab.controls:
        found = lab.ssh(node, "grep -H -B 30 -E 'cannot switch to a different thread|HARAKIRI ON "
                              f"WORKER' {evidence.OPENSTACK_LOGS} 2>/dev/null | tail -100 || true",
                        timeout=120)
        assert found.returncode == 0 and found.stdout == "", \
            f"{node.name}:\n{found.stdout}{found.stderr}"


def test_delete_leaves_nothing_with_a_node_down(lab):
    """`pulumi destroy` with one control node powered off: the cluster-wide steps still unwind
    the cluster on the others. (The down node's own steps cannot run: its SSH does not answer.)"""
    drill.wait_settled(lab)
    down = lab.controls[-1]
    lab.nodes.stop(down)
    rendered = replay.Rendered.load(lab.rendered)
    reachable = [n for n in all_steps(lab)
                 if not (rendered.steps[n].host and rendered.steps[n].host.host == down.ip)]
    lab.replayer().run("delete", reachable)
    for node in lab.controls:
        if node is down:
            continue
        assert lab.ssh(node, "test -e /etc/corosync/corosync.conf").returncode != 0, node.name
        assert lab.ssh(node, "systemctl is-active --quiet pacemaker").returncode != 0, node.name
        assert lab.ssh(node, f"test -e {KEY_FILE}").returncode != 0, node.name
    assert checks.vip_on(lab) == []
    authorized = Path("/run/osha-lab/authorized_keys").read_text()
    assert "osha-fence:" not in authorized
