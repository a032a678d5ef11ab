"""No setting value becomes code: a property over every string the stack's settings hold.

The keys come from the schema itself (`schema_paths`): every value of every section, list entry
and map (`controlNodes.nodes[i].name`, `hypervisors[i].hostKey`, `cluster.singletons[i].unit`,
`tags.<name>`, the secrets, ...), every map key, and a key name of one's own in every mapping (an
unknown key). Three full stack configs (`BASES`: a RHEL stack with TLS and RHSM, three remote
hypervisors with iSCSI, a Debian stack with Ceph RBD and fence_xvm) hold each of them at least
once, which `test_every_string_setting_is_drawn` checks: a new setting joins the property once a
base holds it.

Each example draws one hostile value per key of one base (shell syntax that would create the file
MARKER with builtins alone if it ran, quotes, XML and YAML syntax, non-ASCII, control characters,
a leading '-', very long text, or such a fragment inside the key's ordinary value) and requires:

- each value alone in the base: either `settings.parse` refuses it with a SettingsError whose
  problems are one printable line each, never show a secret, and name exactly that key path (a
  value of the key's own type may be refused by a rule relating keys, naming the others); or
- all the accepted values of the example in one render (`tools/render` under Pulumi's mocks),
  in which every script passes `bash -n` and runs without creating MARKER (`Sandbox`: as nobody,
  every external command a stub that records and fails, nothing writable but its work directory;
  a script whose text and stdin are the base render's carries no hostile value and is run once, by
  `test_each_base_renders_and_runs_cleanly`); every XML text parses (`xmllint`); every cloud-init
  file parses as YAML, has the base render's shape and carries each accepted value whole wherever
  the base render carried the value it replaced; and no secret value appears outside stdin, the
  secret seed (user-data) and the SSH connection's key.

The `ci` Hypothesis profile (tests/conftest.py) makes runs reproducible; HYPOTHESIS_PROFILE=explore
searches longer, at random.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
import typing
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Iterator, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from typing_extensions import is_typeddict

import settings
from components.node import ROOT_PROLOGUE
from settings_schema import key_path, unwrap
from tests.conftest import stack_config
from tools import render

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "setpriv", "findmnt",
                                                           "xmllint")),
    reason="the sandbox needs root, unshare, setpriv and findmnt; XML checks need xmllint")

MARKER = "MARKER"
NOBODY = 65534

# ---- the keys, from the schema ------------------------------------------------------------------

INDEX, ENTRY_KEY, ENTRY_VALUE, NEW_KEY = "[i]", "<key>", "<value>", "<new key>"


def schema_paths(annotation: Any = settings.Settings, path: tuple = ()) -> Iterator[tuple]:
    """(abstract key path, the type there) of every value a config of `annotation` holds: INDEX
    stands for any list entry, ENTRY_KEY / ENTRY_VALUE for a map's keys and values, NEW_KEY for a
    key of one's own in a mapping of fixed keys."""
    kind = unwrap(annotation)
    origin = typing.get_origin(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        yield path + (NEW_KEY,), str
        for field in kind.model_fields.values():
            yield from schema_paths(field.annotation, path + (field.alias,))
    elif is_typeddict(kind):
        yield path + (NEW_KEY,), str
        for name, hint in typing.get_type_hints(kind, include_extras=True).items():
            yield from schema_paths(hint, path + (name,))
    elif origin in (tuple, list):
        yield from schema_paths(typing.get_args(kind)[0], path + (INDEX,))
    elif origin is dict:
        key_type, value_type = typing.get_args(kind)
        yield path + (ENTRY_KEY,), key_type
        yield from schema_paths(value_type, path + (ENTRY_VALUE,))
    else:
        yield path, annotation


def is_text(kind: Any) -> bool:
    """A setting written as a string."""
    kind = unwrap(kind)
    if typing.get_origin(kind) is Literal:
        return all(isinstance(a, str) for a in typing.get_args(kind))
    return kind in (str, SecretStr, IPv4Address, IPv4Network)


# Each string setting's abstract key path, and what its own type accepts.
TEXT_PATHS = {path: TypeAdapter(kind) for path, kind in schema_paths() if is_text(kind)}


@dataclass(frozen=True)
class Rename:
    """The last step of a key path that replaces the name of an existing map key."""

    key: str


@dataclass(frozen=True)
class Added:
    """The last step of a key path that adds a key of one's own to a mapping."""


def concrete(abstract: tuple, node: Any, done: tuple = ()) -> Iterator[tuple]:
    """The key paths of `node` (a raw config) that `abstract` stands for."""
    if not abstract:
        yield done
        return
    head, rest = abstract[0], abstract[1:]
    if head == INDEX:
        for index, item in enumerate(node if isinstance(node, list) else []):
            yield from concrete(rest, item, done + (index,))
    elif head == ENTRY_KEY:
        if isinstance(node, dict) and node:
            yield done + (Rename(next(iter(node))),)
    elif head == ENTRY_VALUE:
        for key, value in (node.items() if isinstance(node, dict) else []):
            yield from concrete(rest, value, done + (key,))
    elif head == NEW_KEY:
        if isinstance(node, dict):
            yield done + (Added(),)
    elif isinstance(node, dict) and head in node:
        yield from concrete(rest, node[head], done + (head,))


def keys_of(config: dict) -> list[tuple[tuple, TypeAdapter]]:
    """Each string key path of `config`, with its type."""
    return [(path, kind) for abstract, kind in TEXT_PATHS.items()
            for path in concrete(abstract, config)]


def fits(kind: TypeAdapter, value: str) -> bool:
    try:
        kind.validate_python(value)
    except ValidationError:
        return False
    return True


def value_at(config: dict, path: tuple) -> Any:
    node = config
    for step in path[:-1]:
        node = node[step]
    last = path[-1]
    return last.key if isinstance(last, Rename) else "key" if isinstance(last, Added) \
        else node[last]


def with_value(config: dict, path: tuple, value: str) -> dict | None:
    """`config` with `value` at `path`; None when a key named `value` is there already."""
    changed = copy.deepcopy(config)
    node = changed
    for step in path[:-1]:
        node = node[step]
    last = path[-1]
    if isinstance(last, (Rename, Added)):
        if value in node:
            return None
        node[value] = node.pop(last.key) if isinstance(last, Rename) else "x"
    else:
        node[last] = value
    return changed


def named(path: tuple, value: str) -> str:
    """The key path as a problem names it, `value` standing for a key renamed or added."""
    return key_path((*path[:-1], value if isinstance(path[-1], (Rename, Added)) else path[-1]))


# ---- the configs the hostile values go into ------------------------------------------------------

HOST_KEY = render.stand_in_stdout("hostile", "hypervisor").strip() + " root@hypervisor"
SECRETS = {"haclusterPassword": "hacluster-Secret-7f3a", "keystoneAdminPassword":
           "keystone-Secret-c01d", "mysqlRootPassword": "mysql-Secret-5e9b",
           "brokerPassword": "broker-Secret-2a64", "rhsmPassword": "rhsm-Secret-91c2",
           "cephClientKey": "AQBceph+Secret/4e1a==",
           "adminSshPrivateKey": render.config_secret("hostile", "adminSshPrivateKey")}


def rhel_tls_rhsm() -> tuple[str, dict]:
    """dev with every key given: RHEL, qpid, TLS, RHSM, every secret, count plans, the image
    carrying OpenStack."""
    return "dev", stack_config(
        "dev", hypervisors=[{"name": "local", "uri": "qemu:///system", "fenceAddress": "10.20.0.1",
                             "fenceUser": "fenceop",
                             "authorizedKeysFile": "/home/fenceop/.ssh/authorized_keys",
                             "hostKey": HOST_KEY}],
        network={"name": "osha-dev", "cidr": "10.20.0.0/24", "gateway": "10.20.0.1",
                 "mode": "nat", "domain": "osha.internal"},
        controlNodes={"count": 3, "firstIp": "10.20.0.11", "namePrefix": "ctl"},
        computeNodes={"count": 1, "firstIp": "10.20.0.21", "namePrefix": "cmp"},
        vipName="openstack", adminUser="opsadmin",
        cluster={"name": "osha", "haproxyLayout": "clone", "broker": "qpid",
                 "brokerLayout": "clone", "sharedDir": "/var/lib/openstack-ha", "singletons": [
                     {"name": "neutron-l2-agent", "unit": "neutron-openvswitch-agent"},
                     {"name": "ceilometer-central", "unit": "openstack-ceilometer-central"}],
                 "tcpKeepalive": {"time": 60, "intvl": 10, "probes": 6}},
        fencing={"enabled": True, "agent": "fence_virsh", "delayBaseSeconds": 0,
                 "action": "off"},
        tls={"enabled": True, "requireMysqlTls": True},
        keystone={"region": "RegionOne", "adminUser": "admin", "adminProject": "admin",
                  "openrcFile": "/root/keystonerc_admin"},
        tags={"environment": "dev", "owner": "platform-team"},
        openstack={"install": "none"},
        services={"horizon": True, "heat": False},
        rhsmUsername="rhsm-user",
        **{k: v for k, v in SECRETS.items() if k not in ("brokerPassword", "cephClientKey")})


def remote_iscsi() -> tuple[str, dict]:
    """multihost: three remote hypervisors, a bridge, explicit node lists, iSCSI, the openrc
    file instead of a keystone password."""
    raw = stack_config("multihost", libvirtUri="qemu+ssh://root@kvm1.lan/system",
                       adminUser="osha", vipName="api", tags={"environment": "staging"},
                       services={"cinder": True},
                       keystone={"region": "RegionTwo", "adminUser": "cloud-admin",
                                 "adminProject": "ops", "openrcFile": "/root/openrc"},
                       **{k: v for k, v in SECRETS.items()
                          if k not in ("keystoneAdminPassword", "rhsmPassword", "cephClientKey")})
    raw["hypervisors"][1].update(fenceUser="fencer",
                                 authorizedKeysFile="/var/lib/fencer/authorized_keys")
    return "multihost", raw


def debian_rbd() -> tuple[str, dict]:
    """debian: Debian's zed installed by the stack, RabbitMQ, TLS, the group layouts, Ceph RBD
    for MySQL's disk and cinder's volumes, fence_xvm, a node in maintenance."""
    raw = stack_config("debian", sharedStorage={"kind": "rbd", "filesystem": "ext4", "source": {
        "pool": "rbd", "image": "osha-mysql", "monitors": ["10.20.0.5:6789", "ceph2.lan"],
        "hostDevice": "/dev/rbd/rbd/osha-mysql"}},
        blockStorage={"backend": "rbd", "monitors": ["10.20.0.5:6789", "ceph2.lan"],
                      "pool": "volumes", "user": "osha-volumes"},
        tls={"enabled": True}, storagePool="images", vip="10.20.0.10",
        fencing={"agent": "fence_xvm"}, maintenance=["ctl2"],
        **{k: v for k, v in SECRETS.items() if k != "rhsmPassword"})
    raw["cluster"].update(haproxyLayout="group", brokerLayout="group")
    raw["network"]["gateway"] = "10.20.0.1"
    return "debian", raw


BASES = {"rhel-tls-rhsm": rhel_tls_rhsm, "remote-iscsi": remote_iscsi, "debian-rbd": debian_rbd}


@cache
def base(name: str) -> tuple[str, dict]:
    return BASES[name]()


@cache
def base_graph(name: str) -> render.Graph:
    stack, raw = base(name)
    return render.run_program(copy.deepcopy(raw), stack)


# ---- hostile values -----------------------------------------------------------------------------

# Each creates ~/MARKER with shell builtins alone if any part of the value runs as shell code.
RUNS = [f"$(:>~/{MARKER})", f"`:>~/{MARKER}`", f";:>~/{MARKER}", f"\n:>~/{MARKER}\n",
        f"&&:>~/{MARKER}", f"||:>~/{MARKER}", f"|:>~/{MARKER}", f"&:>~/{MARKER}",
        f"'$(:>~/{MARKER})'", f"\"$(:>~/{MARKER})\"", f"';:>~/{MARKER};'",
        f"\";:>~/{MARKER};\"", f"\\';:>~/{MARKER} #", f"\r\n:>~/{MARKER}",
        f"x)\n:>~/{MARKER}\n#", f"${{IFS}}:>~/{MARKER}", f"\nEOF\n:>~/{MARKER}\n"]
# Syntax of the other kinds, and what terminals, parsers and option parsers choke on.
SYNTAX = ["'", '"', "\\", "`", "$", "$HOME", "${x}", "*", "?", "[a]", "{a,b}", "~", "!", "#",
          " ", "\t", "<", ">", "&", "&amp;", "]]>", "<!--", "<![CDATA[", "<x/>", "\"'<>&",
          "{{ 7*7 }}", "{% raw %}", "%s%n", ": ", "- ", "? ", "*alias", "&anchor",
          "!!python/object/apply:os.system [':']", "---", "...", "\x00", "\x1b[2J", "\x7f",
          "\r", "\x0b", "\x85", "\u2028", "\ufeff", "\u202e", "é", "Ω", "\U0001f600", "ｓ",
          "-", "--", "-rf", "--help", "=", ",", "(", ")", "%"]
METACHARACTERS = "'\"\\`$(){}[]<>|&;*?!#~%=,: \t\n\r-"

FRAGMENTS = st.one_of(st.sampled_from(RUNS), st.sampled_from(SYNTAX),
                      st.text(alphabet=METACHARACTERS, min_size=1, max_size=6),
                      st.text(min_size=1, max_size=3))


FORMS = ("alone", "after", "before", "inside", "dash", "long")


@st.composite
def hostile(draw, ordinary: str, forms: tuple[str, ...] = FORMS) -> str:
    """A hostile value, alone or worked into the key's `ordinary` value."""
    form = draw(st.sampled_from(forms))
    if form == "dash":
        return "-" + ordinary
    fragment = draw(FRAGMENTS)
    if form == "after":
        return ordinary + fragment
    if form == "before":
        return fragment + ordinary
    if form == "inside":
        cut = draw(st.integers(0, len(ordinary)))
        return ordinary[:cut] + fragment + ordinary[cut:]
    if form == "long":
        return ordinary + fragment * draw(st.integers(256, 4096))
    return fragment


# ---- a refusal ----------------------------------------------------------------------------------

def assert_clean_refusal(error: settings.SettingsError, path: tuple, value: str,
                         fits_its_type: bool) -> None:
    """Every problem is one printable line naming a key, never showing a secret; each names
    exactly `path` unless the value is of the key's type (then a rule relating keys refused it,
    and may name the others: a hypervisor renamed leaves the nodes placed on it dangling)."""
    key = f"{settings.PROJECT}:{named(path, value)}: "
    secret = path[0] in settings.SECRET_KEYS and len(path) == 1
    assert error.problems and "Traceback" not in str(error)
    for problem in error.problems:
        assert fits_its_type or problem.startswith(key), (key, problem)
        assert problem.startswith(f"{settings.PROJECT}:"), problem
        assert " is invalid; " in problem and problem.isprintable(), problem
        # A secret is shown as [secret], and the remedy does not quote it (a short value such as
        # "'" may stand in any text).
        assert not secret or (problem.startswith(f"{key}[secret] is invalid; ") and (
            len(value) < 8 or value not in problem)), problem


# ---- a render -----------------------------------------------------------------------------------

def documents(found: list[render.Artifact]) -> list[tuple[str, Any]]:
    """(resource/role, the parsed document) of every cloud-init file."""
    return [(f"{a.resource}/{a.role}", yaml.safe_load(a.text)) for a in found if a.kind == "yaml"]


def shape(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: shape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [shape(v) for v in node]
    return type(node).__name__


def leaves(node: Any, where: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(where, value) of every scalar in nested dicts and lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, where + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, where + (index,))
    else:
        yield where, node


def is_key_material(text: Any) -> bool:
    """Keys the stack derives from resource names: a renamed node gets other ones."""
    return isinstance(text, str) and text.startswith(("-----BEGIN", "ssh-ed25519 "))


def assert_yaml_carries_values(graph: render.Graph, found: list[render.Artifact],
                               before: render.Graph, replaced: dict[str, str]) -> None:
    """Each cloud-init file parses, has the base render's shape, and every string that changed
    holds an accepted value whole where the base's held the value it replaced (`replaced`:
    ordinary -> hostile)."""
    renamed = {f"{new.name}-": f"{old.name}-" for new, old in zip(graph.settings.nodes,
                                                                  before.settings.nodes)}

    def base_name(name: str) -> str:
        """The base render's name of a node's file (`<node>-cloudinit/<part>`)."""
        node = name.split("-cloudinit/")[0] + "-"
        return renamed[node] + name[len(node):]

    now, then = documents(found), dict(documents(render.artifacts_of(before)))
    assert sorted(base_name(n) for n, _ in now) == sorted(then)
    for name, document in now:
        original = then[base_name(name)]
        assert shape(document) == shape(original), name
        for (where, text), (_, old) in zip(leaves(document), leaves(original)):
            if text == old or is_key_material(old):
                continue
            carried = [new for ordinary, new in replaced.items()
                       if isinstance(old, str) and ordinary in old and new in str(text)]
            assert carried, (name, where, old, text)
            assert old not in replaced or text == replaced[old], (name, where, text)


# Where a secret may be: a Command's stdin, and the key an SSH connection logs in with.
SECRET_PLACES = {("stdin",), ("connection", "privateKey")}
COMMAND_TEXT = ("create", "update", "delete", "environment", "triggers")


def assert_secrets_stay_secret(graph: render.Graph, found: list[render.Artifact]) -> None:
    """No secret value outside stdin, the secret seed and the connection's key: not in any
    other artifact, command text or input the program did not mark secret, nor in an output."""
    secrets = graph.secret_values()
    assert secrets
    for artifact in found:
        if not artifact.secret:
            leaked = [s for s in secrets if s in artifact.text]
            assert not leaked, (artifact.resource, artifact.role)
    for registration in graph.registrations:
        for where, text in leaves(registration.inputs):
            leaked = [s for s in secrets if isinstance(text, str) and s in text]
            if not leaked or where in SECRET_PLACES:
                continue
            assert registration.type not in (render.REMOTE, render.LOCAL) or \
                where[0] not in COMMAND_TEXT, (registration.name, where)
            assert text in graph.secret_inputs, (registration.name, where)
    for where, text in leaves(graph.outputs):
        assert not [s for s in secrets if isinstance(text, str) and s in text], where


def assert_xml_parses(found: list[render.Artifact], work: Path) -> None:
    files = []
    for index, artifact in enumerate(a for a in found if a.kind == "xml"):
        files.append(work / f"{index}.xml")
        files[-1].write_text(artifact.text)
    assert files
    result = subprocess.run(["xmllint", "--noout", *map(str, files)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


# ---- running the scripts ------------------------------------------------------------------------

# No external command runs: PATH holds one stub per command this machine has, and the shell's
# handler takes every other name; both record the call and fail.
STUB = """#!/bin/sh
echo "${0##*/}" >> "$OSHA_CALLS"
exit 1
"""
# BASH_ENV of every script; `cat` without arguments copies stdin with builtins (read_secret reads
# a secret so).
STUBS = r"""
command_not_found_handle() {
  builtin echo "$1" >> "$OSHA_CALLS"
  return 1
}
cat() {
  if [ "$#" -eq 0 ]; then
    local data=''
    IFS= read -r -d '' data || true
    builtin printf '%s' "$data"
  else
    command_not_found_handle cat "$@"
  fi
}
"""
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# Runs as root in fresh mount, network, PID, IPC and UTS namespaces: every mount but the work
# directory turns read-only, then each script runs as nobody, in the work directory, with the
# stubs, its stdin and a time limit, as many at once as there are CPUs.
DRIVER = r"""
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
work=$1 stubs=$2
mount --make-rprivate /
mount --bind "$work" "$work"
findmnt -rn -o TARGET | while read -r target; do
  case $target in
    "$work"|/proc|/proc/*|/sys|/sys/*|/dev|/dev/pts) ;;
    *) mount -o remount,bind,ro "$target" 2>/dev/null || true ;;
  esac
done
as_nobody=(/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs
           --inh-caps=-all --bounding-set=-all)
for outside in /tmp /var/tmp /dev/shm "$stubs"; do
  if "${as_nobody[@]}" /bin/bash -c ": > $outside/osha-sandbox-probe" 2>/dev/null; then
    printf 'the sandbox can write to %s\n' "$outside" >&2
    exit 3
  fi
done
run() {
  local name=$1 rc=0 stdin=$work/scripts/$1.stdin
  /bin/bash -n "$work/scripts/$name.sh" 2>"$work/runs/$name.syntax" || rc=$?
  echo "$rc" > "$work/runs/$name.syntax-rc"
  [ -e "$stdin" ] || stdin=/dev/null
  rc=0
  PATH=$stubs/bin HOME=$work/home BASH_ENV=$stubs/stubs.sh OSHA_CALLS=$work/calls/$name \
      "${as_nobody[@]}" /usr/bin/timeout 30 /bin/bash -c "$(< "$work/scripts/$name.sh")" \
      < "$stdin" > "$work/runs/$name.out" 2> "$work/runs/$name.err" || rc=$?
  echo "$rc" > "$work/runs/$name.rc"
}
cd "$work/home"
running=0
for script in "$work"/scripts/*.sh; do
  if [ "$running" -ge "$(nproc)" ]; then
    wait -n
    running=$((running - 1))
  fi
  name=${script##*/}
  run "${name%.sh}" &
  running=$((running + 1))
done
wait
"""


@dataclass
class Run:
    label: str
    syntax_rc: int
    syntax: str
    rc: int
    stdout: str
    stderr: str
    calls: list[str]


class Sandbox:
    """Runs scripts with no external command, as nobody, where nothing but a fresh work
    directory is writable and no network exists (`DRIVER`)."""

    def __init__(self, root: Path):
        self.root = root
        (root / "bin").mkdir()
        (root / "stub").write_text(STUB)
        (root / "stub").chmod(0o755)
        (root / "stubs.sh").write_text(STUBS)
        for directory in SYSTEM_PATH:
            for entry in os.scandir(directory) if os.path.isdir(directory) else ():
                stub = root / "bin" / entry.name
                if os.access(entry.path, os.X_OK) and not stub.exists():
                    stub.symlink_to(root / "stub")

    def run(self, scripts: dict[str, tuple[str, str | None]]) -> tuple[list[Run], list[Path]]:
        """Each script (label: text, stdin) run: what it did, and every MARKER made."""
        work = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))
        try:
            work.chmod(0o755)
            for part in ("scripts", "runs", "home", "calls"):
                (work / part).mkdir()
            for part in ("home", "calls"):
                os.chown(work / part, NOBODY, NOBODY)
            names = {}
            for index, (label, (text, stdin)) in enumerate(scripts.items()):
                names[f"{index:03d}"] = label
                (work / "scripts" / f"{index:03d}.sh").write_text(text)
                if stdin:
                    (work / "scripts" / f"{index:03d}.stdin").write_text(stdin)
            subprocess.run(["env", "-i", "unshare", "--mount", "--net", "--pid", "--ipc", "--uts",
                            "--fork", "--mount-proc", "bash", "-c", DRIVER, "driver", str(work),
                            str(self.root)], check=True, timeout=600)
            runs = [Run(label, int(self._read(work, f"runs/{name}.syntax-rc")),
                        self._read(work, f"runs/{name}.syntax"),
                        int(self._read(work, f"runs/{name}.rc")),
                        self._read(work, f"runs/{name}.out"), self._read(work, f"runs/{name}.err"),
                        self._read(work, f"calls/{name}").splitlines())
                    for name, label in names.items()]
            return runs, sorted(work.rglob(f"*{MARKER}*"))
        finally:
            shutil.rmtree(work)

    @staticmethod
    def _read(work: Path, relative: str) -> str:
        path = work / relative
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
def sandbox():
    root = Path(tempfile.mkdtemp(prefix="osha-hostile-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield Sandbox(root)
    finally:
        shutil.rmtree(root)


def scripts_of(graph: render.Graph, found: list[render.Artifact]) -> dict[str, tuple]:
    """Each script (`resource/role`: text without the root prologue, stdin)."""
    return {f"{a.resource}/{a.role}": (a.text.replace(ROOT_PROLOGUE, ""),
                                       graph.named(a.resource).inputs.get("stdin"))
            for a in found if a.kind == "shell"}


def assert_scripts_keep_values_as_data(sandbox: Sandbox, scripts: dict[str, tuple]) -> list[Run]:
    runs, markers = sandbox.run(scripts)
    assert not markers, [str(m) for m in markers]
    for run in runs:
        assert run.syntax_rc == 0, (run.label, run.syntax)
        assert run.rc not in (124, 137), (run.label, "timed out")
        assert "syntax error" not in run.stderr, (run.label, run.stderr)
    return runs


def assert_render_keeps_values_as_data(name: str, accepted: dict[tuple, str],
                                       sandbox: Sandbox) -> None:
    """The checks of the module's docstring on the base `name` with the `accepted` values.
    Scripts whose text and stdin are the base render's carry none of them and are not run
    again."""
    stack, raw = base(name)
    config = copy.deepcopy(raw)
    for path, value in accepted.items():
        config = with_value(config, path, value)
    graph = render.run_program(config, stack)
    found = render.artifacts_of(graph)
    before = set(scripts_of(base_graph(name), render.artifacts_of(base_graph(name))).values())
    changed = {label: script for label, script in scripts_of(graph, found).items()
               if script not in before}
    if changed:
        assert_scripts_keep_values_as_data(sandbox, changed)
    with tempfile.TemporaryDirectory() as work:
        assert_xml_parses(found, Path(work))
    replaced = {str(value_at(raw, path)): value for path, value in accepted.items()
                if not isinstance(path[-1], (Rename, Added))}
    assert_yaml_carries_values(graph, found, base_graph(name), replaced)
    assert_secrets_stay_secret(graph, found)


# ---- the tests ----------------------------------------------------------------------------------

def test_every_string_setting_is_drawn():
    """Each string setting of the schema is in at least one base, so it gets hostile values."""
    missing = [path for path in TEXT_PATHS
               if not any(list(concrete(path, base(n)[1])) for n in BASES)]
    assert not missing, missing


def test_the_sandbox_sees_code_run_and_keeps_the_machine_out_of_reach(sandbox):
    """The check can fail: a value run as code leaves MARKER; commands are recorded stubs; the
    rest of the machine is read-only; stdin reaches read_secret."""
    runs, markers = sandbox.run({
        "unquoted": (f"set -euo pipefail\nname=x$(:>~/{MARKER})\n", None),
        "outside": ("set -euo pipefail\n: > /tmp/osha-hostile-probe\n", None),
        "commands": ("set -euo pipefail\nsystemctl stop pacemaker\n", None),
        "unknown": ("set -euo pipefail\nno-such-command --now\n", None),
        "secret": ('set -euo pipefail\nsecret=$(cat)\nprintf %s "$secret"\n', "a\n$(:>M) b\n"),
        "broken": ("if then fi\n", None)})
    by_label = {run.label: run for run in runs}
    assert [m.name for m in markers] == [MARKER]
    assert by_label["outside"].rc != 0 and "Read-only file system" in by_label["outside"].stderr
    assert not Path("/tmp/osha-hostile-probe").exists()
    assert (by_label["commands"].rc, by_label["commands"].calls) == (1, ["systemctl"])
    assert (by_label["unknown"].rc, by_label["unknown"].calls) == (1, ["no-such-command"])
    assert by_label["secret"].stdout == "a\n$(:>M) b"
    assert by_label["broken"].syntax_rc != 0


@pytest.mark.parametrize("name", sorted(BASES))
def test_each_base_renders_and_runs_cleanly(name, sandbox):
    """Every script of each base, run whole in the sandbox, reaches its commands."""
    stack, raw = base(name)
    assert settings.parse(copy.deepcopy(raw), stack)
    graph = base_graph(name)
    runs = assert_scripts_keep_values_as_data(sandbox, scripts_of(graph, render.artifacts_of(graph)))
    assert sum(len(run.calls) > 0 for run in runs) > len(runs) // 2


@pytest.mark.parametrize("name", sorted(BASES))
@hypothesis_settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_hostile_value_is_refused_or_stays_data(name, data, sandbox):
    stack, raw = base(name)
    accepted = {}
    for path, kind in keys_of(raw):
        ordinary = str(value_at(raw, path))
        # A secret keeps its ordinary value's distinct text: found anywhere else, it leaked
        # (a bare fragment could stand in another key's value as well).
        forms = FORMS[1:] if path[0] in settings.SECRET_KEYS else FORMS
        value = data.draw(hostile(ordinary, forms), label=named(path, "<key>"))
        config = with_value(raw, path, value)
        if config is None:
            continue
        try:
            settings.parse(config, stack)
        except settings.SettingsError as error:
            assert_clean_refusal(error, path, value, not isinstance(
                path[-1], Added) and fits(kind, value))
        else:
            accepted[path] = value
    if not accepted:
        return
    try:
        assert_render_keeps_values_as_data(name, accepted, sandbox)
    except settings.SettingsError:
        # Values fine alone may conflict together (two keys naming one address, say).
        for path, value in accepted.items():
            assert_render_keeps_values_as_data(name, {path: value}, sandbox)
