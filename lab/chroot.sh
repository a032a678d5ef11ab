# shellcheck shell=bash
# Sourced by the lab's build scripts: a work directory in the cache holding a chroot at $root,
# whose kernel filesystems are unmounted and work directory removed however the script ends.

# chroot_workspace CACHE: sets `work` and `root` (not created yet: debootstrap or cp makes it).
chroot_workspace() {
  mkdir -p "$1"
  work=$(mktemp -d "$1/build.XXXXXX")
  root=$work/root
  trap chroot_cleanup EXIT
  trap 'exit 130' INT TERM
}

# chroot_mount: the kernel filesystems apt's maintainer scripts need, and no service start.
chroot_mount() {
  mount -t proc proc "$root/proc"
  mount -t sysfs sys "$root/sys"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
}

chroot_unmount() {
  local mount
  for mount in dev/pts dev sys proc; do
    if mountpoint -q "$root/$mount"; then umount "$root/$mount"; fi
  done
}

chroot_cleanup() {
  chroot_unmount
  rm -rf "$work"
}
