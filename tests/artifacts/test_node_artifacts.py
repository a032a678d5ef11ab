"""The rendered cloud-init and shared-disk XSLT, checked by cloud-init, xsltproc and libvirt's schema."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

import settings
from components import shared_disk, templating
from manifest_schema import Manifest, Resource
from tests.conftest import stack_config
from tools.render import DOMAIN, SEED

STACKS = ["dev", "lab", "debian"]
POOL_PATH = "/var/lib/libvirt/images"


def resources_of(out: Path, type_token: str) -> list[Resource]:
    return [r for r in Manifest.load(out).resources if r.type == type_token]


def run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_passes_cloud_init_schema(rendered, stack):
    """The user-data as shipped, the node's SSH host key included (cloud-init 22.4, Debian 12)."""
    out = rendered(stack)
    seeds = resources_of(out, SEED)
    assert seeds
    for seed in seeds:
        user_data = out / seed.files["user-data"]
        result = run("cloud-init", "schema", "--config-file", str(user_data))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Valid cloud-config" in result.stdout
        host_keys = yaml.safe_load(user_data.read_text())["ssh_keys"]
        assert sorted(host_keys) == ["ed25519_private", "ed25519_public"]
        assert host_keys["ed25519_private"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


@pytest.mark.parametrize("stack", STACKS)
def test_network_config_converts_to_a_static_address(rendered, stack, tmp_path):
    """cloud-init's own converter turns each network-config into networkd units."""
    out = rendered(stack)
    manifest = Manifest.load(out)
    nodes = {f"{n.name}-cloudinit": n for n in manifest.nodes}
    for seed in resources_of(out, SEED):
        node = nodes[seed.name]
        target = tmp_path / node.name
        result = run("cloud-init", "devel", "net-convert", "--network-data",
                     str(out / seed.files["network-config"]), "--kind", "yaml",
                     "--distro", "debian", "--output-kind", "networkd", "--directory", str(target))
        assert result.returncode == 0, result.stderr
        units = "".join(p.read_text() for p in target.rglob("*.network"))
        assert f"Address={node.ip}/" in units and node.mac in units.lower()
        assert f"Gateway={manifest.network.gateway}" in units


def provider_domain_xml(domain: Resource) -> str:
    """The XML terraform-provider-libvirt writes for a Domain: pool volumes as file disks."""
    disks = []
    for index, disk in enumerate(domain.inputs["disks"]):
        volume = disk["volumeId"].removesuffix("-id")
        raw = volume == "shared-disk-volume"
        name = f"{domain.inputs['name'].split('-')[0]}-shared.raw" if raw else f"{volume}.qcow2"
        disks.append(f"""
    <disk type='file' device='disk'>
      <driver name='qemu' type='{"raw" if raw else "qcow2"}'/>
      <source file='{POOL_PATH}/{name}'/>
      <target dev='vd{chr(ord("a") + index)}' bus='virtio'/>
    </disk>""")
    nic = domain.inputs["networkInterfaces"][0]
    return f"""<domain type='kvm'>
  <name>{domain.inputs['name']}</name>
  <memory unit='MiB'>{domain.inputs['memory']}</memory>
  <vcpu>{domain.inputs['vcpu']}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>{''.join(disks)}
    <disk type='file' device='cdrom'>
      <source file='{POOL_PATH}/{domain.inputs['name']}-cloudinit.iso'/>
      <target dev='hdd' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='{nic['mac']}'/>
      <source network='osha'/>
      <model type='virtio'/>
    </interface>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
  </devices>
</domain>
"""


@pytest.mark.parametrize("stack", STACKS)
def test_xslt_marks_exactly_the_shared_disk_shareable(rendered, stack, tmp_path):
    out = rendered(stack)
    domains = [d for d in resources_of(out, DOMAIN) if "xslt" in d.files]
    assert len(domains) == len([n for n in Manifest.load(out).nodes if n.role == "control"])
    for domain in domains:
        source = tmp_path / f"{domain.name}.xml"
        source.write_text(provider_domain_xml(domain))
        result = run("xsltproc", str(out / domain.files["xslt"]), str(source))
        assert result.returncode == 0, result.stderr
        transformed = tmp_path / f"{domain.name}-out.xml"
        transformed.write_text(result.stdout)
        valid = run("virt-xml-validate", str(transformed), "domain")
        assert valid.returncode == 0, valid.stdout + valid.stderr
        disks = ET.fromstring(result.stdout).findall("./devices/disk")
        shareable = [d for d in disks if d.find("shareable") is not None]
        assert len(shareable) == 1
        (shared,) = shareable
        assert shared.find("source").get("file").endswith(f"{stack}-shared.raw")
        driver = shared.find("driver")
        assert (driver.get("type"), driver.get("cache")) == ("raw", "none")
        assert shared.findtext("serial") == "osha-shared"
        # Everything else survives untouched.
        assert len(disks) == len(ET.fromstring(source.read_text()).findall("./devices/disk"))
        assert ET.fromstring(result.stdout).find("./devices/interface/mac").get("address") == \
            domain.inputs["networkInterfaces"][0]["mac"]


# A host device holding every character XML or XPath could take for syntax.
HOSTILE_DEVICE = "/dev/disk/by-path/a\"b'c<d&e') or ('1'='1"


def test_xslt_keeps_a_hostile_host_device_as_data(tmp_path):
    """xsltproc on the stack's own XSLT: the disk with exactly that path is marked, no other.

    The settings refuse such a path; the template, rendered as SharedDisk renders it, does not
    rely on that."""
    config = stack_config("multihost", sharedStorage={"kind": "iscsi", "source": {
        "portal": "192.168.50.5:3260", "iqn": "iqn.2026-01.lan:x", "lun": 0,
        "hostDevice": HOSTILE_DEVICE}})
    with pytest.raises(settings.SettingsError, match=r"sharedStorage\.source\.hostDevice"):
        settings.parse(config, "multihost")
    xslt = tmp_path / "shared-disk.xsl"
    xslt.write_text(templating.render("shared-disk.xsl.j2", match=HOSTILE_DEVICE,
                                      serial=shared_disk.SERIAL))
    escaped = HOSTILE_DEVICE.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    source = tmp_path / "domain.xml"
    source.write_text(f"""<domain type='kvm'>
  <name>multihost-ctl1</name>
  <memory unit='MiB'>4096</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{POOL_PATH}/ctl1-root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <source dev="{escaped}"/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <source dev="/dev/disk/by-path/a"/>
      <target dev='vdc' bus='virtio'/>
    </disk>
  </devices>
</domain>
""")
    result = run("xsltproc", str(xslt), str(source))
    assert result.returncode == 0, result.stderr
    transformed = tmp_path / "out.xml"
    transformed.write_text(result.stdout)
    valid = run("virt-xml-validate", str(transformed), "domain")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    disks = ET.fromstring(result.stdout).findall("./devices/disk")
    shareable = [d.find("source").get("dev") for d in disks if d.find("shareable") is not None]
    assert shareable == [HOSTILE_DEVICE]
