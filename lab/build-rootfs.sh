#!/bin/bash
# Builds the lab's Debian 12 root filesystem once per machine: every package the stack's debian
# family installs (templates/packages/debian.txt) plus the lab's extras (rootfs-packages.txt),
# then the layers lab/rootfs.d/*.sh, in name order (see lab/rootfs.d/README). No OpenStack
# service is installed: the stack's own install step installs them on the nodes, from the local
# repository (lab/build-repo.sh) that is the rootfs's only apt source. Containers boot overlays
# of it read-only; the VM image (build-image.sh) is derived from it. Cached by content: the
# directory is named after a hash of this script, the package lists and the layers.
# Prints the directory holding root/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/chroot.sh
source "$here/chroot.sh"
repo=$(dirname "$here")
cache=${OSHA_LAB_CACHE:-/var/cache/openstack-ha-lab}
mirror=${OSHA_LAB_MIRROR:-http://deb.debian.org/debian}
shopt -s nullglob
layers=("$here"/rootfs.d/*.sh)
key=$(cat "$0" "$here/chroot.sh" "$repo/templates/packages/debian.txt" "$here/rootfs-packages.txt" \
  "${layers[@]}" | sha256sum | cut -c1-16)
out=$cache/rootfs-$key
if [ -f "$out/done" ]; then
  echo "$out"
  exit 0
fi
chroot_workspace "$cache"
started=$SECONDS

packages() { grep -hv '^#' "$@" | grep -v '^$' | tr '\n' ' '; }
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
chroot_mount
# Postinst scripts that resolve the machine's FQDN (nova-common, cinder-common) need it here.
printf '127.0.0.1 localhost\n127.0.1.1 osha-lab-build.osha.internal osha-lab-build\n' > "$root/etc/hosts"
echo osha-lab-build > "$root/etc/hostname"
# shellcheck disable=SC2046 # one word per package
in_root apt-get install -y -q --no-install-recommends \
  $(packages "$here/rootfs-packages.txt" "$repo/templates/packages/debian.txt") >&2

# Only Pacemaker starts the clustered services. Debian's sample corosync.conf stays: the
# stack's own prep step deals with it, as on any Debian node.
in_root systemctl disable corosync pacemaker haproxy mariadb rabbitmq-server >&2
in_root systemctl enable pcsd >&2
# A container has no guest-agent channel: the stack's runcmd starts the agent, which then skips
# itself instead of failing on its channel's device (the VM image removes this override).
cat > "$root/etc/systemd/system/qemu-guest-agent.service" <<'UNIT'
[Unit]
Description=QEMU Guest Agent (containers have no guest-agent channel)
ConditionVirtualization=!container

[Service]
ExecStart=-/usr/sbin/qemu-ga
UNIT
# A container's /proc/sys is read-only but for its own network settings, so systemd skips
# sysctl.d at boot: apply what a container may set (the stack's net.ipv4 settings), as a VM does.
mkdir -p "$root/etc/systemd/system/systemd-sysctl.service.d"
printf '[Unit]\nConditionPathIsReadWrite=\n' \
  > "$root/etc/systemd/system/systemd-sysctl.service.d/lab.conf"
cat > "$root/etc/cloud/cloud.cfg.d/90-lab.cfg" <<'CFG'
# Every lab node is seeded from NoCloud (a seed directory in containers, an ISO in VMs).
datasource_list: [NoCloud, None]
CFG
for layer in "${layers[@]}"; do
  echo "layer $(basename "$layer")" >&2
  OSHA_LAB_ROOT=$root bash "$layer" >&2
done
rm -f "$root/usr/sbin/policy-rc.d"
# A throw-away lab node: dpkg skips fsync and the documentation (the OpenStack install on the
# nodes takes about a third less time; copyright files stay).
cat > "$root/etc/dpkg/dpkg.cfg.d/osha-lab" <<'DPKG'
force-unsafe-io
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
DPKG
# The nodes have no route out: their only apt source is the lab's local repository
# (build-repo.sh), mounted read-only at /srv/osha-repo.
rm -f "$root/etc/apt/sources.list.d/"*
echo 'deb [trusted=yes] file:/srv/osha-repo ./' > "$root/etc/apt/sources.list"
# Every node makes its own host keys and machine id, and gets its name from its seed.
rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/machine-id" "$root/var/lib/dbus/machine-id" \
  "$root/etc/hostname"
touch "$root/etc/machine-id"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
in_root apt-get clean
rm -rf "$root/var/lib/apt/lists/"*
chroot_unmount
mkdir -p "$out"
mv "$root" "$out/root"
touch "$out/done"
echo "lab rootfs built in $((SECONDS - started))s" >&2
echo "$out"
