#!/bin/sh
# The container's init: systemd, started in a name=systemd cgroup of the container's own.
#
# libvirt places a container in its machine cgroup for the resource controllers only; in the
# name=systemd hierarchy it stays at the root, so every container's systemd would build its unit
# tree in the same directories. One container removing system.slice/networking.service when its
# ifup ended, while another was starting its own, failed the second (status=219/CGROUP) and left
# that node without its address. A directory per container keeps their trees apart, as on
# separate machines.
set -eu
cgroup=/sys/fs/cgroup/systemd/${LIBVIRT_LXC_NAME:?libvirt names the container}
mkdir -p "$cgroup"
echo $$ > "$cgroup/cgroup.procs"
exec /sbin/init "$@"
