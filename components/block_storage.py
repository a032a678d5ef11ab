"""Block storage: cinder-volume's Ceph backend (`blockStorage`), and glance's images with the
stack's own Ceph.

- `ceph_facts`: what the config files and steps say about Ceph (None without a backend): with
  backend `ceph` a cluster the stack runs on the control nodes, with `rbd` one of the user's.
- `ceph_keys`: the cephx keys backend `ceph` generates once (pulumi-random): the monitors',
  the admin's, each node's manager and OSD, cinder's client and glance's. Every monitor is made
  from the same keys and monmap, so the monitors form one quorum without anything copied between
  nodes.
- `CephCluster` (backend `ceph`): per control node `<node>-ceph-mon` after its OpenStack install
  (the packages and /etc/ceph/ceph.conf), then `<node>-ceph-osd` once every monitor is made:
  its manager, its OSD (bluestore on a file), the volumes pool, and glance's images pool and
  client.
- `LibvirtCephSecret` (either backend, compute nodes with a libvirt driver): cinder's client key
  as a libvirt secret, once the node's libvirtd runs.
cinder-volume itself is a Pacemaker resource (components/cluster_units.py).
"""
from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_random as random

from components.node import ClusterNode
from components.templating import render
from settings import PROJECT, Node, Settings

GIB = 1024 ** 3
# cinder-volume's `backend_host`: the one name its volumes are served under, wherever it runs.
VOLUME_HOST = "cluster"
CLIENT_KEYRING = "/etc/ceph/openstack-ha-volumes.keyring"
# glance's images with the stack's own Ceph (Settings.images_in_ceph): its pool, its client, the
# key that client acts with (readable by glance's group).
IMAGE_POOL, IMAGE_USER = "images", "glance"
IMAGE_KEYRING = "/etc/ceph/openstack-ha-images.keyring"
# Bluestore's cache per OSD (Ceph's default is 4 GiB, more than a control node spares).
OSD_MEMORY_BYTES = GIB
# How long an OSD step waits for the monitors' quorum and for its own OSD to be up.
CEPH_WAIT_SECONDS = 300
# cephx's key encoding: type 1 (AES), a creation time (left 0), 16 secret bytes.
_CEPHX_HEADER = struct.pack("<HIIH", 1, 0, 0, 16)


def cephx_key(secret_base64: str) -> str:
    """A cephx key (what `ceph-authtool --gen-print-key` prints) around 16 random bytes."""
    return base64.b64encode(_CEPHX_HEADER + base64.b64decode(secret_base64)).decode()


def ceph_fsid(settings: Settings) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PROJECT}/{settings.stack}/ceph"))


def osd_uuid(settings: Settings, node: Node) -> str:
    """The OSD's uuid: `ceph osd new` hands the same id back for it on every run."""
    return str(uuid.uuid5(uuid.UUID(ceph_fsid(settings)), node.name))


def libvirt_secret_uuid(settings: Settings) -> str:
    """The uuid of the libvirt secret holding cinder's client key on compute nodes."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PROJECT}/{settings.stack}/libvirt-ceph-secret"))


def ceph_facts(settings: Settings) -> Optional[dict[str, Any]]:
    storage = settings.block_storage
    if not storage.enabled:
        return None
    runs_cluster = storage.backend == "ceph"
    controls = settings.controls
    facts = {"runs_cluster": runs_cluster, "user": storage.user, "pool": storage.pool,
             "client_keyring": CLIENT_KEYRING, "volume_host": VOLUME_HOST,
             "secret_uuid": libvirt_secret_uuid(settings),
             "monitors": [str(n.ip) for n in controls] if runs_cluster else list(storage.monitors)}
    if runs_cluster:
        facts.update(fsid=ceph_fsid(settings), monitor_names=[n.name for n in controls],
                     network=str(settings.network.cidr), pool_size=min(3, len(controls)),
                     pool_min_size=2 if len(controls) >= 3 else 1,
                     osd_size_bytes=storage.osd_size_gib * GIB, osd_memory_bytes=OSD_MEMORY_BYTES)
    facts["images"] = ({"pool": IMAGE_POOL, "user": IMAGE_USER, "keyring": IMAGE_KEYRING}
                       if settings.images_in_ceph else None)
    return facts


def mgr_key(node: Node) -> str:
    return f"ceph_mgr_{node.name}"


def osd_key(node: Node) -> str:
    return f"ceph_osd_{node.name}"


def ceph_keys(settings: Settings, parent: pulumi.Resource) -> dict[str, pulumi.Output]:
    """{secret name: cephx key}: cinder's client key (the cephClientKey secret with backend
    rbd), and with backend ceph every key the cluster needs (glance's with glance-api on)."""
    backend = settings.block_storage.backend
    if backend == "rbd":
        return {"ceph_client": settings.secrets["cephClientKey"]}
    if backend != "ceph":
        return {}
    names = ["ceph_client", "ceph_mon", "ceph_admin",
             *(["ceph_images"] if settings.images_in_ceph else []),
             *(f(n) for n in settings.controls for f in (mgr_key, osd_key))]
    return {name: random.RandomBytes(f"{name.replace('_', '-')}-key", length=16,
                                     opts=pulumi.ResourceOptions(parent=parent)).base64.apply(
                                         cephx_key) for name in names}


@dataclass
class CephClusterArgs:
    settings: Settings
    controls: list[ClusterNode]
    # secret name -> bundle of those secrets on stdin (OpenStackSecrets.bundle)
    bundle: Any
    # Per control node, its OpenStack install: the Ceph packages and /etc/ceph/ceph.conf.
    installed: dict[str, pulumi.Resource]


class CephCluster(pulumi.ComponentResource):
    """`ready`: every node's OSD step; the volumes pool exists once they are done."""

    def __init__(self, name: str, args: CephClusterArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:CephCluster", name, None, opts)
        s = args.settings
        facts = ceph_facts(s)
        monitors = [n.spec for n in args.controls]
        mon_steps = [node.step(
            f"{node.spec.name}-ceph-mon", parent=self, depends_on=[args.installed[node.spec.name]],
            create=render("ceph-mon.sh.j2", node_name=node.spec.name, ceph=facts,
                          monitors=[(m.name, str(m.ip), mgr_key(m)) for m in monitors]),
            stdin=args.bundle(["ceph_client", "ceph_mon", "ceph_admin",
                               *(mgr_key(m) for m in monitors)]))
            for node in args.controls]
        self.ready = [node.step(
            f"{node.spec.name}-ceph-osd", parent=self, depends_on=mon_steps,
            create=render("ceph-osd.sh.j2", node_name=node.spec.name, ceph=facts,
                          osd_uuid=osd_uuid(s, node.spec), wait_seconds=CEPH_WAIT_SECONDS),
            stdin=args.bundle([mgr_key(node.spec), osd_key(node.spec),
                               *(["ceph_images"] if facts["images"] else [])]))
            for node in args.controls]
        self.register_outputs({"fsid": facts["fsid"]})


@dataclass
class LibvirtCephSecretArgs:
    settings: Settings
    computes: list[ClusterNode]
    # secret name -> bundle of those secrets on stdin (OpenStackSecrets.bundle)
    bundle: Any
    # Per compute node, its start step (libvirtd runs once it is done).
    started_on: dict[str, pulumi.Resource]


def libvirt_secret_xml(settings: Settings) -> str:
    facts = ceph_facts(settings)
    return render("libvirt-ceph-secret.xml.j2", uuid=facts["secret_uuid"], user=facts["user"])


class LibvirtCephSecret(pulumi.ComponentResource):
    """Per compute node with a libvirt driver, `<node>-ceph-secret`: cinder's client key as the
    libvirt secret qemu attaches the volumes with (nova's and cinder's rbd_secret_uuid)."""

    def __init__(self, name: str, args: LibvirtCephSecretArgs,
                 opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:LibvirtCephSecret", name, None, opts)
        secret_uuid = libvirt_secret_uuid(args.settings)
        self.defined = [node.step(
            f"{node.spec.name}-ceph-secret", parent=self,
            depends_on=[args.started_on[node.spec.name]],
            create=render("libvirt-ceph-secret.sh.j2", secret_uuid=secret_uuid,
                          secret_xml=libvirt_secret_xml(args.settings)),
            delete=render("libvirt-ceph-secret-delete.sh.j2", secret_uuid=secret_uuid),
            stdin=args.bundle(["ceph_client"]))
            for node in args.computes]
        self.register_outputs({"uuid": secret_uuid})
