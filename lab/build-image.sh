#!/bin/bash
# Derives the VM image (the `vms` substrate) from the lab rootfs (build-rootfs.sh, built first if
# missing): a copy of it plus a kernel, udev and an fstab, and the lab's package repository (the
# first argument: build-repo.sh's directory) at /srv/osha-repo, where containers mount it; then
# kernel, initrd and a qcow2 root. Cached by content: named after the rootfs, the repository and
# this script. Prints the directory holding vmlinuz, initrd.img and root.qcow2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/chroot.sh
source "$here/chroot.sh"
cache=${OSHA_LAB_CACHE:-/var/cache/openstack-ha-lab}
mirror=${OSHA_LAB_MIRROR:-http://deb.debian.org/debian}
repository=$1
rootfs=$(bash "$here/build-rootfs.sh")
key=$( (echo "$rootfs"; echo "$repository"; cat "$0" "$here/chroot.sh") | sha256sum | cut -c1-16)
out=$cache/image-$key
if [ -f "$out/root.qcow2" ]; then
  echo "$out"
  exit 0
fi
chroot_workspace "$cache"
started=$SECONDS
cp -a "$rootfs/root" "$root"
chroot_mount
# The kernel comes from Debian's mirror (the rootfs's own source is the lab repository).
cp "$root/etc/apt/sources.list" "$work/sources.list"
echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  linux-image-amd64 udev >&2
chroot "$root" apt-get clean
cp "$work/sources.list" "$root/etc/apt/sources.list"
rm -rf "$root/var/lib/apt/lists/"*
mkdir -p "$root/srv"
cp -a "$repository" "$root/srv/osha-repo"
# A VM has the guest-agent channel: Debian's own unit again.
rm "$root/etc/systemd/system/qemu-guest-agent.service"
rm -f "$root/usr/sbin/policy-rc.d"
# Under software emulation pcsd answers slower than pcs's 60 s default, and `pcs cluster setup`
# takes no --request-timeout: the VM image's pcs waits longer (production keeps the default).
sed -i 's/^default_request_timeout = 60$/default_request_timeout = 600/' \
  "$root"/usr/lib/python3/dist-packages/pcs/settings.py
grep -q '^default_request_timeout = 600$' "$root"/usr/lib/python3/dist-packages/pcs/settings.py
echo '/dev/vda / ext4 defaults 0 1' > "$root/etc/fstab"
cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
chroot_unmount
mkfs.ext4 -q -L root -d "$root" "$work/root.raw" 6G
qemu-img convert -O qcow2 "$work/root.raw" "$work/root.qcow2"
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.img" "$work/root.qcow2" "$out/"
chmod -R a+rX "$out"
echo "lab image built in $((SECONDS - started))s" >&2
echo "$out"
