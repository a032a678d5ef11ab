"""The lab's hypervisor-side artifacts, checked without booting anything (part of `make test`).

The lab must hand the stack's own files to libvirt unchanged: the cloud-init seed verbatim, and
a domain XML that the stack's XSLT turns into exactly one shareable, uncached raw disk.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab import vms
from lab.hypervisor import STATE_DIR

LAB = Path(__file__).resolve().parents[2] / "lab"


@pytest.fixture(scope="module")
def lab_stack(rendered):
    out = rendered("lab")
    return out, json.loads((out / "manifest.json").read_text())


def resource(manifest: dict, name: str) -> dict:
    return next(r for r in manifest["resources"] if r["name"] == name)


def transformed_domain(out: Path, manifest: dict, node: dict, tmp_path: Path) -> ET.Element:
    """The XML the lab defines for `node`: its own domain XML through the stack's XSLT."""
    shared = STATE_DIR / resource(manifest, "shared-disk-volume")["inputs"]["name"]
    plain = tmp_path / f"{node['name']}-plain.xml"
    plain.write_text(vms.domain_xml(node, Path("/image"), tmp_path / "root.qcow2",
                                    tmp_path / "seed.iso", shared if node["shared_disk"] else None,
                                    manifest["network"]["name"]))
    xslt = out / resource(manifest, f"{node['name']}-domain")["files"]["xslt"]
    return ET.fromstring(subprocess.run(["xsltproc", str(xslt), str(plain)], capture_output=True,
                                        text=True, check=True).stdout)


def test_only_the_shared_disk_becomes_shareable_and_uncached(lab_stack, tmp_path):
    out, manifest = lab_stack
    for node in manifest["nodes"]:
        domain = transformed_domain(out, manifest, node, tmp_path)
        disks = domain.findall("devices/disk[@device='disk']")
        shared = [d for d in disks if d.find("shareable") is not None]
        assert len(shared) == (1 if node["shared_disk"] else 0), node["name"]
        for disk in shared:
            assert disk.find("driver").attrib["type"] == "raw"
            assert disk.find("driver").attrib["cache"] == "none"
        root = next(d for d in disks if d.find("target").attrib["dev"] == "vda")
        assert root.find("shareable") is None
        assert root.find("driver").attrib["type"] == "qcow2"


def test_domains_are_software_emulated_with_a_small_translation_cache(lab_stack, tmp_path):
    out, manifest = lab_stack
    domain = transformed_domain(out, manifest, manifest["nodes"][0], tmp_path)
    assert domain.attrib["type"] == "qemu"
    assert domain.find("cpu") is None
    assert domain.find("features/tcg/tb-cache").text == str(vms.TB_CACHE_MIB)


def test_domains_attach_to_the_stacks_network_with_the_rendered_mac(lab_stack, tmp_path):
    out, manifest = lab_stack
    for node in manifest["nodes"]:
        interfaces = transformed_domain(out, manifest, node, tmp_path).findall("devices/interface")
        assert [(i.find("source").attrib["network"], i.find("mac").attrib["address"])
                for i in interfaces] == [(manifest["network"]["name"], node["mac"])]


@pytest.mark.skipif(not shutil.which("genisoimage") or not shutil.which("isoinfo"),
                    reason="genisoimage (with isoinfo) is not installed")
def test_seed_iso_holds_the_rendered_cloud_init_files_verbatim(lab_stack, tmp_path):
    out, manifest = lab_stack
    node = manifest["nodes"][0]
    seed = resource(manifest, f"{node['name']}-cloudinit")
    iso = vms.seed_iso(out, seed, tmp_path / "seed.iso")
    volume = subprocess.run(["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True,
                            check=True).stdout
    assert "Volume id: cidata" in volume
    for role, path in seed["files"].items():
        carried = subprocess.run(["isoinfo", "-R", "-i", str(iso), "-x", f"/{role}"],
                                 capture_output=True, text=True, check=True).stdout
        assert carried == (out / path).read_text(), role


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_image_builder_passes_shellcheck():
    subprocess.run(["shellcheck", str(LAB / "build-image.sh")], check=True)
