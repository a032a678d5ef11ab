"""The rendered OpenStack install step's config edits, run with the real crudini on Debian zed's
own default config files, checked key by key; a second run, and then the repoint step, change
nothing.

The files come from the packages themselves: the recipe's local repository when this machine has
it, else `apt-get download` into the test's temp dir. Each lands where its package's postinst
copies it (/usr/share/<package>/X -> /etc/<service>/X; the rest is shipped under /etc). The
node's own create script runs unchanged in its test mode (OSHA_ROOT: files under a temp dir); the
package manager, systemd, Apache's site tools and chown are stand-ins that record their calls,
and crudini is the real one behind a wrapper that records its arguments.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.node import ROOT_PROLOGUE
from components.openstack_config import (CACHE_DEAD_RETRY_SECONDS, CALL_BOUNDS, PLACEHOLDER,
                                         node_plan)
from tests.conftest import stack_config
from tools import render

LOCAL_REPOSITORY = Path("/work/proto-openstack/repo")
PACKAGES = ("keystone", "glance-common", "glance-api", "placement-common", "placement-api",
            "nova-common", "nova-api", "nova-consoleproxy", "nova-compute", "nova-compute-ironic",
            "neutron-common", "neutron-api", "neutron-linuxbridge-agent", "cinder-common",
            "cinder-api", "cinder-volume", "heat-common", "heat-api", "heat-api-cfn")
# pkgos_write_new_conf: /usr/share/<package>/<file> -> /etc/<service>/<file>, plus the two the
# neutron and nova-consoleproxy postinsts copy by hand.
POSTINST_COPIES = {
    "keystone": ("keystone", ["keystone.conf"]),
    "glance-common": ("glance", ["glance-api.conf"]),
    "placement-common": ("placement", ["placement.conf"]),
    "nova-common": ("nova", ["nova.conf"]),
    "neutron-common": ("neutron", ["neutron.conf", "plugins/ml2/ml2_conf.ini"]),
    "cinder-common": ("cinder", ["cinder.conf"]),
    "heat-common": ("heat", ["heat.conf"]),
}
STUBS = {
    "dpkg-query": 'echo "install ok installed"\n',
    # Every unit exists; none is enabled; they run once OSHA_TEST_RUNNING is set (try-restart
    # restarts running units only).
    "systemctl": 'case $1 in cat) exit 0;; is-enabled) exit 1;;\n'
                 '  show) echo "${OSHA_TEST_NEEDS_RELOAD:-no}"; exit 0;;\n'
                 '  is-active) [ -n "${OSHA_TEST_RUNNING:-}" ]; exit;;\n'
                 '  try-restart) [ -n "${OSHA_TEST_RUNNING:-}" ] || exit 0;; esac\n'
                 'echo "systemctl $*" >> "$OSHA_TEST_LOG"\n',
    # The rolling restart's HAProxy and API waits: no HAProxy at the VIP, nothing to drain
    # (tests/artifacts/test_drain.py drains).
    "python3": "exit 0\n",
    "chown": 'echo "chown $*" >> "$OSHA_TEST_LOG"\n',
    "a2ensite": 'echo "a2ensite $*" >> "$OSHA_TEST_LOG"\n'
                'ln -sf "../sites-available/$2.conf" "$OSHA_ROOT/etc/apache2/sites-enabled/$2.conf"\n',
    "a2dissite": 'echo "a2dissite $*" >> "$OSHA_TEST_LOG"\n'
                 'rm -f "$OSHA_ROOT/etc/apache2/sites-enabled/$2.conf"\n',
    "ip": 'echo "2: ens3    inet 10.20.0.11/24 brd 10.20.0.255 scope global ens3"\n',
    "crm_node": "echo ctl1\n",
    # Pacemaker runs the cluster's resources here once OSHA_TEST_RUNNING is set.
    "crm_resource": 'if [ "$1" = --locate ]; then\n'
                    '  [ -n "${OSHA_TEST_RUNNING:-}" ] && echo "resource $3 is running on: ctl1"\n'
                    '  exit 0\nfi\necho "crm_resource $*" >> "$OSHA_TEST_LOG"\n',
    # The real crudini, its arguments recorded (no secret may be among them).
    "crudini": 'printf "%s\\n" "$*" >> "$OSHA_TEST_ARGV"\nexec /usr/bin/crudini "$@"\n',
}


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    """The .deb of each package, from the local repository or downloaded."""
    found = {}
    if LOCAL_REPOSITORY.is_dir():
        for package in PACKAGES:
            matches = sorted(LOCAL_REPOSITORY.glob(f"{package}_*.deb"))
            if matches:
                found[package] = matches[-1]
    missing = [p for p in PACKAGES if p not in found]
    if missing:
        where = tmp_path_factory.mktemp("debs")
        subprocess.run(["apt-get", "download", "-q", *missing], cwd=where, check=True,
                       capture_output=True, timeout=600)
        found.update({p: next(where.glob(f"{p}_*.deb")) for p in missing})
    return found


@pytest.fixture(scope="module")
def defaults(debs, tmp_path_factory) -> Path:
    """An /etc as the packages leave it (before any configuration)."""
    unpacked, etc = tmp_path_factory.mktemp("unpacked"), tmp_path_factory.mktemp("defaults")
    for package, deb in debs.items():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked / package)], check=True)
        shipped = unpacked / package / "etc"
        if shipped.is_dir():
            shutil.copytree(shipped, etc / "etc", dirs_exist_ok=True)
        units = unpacked / package / "lib/systemd/system"
        if units.is_dir():
            shutil.copytree(units, etc / "lib/systemd/system", dirs_exist_ok=True)
        service, files = POSTINST_COPIES.get(package, (None, []))
        for name in files:
            target = etc / "etc" / service / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(unpacked / package / "usr/share" / package / name, target)
    console = unpacked / "nova-consoleproxy/usr/share/nova-consoleproxy/default"
    (etc / "etc/default").mkdir(parents=True, exist_ok=True)
    shutil.copy(console, etc / "etc/default/nova-consoleproxy")
    (etc / "etc/apache2/sites-enabled").mkdir(parents=True)
    (etc / "etc/apache2/sites-available").mkdir(parents=True)
    (etc / "etc/apache2/sites-available/000-default.conf").write_text("<VirtualHost *:80>\n")
    os.symlink("../sites-available/000-default.conf",
               etc / "etc/apache2/sites-enabled/000-default.conf")
    return etc


@pytest.fixture(scope="module")
def debian(tmp_path_factory) -> tuple[render.Graph, Path]:
    graph = render.run_program(stack_config("debian"), "debian")
    out = tmp_path_factory.mktemp("rendered-debian")
    render.write(graph, out)
    return graph, out


class Node:
    """One node's file tree, and its rendered steps run in test mode."""

    def __init__(self, debian, name: str, defaults: Path, base: Path):
        self.graph, self.out = debian
        self.spec = next(n for n in self.graph.settings.nodes if n.name == name)
        self.root = base / "root"
        shutil.copytree(defaults, self.root, symlinks=True)
        self.log, self.argv = base / "calls.log", base / "crudini.argv"
        bin_dir = base / "bin"
        bin_dir.mkdir()
        for tool, text in STUBS.items():
            (bin_dir / tool).write_text("#!/bin/bash\n" + text)
            (bin_dir / tool).chmod(0o755)
        self.env = {**os.environ, "OSHA_ROOT": str(self.root), "OSHA_TEST_LOG": str(self.log),
                    "OSHA_TEST_ARGV": str(self.argv), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        self.stdin = (self.out / "secrets" / f"{name}-openstack-install.stdin").read_text()
        self.values = {f"SECRET_{k}": v for k, v in
                       (line.split("=", 1) for line in self.stdin.splitlines())}
        self.values["FACT_interface"] = "ens3"

    def script(self, step: str) -> str:
        return self.graph.named(step).inputs["create"].replace(ROOT_PROLOGUE, "")

    def run(self, step: str, stdin: str = "", running: bool = False) -> tuple[str, list[str]]:
        self.log.write_text("")
        env = {**self.env, "OSHA_TEST_RUNNING": "yes"} if running else self.env
        result = subprocess.run(["bash", "-c", self.script(step)], input=stdin, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout, self.log.read_text().splitlines()

    def install(self, running: bool = False) -> tuple[str, list[str]]:
        return self.run(f"{self.spec.name}-openstack-install", self.stdin, running)

    def fill(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.values[f"{m.group(1)}_{m.group(2)}"], text)

    def get(self, path: str, section: str, key: str) -> str:
        return subprocess.run(["crudini", "--get", str(self.root / path.lstrip("/")), section,
                               key], capture_output=True, text=True, check=True).stdout.strip()

    def digest(self) -> dict[str, str]:
        return {str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.root.rglob("*")) if p.is_file()}


def fragment_keys(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every key an ini fragment sets."""
    section, found = "", []
    for line in text.splitlines():
        if match := re.fullmatch(r"\[(.+)\]", line):
            section = match.group(1)
        elif "=" in line and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            found.append((section, key, value))
    return found


@pytest.mark.parametrize("name", ["ctl1", "cmp1"])
def test_every_key_lands_and_a_second_run_changes_nothing(debian, defaults, name, tmp_path):
    node = Node(debian, name, defaults, tmp_path)
    output, calls = node.install()
    plan = node_plan(node.graph.settings, node.spec)
    assert plan.files
    checked = 0
    for config in plan.files:
        path = node.root / config.path.lstrip("/")
        text = node.fill(config.text)
        if config.kind == "whole":
            assert path.read_text() == text.strip() + "\n", config.path
            assert oct(path.stat().st_mode & 0o777) == oct(int(config.mode, 8)), config.path
            checked += 1
            continue
        for section, key, value in fragment_keys(text):
            # A shell file's values keep their quotes in the file; crudini --get shows them.
            assert node.get(config.path, section, key) == value, (config.path, section, key)
            checked += 1
    assert checked > (150 if name == "ctl1" else 10)
    assert "@@OSHA_" not in "".join(p.read_text(errors="replace")
                                    for p in node.root.rglob("*") if p.is_file())
    # Nothing runs yet: no restart, and the units the packages enabled stay disabled.
    assert not [c for c in calls if "restart" in c]
    first = node.digest()
    again, calls = node.install()
    assert node.digest() == first
    assert again.strip().endswith("changed:"), again
    assert not [c for c in calls if "restart" in c or c.startswith(("a2ensite", "a2dissite"))]
    # The repoint step that follows finds nothing to change.
    repointed, calls = node.run(f"{name}-repoint")
    assert repointed.strip() == "changed:" and node.digest() == first
    # No secret ever reached crudini's arguments.
    argv = node.argv.read_text()
    leaked = [k for k, v in node.values.items() if k.startswith("SECRET_") and v in argv]
    assert not leaked


# The package manager of a node with nothing installed yet: apt-get's install exits 100 as when
# a package's own script failed; a `dpkg --configure -a` after it configures the packages
# (OSHA_TEST_DPKG_FIXES) or not.
PACKAGE_MANAGER = {
    "dpkg-query": '[ -e "$OSHA_ROOT/configured" ] && echo "install ok installed" '
                  '|| echo "install ok unpacked"\n',
    "apt-get": 'echo "apt-get $*" >> "$OSHA_TEST_LOG"\n'
               '[ "$1" = update ] && exit 0\ntouch "$OSHA_ROOT/apt-failed"\nexit 100\n',
    "dpkg": 'echo "dpkg $*" >> "$OSHA_TEST_LOG"\n'
            'if [ -e "$OSHA_ROOT/apt-failed" ] && [ -n "${OSHA_TEST_DPKG_FIXES:-}" ]; then\n'
            '  touch "$OSHA_ROOT/configured"\nfi\n',
    "debconf-set-selections": "cat > /dev/null\n",
    "hostname": "echo ctl1.osha.internal\n",
}


@pytest.mark.parametrize("configured_again", [True, False])
def test_a_package_script_that_fails_once_is_run_again_and_one_that_fails_twice_stops_the_step(
        debian, defaults, tmp_path, configured_again):
    node = Node(debian, "ctl1", defaults, tmp_path)
    for tool, text in PACKAGE_MANAGER.items():
        (tmp_path / "bin" / tool).write_text("#!/bin/bash\n" + text)
        (tmp_path / "bin" / tool).chmod(0o755)
    (node.root / "usr/sbin").mkdir(parents=True)
    env = {**node.env, **({"OSHA_TEST_DPKG_FIXES": "yes"} if configured_again else {})}
    result = subprocess.run(["bash", "-c", node.script("ctl1-openstack-install")],
                            input=node.stdin, env=env, capture_output=True, text=True,
                            timeout=300)
    calls = node.log.read_text().splitlines()
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert len(installs) == 1, calls
    assert calls[calls.index(installs[0]) + 1] == "dpkg --configure -a", calls
    assert "dpkg configures what it left once more" in result.stderr
    # The step's own policy-rc.d is gone either way.
    assert not (node.root / "usr/sbin/policy-rc.d").exists()
    if configured_again:
        assert result.returncode == 0, result.stderr
        assert "installed" in result.stdout
    else:
        assert result.returncode == 1
        assert "is not installed" in result.stderr.splitlines()[-1], result.stderr

def test_units_pacemaker_starts_run_from_copies_ordered_after_targets_only(debian, defaults,
                                                                          tmp_path):
    """The packages order their units after rabbitmq-server, mysql and keystone: glance-api's,
    started by Pacemaker while the broker started, waited and Pacemaker failed the start. The copy
    in /etc keeps every other line of the packaged unit."""
    node = Node(debian, "ctl1", defaults, tmp_path)
    _, calls = node.install()
    plan = node_plan(node.graph.settings, node.spec)
    assert plan.cluster_units == ("neutron-linuxbridge-agent", "cinder-volume")
    for unit in plan.cluster_units:
        packaged = (node.root / f"lib/systemd/system/{unit}.service").read_text().splitlines()
        copy = (node.root / f"etc/systemd/system/{unit}.service").read_text().splitlines()
        assert [line for line in copy if not line.startswith("After=")] == \
            [line for line in packaged if not line.startswith("After=")], unit
        after = [word for line in copy if line.startswith("After=")
                 for word in line.removeprefix("After=").split()]
        assert after and all(word.endswith(".target") for word in after), (unit, after)
    assert "After=network-online.target local-fs.target remote-fs.target" in \
        (node.root / "etc/systemd/system/cinder-volume.service").read_text()
    assert "systemctl daemon-reload" in calls
    _, calls = node.install()
    assert "systemctl daemon-reload" not in calls
    # A run killed after the copy and before the reload: systemd still runs the packaged unit.
    node.env["OSHA_TEST_NEEDS_RELOAD"] = "yes"
    _, calls = node.install()
    assert "systemctl daemon-reload" in calls


def test_a_control_node_gets_what_the_recipe_measured(debian, defaults, tmp_path):
    node = Node(debian, "ctl1", defaults, tmp_path)
    node.install()
    s, ip = node.graph.settings, str(node.spec.ip)
    # Debian's uwsgi APIs bind the node's address only through DAEMON_ARGS; neutron-api's init
    # script reads /etc/default/neutron-server.
    assert node.get("/etc/default/neutron-server", "", "DAEMON_ARGS") == \
        f'"--http-socket {ip}:9696 --ini /etc/neutron/neutron-api-uwsgi.ini"'
    assert node.get("/etc/default/keystone", "", "DAEMON_ARGS").startswith(
        f'"--http-socket {ip}:5000 ')
    # nova-api-metadata's ini shipped `processes` twice: one is left.
    metadata = (node.root / "etc/nova/nova-api-metadata-uwsgi.ini").read_text()
    assert len(re.findall(r"(?m)^processes\s*=", metadata)) == 1
    assert node.get("/etc/nova/nova-api-uwsgi.ini", "uwsgi", "processes") == \
        str(s.openstack.workers)
    # Debian runs its APIs with 32 threads; an eventlet code base hangs with more than one.
    eventlet_inis = sorted(str(ini.relative_to(node.root)) for project in
                           ("placement", "nova", "neutron", "cinder", "heat")
                           for ini in (node.root / "etc" / project).glob("*-uwsgi.ini"))
    assert len(eventlet_inis) == 7, eventlet_inis
    for ini in eventlet_inis:
        assert node.get(f"/{ini}", "uwsgi", "threads") == "1", ini
    assert node.get("/etc/keystone/keystone-uwsgi.ini", "uwsgi", "threads") == "4"
    # Idle RPC consumers notice the broker's move within seconds (RabbitMQ advises 5 to 20 s).
    heartbeat = CALL_BOUNDS["broker_heartbeat_seconds"]
    assert 5 <= heartbeat <= 20
    for conf in ("nova/nova.conf", "neutron/neutron.conf", "cinder/cinder.conf", "heat/heat.conf",
                 "glance/glance-api.conf"):
        assert node.get(f"/etc/{conf}", "oslo_messaging_rabbit",
                        "heartbeat_timeout_threshold") == str(heartbeat), conf
    # Every node's keystone and nova hash cache keys over the same live memcached servers:
    # one found dead is retried soon.
    for conf in ("keystone/keystone.conf", "nova/nova.conf"):
        assert node.get(f"/etc/{conf}", "cache", "memcache_dead_retry") == \
            str(CACHE_DEAD_RETRY_SECONDS), conf
        assert node.get(f"/etc/{conf}", "cache", "memcache_servers") == \
            ",".join(f"{n.ip}:11211" for n in s.controls), conf
    # zed refuses linuxbridge without it; the agent bridges the interface holding the address.
    assert node.get("/etc/neutron/neutron.conf", "experimental", "linuxbridge") == "true"
    assert node.get("/etc/neutron/plugins/ml2/linuxbridge_agent.ini", "linux_bridge",
                    "physical_interface_mappings") == "provider:ens3"
    assert node.get("/etc/default/nova-consoleproxy", "", "NOVA_CONSOLE_PROXY_TYPE") == "novnc"
    # Debian writes region regionOne and a broken [placement] username: both set.
    assert node.get("/etc/nova/nova.conf", "placement", "username") == "nova"
    assert node.get("/etc/nova/nova.conf", "keystone_authtoken", "region_name") == "RegionOne"
    # Glance's store is the stack's Ceph, as glance's own client.
    assert node.get("/etc/glance/glance-api.conf", "glance_store", "default_store") == "rbd"
    assert node.get("/etc/glance/glance-api.conf", "glance_store", "rbd_store_user") == "glance"
    assert node.get("/etc/ceph/ceph.conf", "client.glance", "keyring") == \
        "/etc/ceph/openstack-ha-images.keyring"
    # Keystone's keys: the stack's, 0600, nothing else in the repositories.
    for repository in ("fernet", "credential"):
        keys = node.root / f"etc/keystone/{repository}-keys"
        assert sorted(p.name for p in keys.iterdir()) == ["0", "1"]
        for index in (0, 1):
            key = keys / str(index)
            assert key.read_text() == node.values[f"SECRET_{repository}_{index}"]
            assert key.stat().st_mode & 0o777 == 0o600
    # Horizon: its own site instead of Debian's default, SECRET_KEY from the stack.
    enabled = node.root / "etc/apache2/sites-enabled"
    assert sorted(p.name for p in enabled.iterdir()) == ["openstack-ha-horizon.conf"]
    settings_file = node.root / "etc/openstack-dashboard/local_settings.d/_9000_openstack_ha.py"
    assert f'SECRET_KEY = "{node.values["SECRET_horizon_secret_key"]}"' in \
        settings_file.read_text()


@pytest.mark.parametrize("name", ["ctl1", "cmp1"])
def test_every_call_an_api_worker_makes_is_bounded(debian, defaults, name, tmp_path):
    """A request the VIP's old holder took as it died is never answered: every section a
    service calls another one from has a timeout, every token check too, and uwsgi replaces a
    worker held past its bound."""
    node = Node(debian, name, defaults, tmp_path)
    node.install()
    bounded = 0
    for config in node_plan(node.graph.settings, node.spec).files:
        keys = fragment_keys(node.fill(config.text))
        # keystonemiddleware's section, and each client section nova, neutron and cinder set.
        for section in sorted({s for s, _, _ in keys} & {"keystone_authtoken", "placement",
                                                          "neutron", "nova", "glance", "cinder"}):
            option = "http_connect_timeout" if section == "keystone_authtoken" else "timeout"
            expected = CALL_BOUNDS["token_check_seconds" if section == "keystone_authtoken"
                                   else "service_call_seconds"]
            assert node.get(config.path, section, option) == str(expected), (config.path, section)
            bounded += 1
        if config.path.endswith("-uwsgi.ini"):
            assert node.get(config.path, "uwsgi", "harakiri") == \
                str(CALL_BOUNDS["request_seconds"]), config.path
            bounded += 1
    assert bounded >= (20 if name == "ctl1" else 4)


def test_a_changed_file_restarts_only_its_readers_and_cluster_units_through_pacemaker(
        debian, defaults, tmp_path):
    node = Node(debian, "ctl1", defaults, tmp_path)
    node.install()
    nova = node.root / "etc/nova/nova.conf"
    subprocess.run(["crudini", "--set", str(nova), "glance", "api_servers", "http://old:9292"],
                   check=True)
    l2_agent = node.root / "etc/neutron/plugins/ml2/linuxbridge_agent.ini"
    subprocess.run(["crudini", "--set", str(l2_agent), "vxlan", "l2_population", "true"],
                   check=True)
    output, _ = node.install(running=True)
    # The install leaves the restarts to the node's rolling restart, which does them.
    _, calls = node.run("ctl1-rolling-restart", running=True)
    restarted = {u for c in calls if c.startswith("systemctl try-restart") for u in c.split()[2:]}
    assert "nova-api.service" in restarted and "nova-conductor.service" in restarted
    assert not [u for u in restarted if not u.startswith("nova-")]
    # The L2 agent runs where Pacemaker put it: restarted through Pacemaker, never systemctl.
    assert "crm_resource --restart --resource neutron-l2-agent --timeout=300s" in calls
    assert "/etc/nova/nova.conf" in output and "/etc/neutron/plugins/ml2/linuxbridge_agent.ini" \
        in output
