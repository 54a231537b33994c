#!/usr/bin/env bash
# run-boot.sh: ctest entry e2e.boot: prepare guest images on the host, run boot.sh where KVM is.
# Usage: run-boot.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# Prepares: the boot guest's busybox initramfs, and an uncompressed ELF vmlinux extracted from
# the distro bzImage (for the PVH boot). L1 sees the host's root read-only, hence all of it here.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-boot.sh BUILD_DIR}" && pwd)

# The kernel version the harness boots as L1 and offers as guest (a skip, 77, if there is none).
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
bzimage=/boot/vmlinuz-$ver
mkdir -p "$build/e2e"

# extract_vmlinux BZIMAGE OUT: write the ELF vmlinux that BZIMAGE carries compressed. The payload
# sits after the real-mode setup and the decompressor stub, at an offset no header field gives
# portably, so try every occurrence of each format's magic and keep the first that decompresses
# to an ELF file. Prints which format and offset worked.
extract_vmlinux() {
    local img=$1 out=$2 spec pattern cmd off magic
    local candidate=$out.candidate
    # MAGIC (a grep -P pattern):DECOMPRESSOR. The payload is followed by more of the bzImage, which
    # the decompressors must ignore: xz stops after one stream; gzip and zstd complain, hence
    # their status is ignored and the ELF magic of the output decides.
    for spec in '\xfd7zXZ\x00:xz -dcq --single-stream' '\x28\xb5\x2f\xfd:zstd -dcq' \
        '\x1f\x8b\x08:gzip -dcq'; do
        pattern=${spec%%:*}
        cmd=${spec#*:}
        command -v "${cmd%% *}" >/dev/null || {
            echo "run-boot.sh: ${cmd%% *} not installed; not trying that format"
            continue
        }
        while read -r off; do
            # shellcheck disable=SC2086 # cmd is a command and its flags, split on purpose
            tail -c +$((off + 1)) "$img" | $cmd >"$candidate" 2>/dev/null || true
            magic=$(head -c 4 "$candidate" | od -An -tx1 | tr -d ' \n')
            if [[ $magic == 7f454c46 ]]; then
                mv "$candidate" "$out"
                echo "run-boot.sh: vmlinux: ${cmd%% *} payload at offset $off of $img"
                return 0
            fi
        done < <(LC_ALL=C grep -obUaP "$pattern" "$img" | cut -d: -f1)
    done
    rm -f "$candidate"
    return 1
}

# Extract once per kernel: the key is the bzImage's name, size and mtime.
vmlinux=$build/e2e/vmlinux-$ver
key=$(stat -L -c '%n %s %Y' "$bzimage")
if [[ ! -f $vmlinux || ! -f $vmlinux.key || $(cat "$vmlinux.key") != "$key" ]]; then
    rm -f "$vmlinux" "$vmlinux.key"
    if ! extract_vmlinux "$bzimage" "$vmlinux.tmp"; then
        echo "FAIL: run-boot.sh: no xz, zstd or gzip payload of $bzimage decompresses to ELF"
        exit 1
    fi
    mv "$vmlinux.tmp" "$vmlinux"
    echo "$key" >"$vmlinux.key"
fi
# The PVH entry is an ELF note (Xen's XEN_ELFNOTE_PHYS32_ENTRY, type 18). Without it kiln would
# enter the 64-bit e_entry instead, and the guest-side check in boot.sh fails; say early why.
if command -v readelf >/dev/null; then
    if readelf -n "$vmlinux" | grep -qE '^ *Xen .*\(0x00000012\)'; then
        echo "run-boot.sh: $vmlinux has the PVH entry note (Xen note type 18)"
    else
        echo "run-boot.sh: warning: readelf finds no PVH entry note (Xen note type 18) in $vmlinux"
    fi
fi

"$here/harness" guest-initramfs "$build/e2e/boot-guest.cpio.gz" "$here/boot-guest.sh"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/boot.sh" "$build"
