"""Hostile values through every shell template: each arrives intact, as data, never as code.

Each case renders one template with a hostile value in the fields a setting (or the stack) fills,
checks that the whole script still parses, then runs the rendered fragment that carries the value:
the assignments it makes are read back, and the commands it calls are stand-in functions that
record their arguments. Every payload would create MARKER in the working directory if any part
of it ran as code.
"""
from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any, Callable, Optional

import pytest

from components.cluster_units import Restart
from components.endpoints import Edit
from components.openstack_config import ConfigFile
from components.templating import render
from components.tls import InstalledFile

HOSTILE = [
    "$(:>MARKER)", "`:>MARKER`", ";:>MARKER", "\n:>MARKER", "&& :>MARKER", "| :>MARKER",
    "'$(:>MARKER)'", "x' ; :>MARKER ; '", '"$(:>MARKER)"', '" ; :>MARKER #',
    "x\n# a comment line\n:>MARKER", "$HOME", "*", "then", "-n", "a\\", "${IFS}:>MARKER",
]


@dataclass
class Fragment:
    """The rendered lines from the first matching `start` to before the next matching `stop`."""

    start: str
    stop: Optional[str] = None
    # Functions standing in for the commands the fragment calls: they record their arguments.
    stubs: tuple[str, ...] = ()
    # Variables the fragment sets, and what each must hold (as "${var[@]}").
    variables: Callable[[str], dict[str, list[str]]] = lambda h: {}
    # The recorded calls, in order.
    calls: Callable[[str], list[list[str]]] = lambda h: []
    # Shell set before the fragment runs (what earlier lines of the script would have set).
    prelude: str = ""
    stdin: str = "stdin-secret\nsecond line"


@dataclass
class Case:
    template: str
    context: Callable[[str], dict[str, Any]]
    fragments: list[Fragment] = field(default_factory=list)


def settings(**parts) -> NS:
    defaults = dict(image=NS(os_family="debian"), cluster=NS(haproxy_layout="clone",
                                                            broker="rabbitmq", name="osha",
                                                            token_ms=3000),
                    mysql_require_tls=True, tls_enabled=True)
    return NS(**{**defaults, **parts})


ADMIN = NS(admin_user="admin", admin_project="admin", region="RegionOne",
           openrc_file="/root/keystonerc_admin")

CASES = {
    "readiness": Case("readiness.sh.j2", lambda h: dict(node=NS(name=h, ip=h)), [
        Fragment("#!", r"# cloud-init status", variables=lambda h: {"name": [h], "address": [h]})]),
    "api-listen": Case("api-listen.sh.j2", lambda h: dict(node=NS(ip=h), ports=[h, 5000]), [
        Fragment("#!", r"changed=\(\)",
                 variables=lambda h: {"address": [h], "ports": [h, "5000"]})]),
    "cluster-prep": Case("cluster-prep.sh.j2", lambda h: dict(
        settings=settings(), packages=[h, "pcs"], units=[h, "haproxy"], mysql_log_dir=h), [
        Fragment("#!", r"missing=", variables=lambda h: {
            "hacluster_password": ["stdin-secret\nsecond line"], "packages": [h, "pcs"],
            "units": [h, "haproxy"], "log_dir": [h]})]),
    "cluster-setup": Case("cluster-setup.sh.j2", lambda h: dict(
        settings=settings(cluster=NS(name=h, token_ms=3000)),
        nodes=[NS(name=h, ip=h), NS(name="ctl2", ip="10.0.0.2")]), [
        Fragment("#!", r"node_count=", variables=lambda h: {
            "cluster": [h], "members": [h, f"addr={h}", "ctl2", "addr=10.0.0.2"]})]),
    "cluster-sysctl": Case("cluster-sysctl.sh.j2", lambda h: dict(
        settings=settings(), sysctl_conf=f"net.x = {h}\n"), [
        Fragment("#!", r"if \[ ", variables=lambda h: {"wanted": [f"net.x = {h}".strip()]})]),
    "fencing-node-key": Case("fencing-node-key.sh.j2", lambda h: dict(
        key_file=h, hypervisors=[h, h, f"ssh-ed25519 {h}"]), [
        Fragment("#!", r"umask", variables=lambda h: {
            "fence_key": ["stdin-secret\nsecond line"], "key": [h],
            "hypervisors": [h, h, f"ssh-ed25519 {h}"]})]),
    "fencing-node-key-delete": Case("fencing-node-key-delete.sh.j2", lambda h: dict(
        key_file=h, addresses=[h, "10.0.0.1"]), [
        Fragment("#!", r"for address", stubs=("rm",),
                 variables=lambda h: {"addresses": [h, "10.0.0.1"]}, calls=lambda h: [["-f", h]])]),
    "haproxy-install": Case("haproxy-install.sh.j2", lambda h: dict(
        staged=h, config_file=h, digest=h, settings=settings(vip=h)), [
        Fragment("#!", r"printf '%s  %s", variables=lambda h: {
            "staged": [h], "config": [h], "digest": [h]}),
        Fragment(r"  printf 'net\.ipv4", r"  exit 1", stubs=("printf",),
                 calls=lambda h: [["net.ipv4.ip_nonlocal_bind is not 1: HAProxy cannot bind %s "
                                   "here\\n", h]])]),
    "haproxy-uninstall": Case("haproxy-uninstall.sh.j2", lambda h: dict(
        staged=h, config_file=h), [
        Fragment("#!", r"if \[ -f", variables=lambda h: {"config": [h]}),
        Fragment(r"rm -f", stubs=("rm",), calls=lambda h: [["-f", h]])]),
    "keystone-endpoints": Case("keystone-endpoints.sh.j2", lambda h: dict(
        use_password=True, settings=settings(keystone=NS(
            admin_user=h, admin_project=h, region=h, openrc_file=h)),
        ca_file=h, auth_url=h, endpoints=[(h, h, h), ("image", "public", "http://vip:9292")]), [
        Fragment("#!", r"# Wait \(up to", variables=lambda h: {
            "OS_PASSWORD": ["stdin-secret\nsecond line"], "OS_USERNAME": [h],
            "OS_PROJECT_NAME": [h], "OS_AUTH_URL": [h], "OS_CACERT": [h], "region": [h]}),
        Fragment(r"wanted=\(", r"# The whole catalogue", variables=lambda h: {
            "wanted": [h, h, h, "image", "public", "http://vip:9292"]})]),
    "keystone-endpoints-openrc": Case("keystone-endpoints.sh.j2", lambda h: dict(
        use_password=False, settings=settings(keystone=NS(
            admin_user="admin", admin_project="admin", region="r", openrc_file=h),
            tls_enabled=False), ca_file="/ca", auth_url="http://vip:5000/v3", endpoints=[]), [
        Fragment("#!", r"\[ -r ", variables=lambda h: {"openrc": [h]})]),
    "repoint": Case("repoint.sh.j2", lambda h: dict(
        settings=settings(), node=NS(name="ctl1"),
        edits=[Edit(h, h, h, "set", h, h, False), Edit("/etc/x.conf", "DEFAULT", "k", "url", h)],
        restarts=[Restart(h, (h, "nova-api"), (h,))]), [
        Fragment(r"edit ", r"restart_changed$", stubs=("edit",), calls=lambda h: [
            [h, h, h, "set", h, h, "no"], ["/etc/x.conf", "DEFAULT", "k", "url", h, "", "no"]]),
        Fragment(r"  restart_if_changed ", r"  printf 'changed", stubs=("restart_if_changed",),
                 calls=lambda h: [[h, f"{h} nova-api", h]])]),
    "repoint-undo": Case("repoint-undo.sh.j2", lambda h: dict(
        node=NS(name="ctl1"), restarts=[Restart(h, (), ()), Restart("/etc/x.conf", (), ())]), [
        Fragment(r"paths=\(", r"for path", variables=lambda h: {"paths": [h, "/etc/x.conf"]})]),
    "shared-storage-prepare": Case("shared-storage-prepare.sh.j2", lambda h: dict(
        device=h, settings=settings(shared_storage=NS(filesystem=h))), [
        Fragment("#!", r"\[ -b ", variables=lambda h: {"device": [h], "filesystem": [h]})]),
    "tls-install-qpid": Case("tls-install.sh.j2", lambda h: dict(
        settings=settings(cluster=NS(broker="qpid"), image=NS(os_family="rhel")), role="control",
        files=[InstalledFile(h, h, h, h, h)], tls_dir=h, ca_file=h, mysql_drop_in=h,
        rabbitmq_drop_in=h, nss_dir=h, broker_group=h, mysql_conf=f"a={h}\n",
        qpidd_block=f"b={h}\n"), [
        Fragment("#!", r"# Directories", variables=lambda h: {
            "bundle": ["stdin-secret\nsecond line"], "tls_dir": [h]}),
        Fragment(r"install_file ", r"$", stubs=("install_file",), calls=lambda h: [[h] * 5]),
        Fragment(r"write_config ", r"$", stubs=("write_config",),
                 calls=lambda h: [[h, "mysql", f"a={h}".strip()]]),
        Fragment(r"nss=", r"if was_changed broker", variables=lambda h: {"nss": [h]}),
        Fragment(r"  certutil -A", r"  chmod -R", stubs=("certutil", "chgrp"), prelude="nss=NSS",
                 calls=lambda h: [["-A", "-d", "sql:NSS", "-n", "openstack-ha-ca", "-t", "CT,,",
                                   "-i", h], ["-R", h, "NSS"]]),
        Fragment(r"qpid_block=", r"qpid_conf=",
                 variables=lambda h: {"qpid_block": [f"b={h}".strip()]})]),
    "tls-install-rabbitmq": Case("tls-install.sh.j2", lambda h: dict(
        settings=settings(), role="control", files=[], tls_dir="/tls", ca_file="/ca",
        mysql_drop_in=h,
        rabbitmq_drop_in=h, nss_dir="/nss", broker_group="rabbitmq", mysql_conf="a=1\n",
        rabbitmq_conf=f"c = {h}\n"), [
        Fragment(r"# templates/tls-mysql", r"if was_changed haproxy", stubs=("write_config",),
                 calls=lambda h: [[h, "mysql", "a=1"], [h, "broker", f"c = {h}".strip()]])]),
    "tls-remove": Case("tls-remove.sh.j2", lambda h: dict(
        settings=settings(),
        files=[InstalledFile("x", h, "0600", "root", "-"),
               InstalledFile("y", "/etc/y", "0600", "root", "-")],
        mysql_drop_in=h, rabbitmq_drop_in=h, nss_dir=h), [
        Fragment(r"rm -f", None, stubs=("rm",), calls=lambda h: [
            ["-f", h, "/etc/y"], ["-f", h], ["-f", h]])]),
    "tls-trust": Case("tls-trust.sh.j2", lambda h: dict(
        settings=settings(), role="control", prune=False, ca_file=h, trust_anchor=h), [
        Fragment("#!", r"umask", variables=lambda h: {
            "ca": ["stdin-secret\nsecond line"], "ca_file": [h], "anchor": [h]})]),
    "tls-trust-remove": Case("tls-trust-remove.sh.j2", lambda h: dict(
        settings=settings(), trust_anchor=h, tls_dir=h), [
        Fragment(r"anchor=", r"rm -f", variables=lambda h: {"anchor": [h]}),
        Fragment(r"rm -rf", r"update-ca", stubs=("rm",), calls=lambda h: [["-rf", h]])]),
    "cib-layout": Case("cib-layout.sh.j2", lambda h: dict(
        tag=h, ids=[], commands=[["resource", "create", h, "systemd:unit", f"p={h}"],
                                 ["constraint", "location", h, "avoids", h]],
        needs_databases=[h], databases_made=h), [
        Fragment(r"needs_databases=", r"pushed=", stubs=("shadow",),
                 variables=lambda h: {"needs_databases": [h]},
                 calls=lambda h: [["resource", "meta", h, "target-role=Stopped"]]),
        Fragment("#!", r"target=\(pcs\)", variables=lambda h: {"tag": [h]}),
        Fragment(r"shadow ", r"# What needs the OpenStack databases", stubs=("shadow",),
                 prelude="force=(--force)",
                 calls=lambda h: [["resource", "create", h, "systemd:unit", f"p={h}", "--force"],
                                  ["constraint", "location", h, "avoids", h]])]),
    "openstack-install": Case("openstack-install.sh.j2", lambda h: dict(
        settings=settings(), node=NS(name="ctl1", ip=h), started_marker=h,
        plan=NS(family="debian", role="control", packages=[h, "keystone"], run_units=[h],
                cluster_units=[h], idle_units=[h], preseed=h, release_package=None,
                facts=["interface"], keystone_keys=False, horizon_site=False,
                files=[ConfigFile(h, "ini", h, ((h, h),)), ConfigFile(h, "shell", h),
                       ConfigFile(h, "whole", h, mode=h, group=h, reload="systemd")]),
        edits=[Edit(h, h, h, "set", h, h, False)], restarts=[Restart(h, (h,), (h,))]), [
        Fragment(r"packages=\(", r"$", variables=lambda h: {
            "packages": [h, "keystone"], "run_units": [h], "cluster_units": [h],
            "idle_units": [h], "started_marker": [h]}),
        Fragment(r"  preseed=", r"  debconf-set-selections",
                 variables=lambda h: {"preseed": [h]}),
        Fragment(r"node_ip=", r"value\[FACT", variables=lambda h: {"node_ip": [h]}),
        Fragment(r"merge ", r"# ---- the repoint",
                 stubs=("merge", "whole", "was_changed", "systemctl"),
                 # A file's text is trimmed of surrounding blank lines.
                 calls=lambda h: [[h, "ini", h.strip(), h, h], [h, "shell", h.strip()],
                                  [h, h, h, h.strip()], [h], ["daemon-reload"]]),
        Fragment(r"edit ", r"# These files", stubs=("edit",),
                 calls=lambda h: [[h, h, h, "set", h, h, "no"]]),
        Fragment(r"rm -f ", r"# ---- units", stubs=("rm",), prelude="root=",
                 calls=lambda h: [["-f", h + ".openstack-ha-orig"]])]),
    "openstack-start": Case("openstack-start.sh.j2", lambda h: dict(
        run_units=[h, "keystone"], idle_units=[h], started_marker=h, apis=[h, "10.0.0.1:5000"]), [
        Fragment("#!", r"for unit", variables=lambda h: {
            "run_units": [h, "keystone"], "idle_units": [h], "started_marker": [h],
            "apis": [h, "10.0.0.1:5000"]})]),
    "openstack-bootstrap": Case("openstack-bootstrap.sh.j2", lambda h: dict(
        settings=settings(keystone=NS(admin_user=h, admin_project=h, region=h)),
        services=defaultdict(bool, keystone=True), databases_plan=h, catalogue_plan=h, keystone_units=[h],
        identity_url=h, needs_databases=[h], databases_made=h), [
        Fragment(r"needs_databases=", None, stubs=("dirname", "mkdir", "touch", "pcs"),
                 variables=lambda h: {"needs_databases": [h], "databases_made": [h]},
                 calls=lambda h: [["--", h], ["-p", ""], [h],
                                  ["resource", "meta", h, "target-role=Started"]]),
        Fragment(r"databases_plan=", r"elapsed\(\)", variables=lambda h: {
            "databases_plan": [h], "catalogue_plan": [h], "keystone_units": [h]}),
        Fragment(r"  OS_BOOTSTRAP_PASSWORD=", r"fi$", stubs=("runuser",), prelude="admin_password=pw",
                 calls=lambda h: [["-u", "keystone", "--", "keystone-manage", "bootstrap",
                                   "--bootstrap-username", h, "--bootstrap-project-name", h,
                                   "--bootstrap-region-id", h, "--bootstrap-admin-url", h,
                                   "--bootstrap-internal-url", h, "--bootstrap-public-url", h]])]),
    "cluster-users": Case("cluster-users.sh.j2", lambda h: dict(
        settings=settings(), init_file=h, mysql_host=h, definitions=h, definitions_conf=h), [
        Fragment("#!", r"# The files", variables=lambda h: {
            "bundle": ["stdin-secret\nsecond line"], "init_file": [h], "mysql_host": [h],
            "definitions": [h], "definitions_conf": [h]})]),
    "ceph-mon": Case("ceph-mon.sh.j2", lambda h: dict(
        node_name=h, ceph=dict(fsid=h, pool=h, user=h), monitors=[(h, h, h)]), [
        Fragment(r"name=", r"dir=", variables=lambda h: {
            "name": [h], "fsid": [h], "pool": [h], "client": [f"client.{h}"], "monitors": [h],
            "addresses": [h], "manager_keys": [h]})]),
    "ceph-osd": Case("ceph-osd.sh.j2", lambda h: dict(
        node_name=h, osd_uuid=h, ceph=dict(pool=h, images=dict(pool=h, user=h)),
        wait_seconds=300), [
        Fragment(r"name=", r"work=", variables=lambda h: {
            "name": [h], "osd_uuid": [h], "pools": [h, h], "image_client": [f"client.{h}"],
            "image_pool": [h], "wait_seconds": ["300"]})]),
    "libvirt-ceph-secret": Case("libvirt-ceph-secret.sh.j2", lambda h: dict(
        secret_uuid=h, secret_xml=h), [
        Fragment(r"uuid=", r"work=", variables=lambda h: {"uuid": [h], "definition": [h]})]),
    "libvirt-ceph-secret-delete": Case("libvirt-ceph-secret-delete.sh.j2", lambda h: dict(
        secret_uuid=h), [Fragment(r"uuid=", r"if virsh", variables=lambda h: {"uuid": [h]})]),
    "cib-layout-delete": Case("cib-layout-delete.sh.j2", lambda h: dict(tag=h), [
        Fragment("#!", r"managed=", variables=lambda h: {"tag": [h]})]),
}


def lines_of(text: str, fragment: Fragment) -> str:
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if re.match(fragment.start, line))
    end = len(lines)
    if fragment.stop is not None:
        end = next((i for i in range(first + 1, len(lines))
                    if re.match(fragment.stop, lines[i].rstrip("\n"))), len(lines))
    return "".join(lines[first:end])


def run(fragment: Fragment, code: str, cwd: Path) -> tuple[list[list[str]], dict[str, list[str]]]:
    """Run `code` with the stand-ins; (recorded calls, the variables' values)."""
    calls_file, dump_file = cwd / "calls", cwd / "dump"
    stubs = "".join(f'{name}() {{ builtin printf \'%s\\0\' "$#" "$@" >> {calls_file}; }}\n'
                    for name in fragment.stubs)
    expected = fragment.variables("x")
    dump = "".join(f'builtin printf \'%s\\0\' "${{#{v}[@]}}" "${{{v}[@]}}" >> {dump_file}\n'
                   for v in expected)
    script = f"set -euo pipefail\n{stubs}{fragment.prelude}\n{code}\nset +u\n{dump}"
    result = subprocess.run(["bash", "-c", script], input=fragment.stdin, cwd=cwd,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return (split_counted(calls_file.read_text() if calls_file.exists() else ""),
            dict(zip(expected, split_counted(dump_file.read_text() if dump_file.exists()
                                             else ""))))


def split_counted(recorded: str) -> list[list[str]]:
    """NUL-separated groups, each led by its own length."""
    fields, groups = recorded.split("\0")[:-1], []
    while fields:
        count = int(fields[0])
        groups.append(fields[1:1 + count])
        fields = fields[1 + count:]
    return groups


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_value_arrives_as_data(case, value, tmp_path):
    spec = CASES[case]
    text = render(spec.template, **spec.context(value))
    parsed = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    assert spec.fragments
    for index, fragment in enumerate(spec.fragments):
        work = tmp_path / str(index)
        work.mkdir()
        calls, variables = run(fragment, lines_of(text, fragment), work)
        assert not (work / "MARKER").exists(), f"fragment {index} ran the value as code"
        assert calls == fragment.calls(value), f"fragment {index}"
        assert variables == fragment.variables(value), f"fragment {index}"


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_the_local_authorize_commands_keep_a_hostile_value_as_data(value, tmp_path):
    """They run on the operator's machine: run them whole, on files under tmp_path."""
    keys = tmp_path / value.replace("/", "_") / "authorized_keys"
    hypervisor = NS(name=value, fence_user=value, authorized_keys_file=str(keys))
    # The line is the stack's public key and its name, each one line (tls, Pulumi).
    word = value if "\n" not in value else "one-line"
    marker = f"osha-fence:{word}"
    line = f"ssh-ed25519 AAAA{word} {marker}"
    create = render("fencing-authorize-create.sh.j2", hypervisor=hypervisor, line=line,
                    marker=marker, print_host_key=False)
    for _ in range(2):  # a second run adds nothing
        result = subprocess.run(["bash", "-c", create], cwd=tmp_path, capture_output=True,
                                text=True)
        assert result.returncode == 0 and result.stdout == "", result.stderr
    assert keys.read_text() == f"{line}\n"
    with keys.open("a") as other:
        other.write("ssh-ed25519 AAAAother somebody-else\n")
    delete = render("fencing-authorize-delete.sh.j2", hypervisor=hypervisor, marker=marker)
    result = subprocess.run(["bash", "-c", delete], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert keys.read_text() == "ssh-ed25519 AAAAother somebody-else\n"
    assert not (tmp_path / "MARKER").exists()
