"""The compute node's libvirt secret steps (templates/libvirt-ceph-secret*.sh.j2) run by bash
against a virsh stand-in that keeps its secrets in a directory: defined once, its value set only
when it differs, the key never in an argument, removed by the delete; every virsh command and
option they use is one the real virsh lists, and the definition passes libvirt's own schema."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

import settings
from components.block_storage import libvirt_secret_uuid, libvirt_secret_xml
from components.templating import render
from tests.conftest import stack_config

KEY = "AQBdpHpl" + "A" * 30 + "=="
# A virsh keeping each secret as DIR/<uuid>.xml and its value (base64, as given) in DIR/<uuid>.
VIRSH = r"""#!/bin/bash
printf '%s\n' "$*" >> "$OSHA_TEST_LOG"
[ "$1" = -q ] && shift
command=$1 uuid=$2
case $command in
  secret-define) uuid=$(sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' "$2"); cp "$2" "$OSHA_SECRETS/$uuid.xml" ;;
  secret-dumpxml) cat "$OSHA_SECRETS/$uuid.xml" 2>/dev/null || exit 1 ;;
  secret-get-value)
    # libvirt never reveals a private secret's value.
    grep -q "private=.yes" "$OSHA_SECRETS/$uuid.xml" && exit 1
    cat "$OSHA_SECRETS/$uuid" 2>/dev/null || exit 1 ;;
  secret-set-value)
    [ "$3" = --file ] && [ -e "$OSHA_SECRETS/$uuid.xml" ] || exit 1
    cp "$4" "$OSHA_SECRETS/$uuid" ;;
  secret-undefine) rm "$OSHA_SECRETS/$uuid.xml" "$OSHA_SECRETS/$uuid" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture()
def stack() -> settings.Settings:
    return settings.parse(stack_config("dev"), "dev")


@pytest.fixture()
def virsh(tmp_path):
    """run(phase, key): the step's phase by bash with the stand-in first on PATH; the calls."""
    bin_dir, secrets, log = tmp_path / "bin", tmp_path / "secrets", tmp_path / "log"
    bin_dir.mkdir()
    secrets.mkdir()
    (bin_dir / "virsh").write_text(VIRSH)
    (bin_dir / "virsh").chmod(0o755)

    def run(script: str, stdin: str = "") -> list[str]:
        log.write_text("")
        result = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True,
                                text=True, timeout=60,
                                env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                     "OSHA_TEST_LOG": str(log), "OSHA_SECRETS": str(secrets)})
        assert result.returncode == 0, result.stderr
        return log.read_text().splitlines()
    run.secrets = secrets
    return run


def scripts(stack: settings.Settings) -> tuple[str, str]:
    secret_uuid = libvirt_secret_uuid(stack)
    return (render("libvirt-ceph-secret.sh.j2", secret_uuid=secret_uuid,
                   secret_xml=libvirt_secret_xml(stack)),
            render("libvirt-ceph-secret-delete.sh.j2", secret_uuid=secret_uuid))


def commands(calls: list[str]) -> list[str]:
    return [call.split()[1] for call in calls]


def test_the_secret_is_defined_once_and_its_value_set_only_when_it_differs(stack, virsh):
    create, delete = scripts(stack)
    secret_uuid = libvirt_secret_uuid(stack)
    first = virsh(create, f"ceph_client={KEY}\n")
    assert commands(first) == ["secret-dumpxml", "secret-define", "secret-get-value",
                               "secret-set-value"]
    assert (virsh.secrets / secret_uuid).read_text() == KEY
    assert not [call for call in first if KEY in call]
    assert commands(virsh(create, f"ceph_client={KEY}\n")) == ["secret-dumpxml",
                                                                "secret-get-value"]
    assert commands(virsh(create, "ceph_client=AQB2\n")) == ["secret-dumpxml",
                                                             "secret-get-value",
                                                             "secret-set-value"]
    assert (virsh.secrets / secret_uuid).read_text() == "AQB2"
    assert commands(virsh(delete)) == ["secret-dumpxml", "secret-undefine"]
    assert not list(virsh.secrets.iterdir())
    assert commands(virsh(delete)) == ["secret-dumpxml"]


def test_the_definition_passes_libvirts_schema_and_names_cinders_user(stack, virsh, tmp_path):
    virsh(scripts(stack)[0], f"ceph_client={KEY}\n")
    (definition,) = virsh.secrets.glob("*.xml")
    result = subprocess.run(["virt-xml-validate", str(definition), "secret"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = definition.read_text()
    assert f"<uuid>{libvirt_secret_uuid(stack)}</uuid>" in text
    assert f"<name>client.{stack.block_storage.user} secret</name>" in text


def test_every_virsh_command_and_option_used_is_the_real_virshs(stack, virsh):
    create, delete = scripts(stack)
    calls = virsh(create, f"ceph_client={KEY}\n") + virsh(delete)
    for call in calls:
        words = call.split()
        assert words[0] == "-q"
        help_text = subprocess.run(["virsh", "help", words[1]], capture_output=True,
                                   text=True, check=True).stdout
        for option in (w for w in words[2:] if w.startswith("--")):
            assert re.search(rf"\s{re.escape(option)}\b", help_text), (words[1], option)
