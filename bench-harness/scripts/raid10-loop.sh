#!/usr/bin/env bash
# A RAID10 volume over four loop devices, for benchmarking RAID10-class disks
# without the hardware. Root only.
#
#   raid10-loop.sh up <dir> [image size, default 2G]   # prints the mount point
#   raid10-loop.sh down <dir>                          # idempotent
#
# up: four sparse image files <dir>/.raid10-loop/img{0..3} -> loop devices
# (direct I/O where the kernel allows it, so writes reach the backing disk
# instead of being cached twice) -> md RAID10 (mdadm, ext4) when mdadm and
# the md driver are there, else one btrfs with `-d raid10 -m raid10`, mounted
# at <dir>/mnt. Missing tools (mdadm, btrfs-progs) are installed with apt-get,
# and the script says so. RAID10 here protects nothing: all four members sit
# on one disk; it reproduces the layout (striping + mirroring, 4 devices).
#
# down: unmount, stop the md array, detach the loop devices, delete the images.
#
# Example:
#   M=$(sudo bench-harness/scripts/raid10-loop.sh up /var/tmp/r10)
#   ferromq-bench sweep --dir "$M/bench" ...     # the report names the RAID level and members
#   sudo bench-harness/scripts/raid10-loop.sh down /var/tmp/r10
set -euo pipefail

MD_NAME=ferromq-bench-r10

die() { echo "raid10-loop: $*" >&2; exit 1; }
say() { echo "raid10-loop: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, mkfs, mount)"
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 up <dir> [size] | down <dir>"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
state=$dir/.raid10-loop
mnt=$dir/mnt

apt_install() {
    say "installing $* with apt-get (missing on this machine)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
    fi
}

md_available() {
    [ -e /proc/mdstat ] && return 0
    command -v modprobe >/dev/null 2>&1 && modprobe md_mod 2>/dev/null && [ -e /proc/mdstat ]
}

up() {
    local size=${1:-2G}
    if mountpoint -q "$mnt" 2>/dev/null; then
        say "already up"
        echo "$mnt"
        return
    fi
    command -v losetup >/dev/null || apt_install mount
    mkdir -p "$state" "$mnt"
    local mode
    if md_available; then
        mode=md
        command -v mdadm >/dev/null || apt_install mdadm
    elif grep -qw btrfs /proc/filesystems; then
        mode=btrfs
        command -v mkfs.btrfs >/dev/null || apt_install btrfs-progs
    else
        die "neither md (no /proc/mdstat, md_mod cannot be loaded) nor btrfs (not in /proc/filesystems) is available in this kernel"
    fi
    echo "$mode" >"$state/mode"
    : >"$state/loops"
    local devs=()
    for i in 0 1 2 3; do
        local img=$state/img$i
        rm -f "$img"
        truncate -s "$size" "$img"   # sparse
        local dev
        dev=$(losetup --find --show --direct-io=on "$img" 2>/dev/null) ||
            dev=$(losetup --find --show "$img")
        echo "$dev" >>"$state/loops"
        devs+=("$dev")
    done
    case $mode in
    md)
        mdadm --create "/dev/md/$MD_NAME" --run --level=10 --raid-devices=4 \
            --assume-clean "${devs[@]}" >&2
        echo "/dev/md/$MD_NAME" >"$state/md"
        # Initialize inode tables and journal now, not in the background during a benchmark.
        mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "/dev/md/$MD_NAME" >&2
        mount "/dev/md/$MD_NAME" "$mnt"
        ;;
    btrfs)
        mkfs.btrfs -q -f -d raid10 -m raid10 "${devs[@]}" >&2
        local opts=""
        for d in "${devs[@]}"; do opts="${opts:+$opts,}device=$d"; done
        mount -o "$opts" "${devs[0]}" "$mnt"
        ;;
    esac
    say "$mode RAID10 over ${devs[*]} (images in $state, $size each, sparse) mounted at $mnt"
    echo "$mnt"
}

down() {
    if mountpoint -q "$mnt" 2>/dev/null; then
        umount "$mnt"
    fi
    if [ -f "$state/md" ]; then
        local md
        md=$(cat "$state/md")
        if [ -e "$md" ]; then
            mdadm --stop "$md" >&2 || true
        fi
        rm -f "$state/md"
    fi
    # Detach every loop device backed by our images (also ones a failed `up` left).
    for i in 0 1 2 3; do
        local img=$state/img$i
        [ -e "$img" ] || continue
        losetup -j "$img" 2>/dev/null | cut -d: -f1 | while read -r dev; do
            [ -n "$dev" ] && losetup -d "$dev"
        done
        rm -f "$img"
    done
    rm -f "$state/loops" "$state/mode"
    rmdir "$state" 2>/dev/null || true
    rmdir "$mnt" 2>/dev/null || true
    say "down ($dir)"
}

case $cmd in
up) up "${3:-}" ;;
down) down ;;
*) die "unknown command '$cmd' (up or down)" ;;
esac
