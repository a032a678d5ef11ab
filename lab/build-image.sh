#!/bin/bash
# Builds the lab's Debian 12 image: kernel, initrd and a qcow2 root holding every package the
# stack's debian family installs, so the lab VMs never need a network. Cached by content: the
# output directory is named after a hash of this script, the package lists and the lab units.
# Prints the directory holding vmlinuz, initrd.img and root.qcow2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cache=${OSHA_LAB_CACHE:-/var/cache/openstack-ha-lab}
mirror=${OSHA_LAB_MIRROR:-http://deb.debian.org/debian}
key=$(cat "$0" "$repo/templates/packages/debian.txt" "$here/image-packages.txt" "$here"/units/* \
  "$here"/apache/* | sha256sum | cut -c1-16)
out=$cache/image-$key
if [ -f "$out/root.qcow2" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
root=$work/root
cleanup() {
  for mount in proc sys dev/pts dev; do
    mountpoint -q "$root/$mount" && umount -l "$root/$mount"
  done
  rm -rf "$work"
}
trap cleanup EXIT
started=$SECONDS

packages() { grep -hv '^#' "$@" | grep -v '^$' | tr '\n' ' '; }

debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# No service starts inside the build.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# shellcheck disable=SC2046 # one word per package
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  $(packages "$here/image-packages.txt" "$repo/templates/packages/debian.txt") >&2
rm -f "$root/usr/sbin/policy-rc.d"

install -m 0644 "$here"/units/*.service "$root/etc/systemd/system/"
# Keystone served by Apache (lab/apache/keystone.conf), not by Debian's uwsgi unit.
install -m 0644 "$here/apache/keystone.conf" "$root/etc/apache2/sites-available/keystone.conf"
chroot "$root" a2enmod -q wsgi >&2
chroot "$root" a2ensite -q keystone >&2
# Only Pacemaker starts the clustered services. Debian's sample corosync.conf stays: the
# stack's own prep step deals with it, as on any Debian node. Apache (keystone) starts at boot,
# listening on every address as a non-HA install leaves it; Debian's uwsgi keystone stays off.
chroot "$root" systemctl disable corosync pacemaker haproxy mariadb rabbitmq-server keystone >&2
chroot "$root" systemctl enable apache2 >&2
chroot "$root" systemctl enable systemd-networkd pcsd >&2
cat > "$root/etc/cloud/cloud.cfg.d/90-lab.cfg" <<'CFG'
# The lab seeds every VM from a NoCloud ISO and renders its network with systemd-networkd.
datasource_list: [NoCloud, None]
system_info:
  network:
    renderers: [networkd]
CFG
# Under software emulation pcsd answers slower than pcs's 60 s default, and `pcs cluster setup`
# takes no --request-timeout: the lab's pcs waits longer (production keeps the default).
sed -i 's/^default_request_timeout = 60$/default_request_timeout = 600/' \
  "$root"/usr/lib/python3/dist-packages/pcs/settings.py
grep -q '^default_request_timeout = 600$' "$root"/usr/lib/python3/dist-packages/pcs/settings.py
echo '/dev/vda / ext4 defaults 0 1' > "$root/etc/fstab"
# Every VM makes its own host keys and machine id on first boot.
rm -f "$root"/etc/ssh/ssh_host_* "$root/etc/machine-id"
touch "$root/etc/machine-id"
chroot "$root" apt-get clean

cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
for mount in dev/pts dev sys proc; do umount "$root/$mount"; done
mkfs.ext4 -q -L root -d "$root" "$work/root.raw" 6G
qemu-img convert -O qcow2 "$work/root.raw" "$work/root.qcow2"
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.img" "$work/root.qcow2" "$out/"
chmod -R a+rX "$out"
echo "lab image built in $((SECONDS - started))s" >&2
echo "$out"
