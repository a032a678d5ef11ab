#!/bin/bash
# The lab's local apt repository: the packages the stack's install step asks for on the lab's
# nodes (given as arguments: openstack_packages.py for the lab stack, lab/session.py) and every
# dependency the lab rootfs (the first argument: build-rootfs.sh's directory) does not hold,
# downloaded on this machine from Debian's mirror, then indexed with dpkg-scanpackages. The nodes
# have no route out: they mount it read-only at /srv/osha-repo, their only apt source. Cached by
# content: named after a hash of this script, the rootfs and the package names.
# Prints the repository's directory.
set -euo pipefail
cache=${OSHA_LAB_CACHE:-/var/cache/openstack-ha-lab}
mirror=${OSHA_LAB_MIRROR:-http://deb.debian.org/debian}
rootfs=$1
shift
key=$( (cat "$0"; echo "$rootfs"; printf '%s\n' "$@" | sort -u) | sha256sum | cut -c1-16)
out=$cache/repo-$key
if [ -f "$out/Packages" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
started=$SECONDS
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/dpkg" "$work/parts" "$work/repo"
# apt resolves against the rootfs's installed packages (a copy of its dpkg status) and the
# rootfs's own source, with a private state and cache: this machine's apt is left alone.
cp "$rootfs/root/var/lib/dpkg/status" "$work/dpkg/status"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" \
  > "$work/sources.list"
apt=(apt-get -qq -o "Dir::State::status=$work/dpkg/status" -o "Dir::State::Lists=$work/lists"
  -o "Dir::State::extended_states=$work/extended_states" -o "Dir::Cache=$work/cache"
  -o "Dir::Cache::archives=$work/archives" -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=$work/parts" -o "Dir::Etc::Preferences=$work/preferences"
  -o "Dir::Etc::PreferencesParts=$work/parts" -o "Debug::NoLocking=true"
  -o "APT::Sandbox::User=root")
"${apt[@]}" update >&2
"${apt[@]}" install -y --download-only --no-install-recommends "$@" >&2
find "$work/archives" -maxdepth 1 -name '*.deb' -exec mv -t "$work/repo/" {} +
(cd "$work/repo" && dpkg-scanpackages -m . > Packages 2> /dev/null && gzip -9k Packages)
chmod -R a+rX "$work/repo"
mv "$work/repo" "$out"
echo "lab repository built in $((SECONDS - started))s: $(find "$out" -name '*.deb' | wc -l)" \
  "packages, $(du -sm "$out" | cut -f1) MiB" >&2
echo "$out"
