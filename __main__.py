"""openstack-ha: a highly available OpenStack control plane on libvirt.

Reads the stack config into one validated Settings object, then wires the components.
"""
import pulumi

import settings as stack_settings
from components.block_storage import (CephCluster, CephClusterArgs, LibvirtCephSecret,
                                      LibvirtCephSecretArgs)
from components.cluster import Cluster, ClusterArgs
from components.cluster_resources import ClusterResources, ClusterResourcesArgs
from components.credentials import Credentials, CredentialsArgs
from components.endpoints import Endpoints, EndpointsArgs
from components.fencing import Fencing, FencingArgs
from components.haproxy import Haproxy, HaproxyArgs
from components.hypervisor import HypervisorSite, HypervisorSiteArgs
from components.maintenance import Maintenance, MaintenanceArgs
from components.node import ClusterNode, ClusterNodeArgs
from components.openstack import (OpenStackBootstrap, OpenStackBootstrapArgs, OpenStackInstall,
                                  OpenStackInstallArgs, OpenStackSecrets, OpenStackSecretsArgs,
                                  admin_openrc, dashboard_url)
from components.rolling_restart import RollingRestart, RollingRestartArgs
from components.shared_disk import SharedDisk, SharedDiskArgs
from components.stack_facts import StackFacts, StackFactsArgs
from components.tls import StackTls, StackTlsArgs

try:
    settings = stack_settings.from_pulumi(pulumi.get_stack())
except stack_settings.SettingsError as error:
    # Stop before any resource is registered, with the message and no traceback.
    raise pulumi.RunError(str(error)) from None

credentials = Credentials("credentials", CredentialsArgs(settings))
sites = {h.name: HypervisorSite(h.name, HypervisorSiteArgs(settings, h))
         for h in settings.hypervisors}
shared_disk = SharedDisk(
    "shared-disk", SharedDiskArgs(settings),
    pulumi.ResourceOptions(provider=sites[settings.controls[0].hypervisor].provider))
controls = [ClusterNode(n.name, ClusterNodeArgs(settings, n, sites[n.hypervisor], credentials,
                                                 shared_disk)) for n in settings.controls]
computes = [ClusterNode(n.name, ClusterNodeArgs(settings, n, sites[n.hypervisor], credentials))
            for n in settings.computes]
cluster = Cluster("cluster", ClusterArgs(settings, controls, credentials))
fencing = Fencing("fencing", FencingArgs(settings, controls, credentials))
# With openstack.install packages: every node gets the distribution's OpenStack (control nodes
# after their cluster packages), configured for the cluster and left stopped.
openstack_secrets = OpenStackSecrets("openstack-secrets", OpenStackSecretsArgs(
    settings, credentials)) if settings.openstack.installs else None
openstack_install = OpenStackInstall("openstack-install", OpenStackInstallArgs(
    settings, controls, computes, openstack_secrets, cluster.prep)) if openstack_secrets else None
installed = list(openstack_install.installed.values()) if openstack_install else []
# With blockStorage.backend ceph: the Ceph cluster cinder-volume keeps volumes in, up before
# Pacemaker first starts cinder-volume.
ceph = CephCluster("ceph", CephClusterArgs(
    settings, controls, openstack_secrets.bundle, openstack_install.installed)) \
    if openstack_install and settings.block_storage.backend == "ceph" else None
# TLS material and HAProxy's config are in place before Pacemaker first starts the services
# that read them; Apache moves off the VIP's ports after the install put it there.
stack_tls = StackTls("tls", StackTlsArgs(settings, controls + computes, [cluster.formed])) \
    if settings.tls_enabled else None
tls_installed = stack_tls.installed if stack_tls else []
haproxy = Haproxy("haproxy", HaproxyArgs(settings, controls,
                                         [cluster.formed, *tls_installed, *installed]))
cluster_resources = ClusterResources(
    "cluster-resources",
    ClusterResourcesArgs(settings, controls, cluster, fencing, shared_disk, credentials,
                         [*haproxy.installed, *tls_installed, *installed,
                          *(ceph.ready if ceph else [])]))
# Once MySQL and the broker run at the VIP: databases, keystone, every node's services.
openstack_bootstrap = OpenStackBootstrap("openstack", OpenStackBootstrapArgs(
    settings, controls, computes, openstack_secrets, openstack_install,
    [cluster_resources, *haproxy.installed])) if openstack_install else None
started = openstack_bootstrap.started if openstack_bootstrap else []
# Compute nodes attaching the volumes through libvirt: cinder's client key as a libvirt secret.
if openstack_bootstrap and settings.attaches_volumes_with_libvirt:
    LibvirtCephSecret("ceph-secret", LibvirtCephSecretArgs(
        settings, computes, openstack_secrets.bundle, openstack_bootstrap.started_on))
# The repoint runs once the layout (VIP, HAProxy, MySQL, broker) is up and the services run.
endpoints = Endpoints("endpoints", EndpointsArgs(
    settings, controls, computes, [cluster_resources, *haproxy.installed, *started],
    credentials.keystone_admin_password))
# What the install or the repoint changed under running services restarts one node at a time,
# each drained from HAProxy first.
rolling_restart = RollingRestart("rolling-restart", RollingRestartArgs(
    settings, controls + computes, endpoints.repointed,
    openstack_install.installed if openstack_install else {}))
# Control nodes in or out of maintenance, as the setting lists them.
Maintenance("maintenance", MaintenanceArgs(settings, controls,
                                           list(rolling_restart.restarted.values())))
# What the policy pack in policy/ checks the resources against.
StackFacts("facts", StackFactsArgs(settings, controls, shared_disk,
                                   cluster_resources.layout))

pulumi.export("vip", str(settings.vip))
pulumi.export("vipFqdn", settings.vip_fqdn)
pulumi.export("nodes", {
    node.spec.name: {"role": node.spec.role, "ip": str(node.spec.ip), "domain": node.domain_name,
                     "hostKey": node.host_public_key,
                     "ssh": f"ssh -i {settings.stack}-admin.key {settings.admin_user}@{node.spec.ip}"}
    for node in controls + computes})
pulumi.export("domains", [node.domain_name for node in controls + computes])
pulumi.export("adminPrivateKey", pulumi.Output.secret(credentials.admin_private_key))
if openstack_bootstrap:
    pulumi.export("adminOpenrc", admin_openrc(settings, credentials.keystone_admin_password))
    pulumi.export("dashboardUrl", dashboard_url(settings))
if stack_tls:
    # What clients off the nodes trust the APIs by (openrc's OS_CACERT names the nodes' copy).
    pulumi.export("caCertificate", stack_tls.ca_cert_pem)
