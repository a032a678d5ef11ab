"""openstack-ha: a highly available OpenStack control plane on libvirt.

Reads the stack config into one validated Settings object, then wires the components.
"""
import pulumi

import settings as stack_settings
from components.cluster import Cluster, ClusterArgs
from components.cluster_resources import ClusterResources, ClusterResourcesArgs
from components.credentials import Credentials, CredentialsArgs
from components.endpoints import Endpoints, EndpointsArgs
from components.fencing import Fencing, FencingArgs
from components.haproxy import Haproxy, HaproxyArgs
from components.hypervisor import HypervisorSite, HypervisorSiteArgs
from components.node import ClusterNode, ClusterNodeArgs
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
# TLS material and HAProxy's config are in place before Pacemaker first starts the services
# that read them; the repoint runs once the layout (VIP, HAProxy, MySQL, broker) is up.
stack_tls = StackTls("tls", StackTlsArgs(settings, controls, [cluster.formed])) \
    if settings.tls_enabled else None
tls_installed = stack_tls.installed if stack_tls else []
haproxy = Haproxy("haproxy", HaproxyArgs(settings, controls, [cluster.formed, *tls_installed]))
cluster_resources = ClusterResources(
    "cluster-resources",
    ClusterResourcesArgs(settings, controls, cluster, fencing, shared_disk,
                         [*haproxy.installed, *tls_installed]))
endpoints = Endpoints("endpoints", EndpointsArgs(
    settings, controls, computes, [cluster_resources, *haproxy.installed]))
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
