#!/usr/bin/env bash
# cloud-image.sh: boot a Debian cloud image the way a cloud does: a qcow2 overlay larger than the
# image, a NoCloud seed disk (cloud-localds) with meta-data and #cloud-config user-data, no
# --kernel (SeaBIOS, GRUB from the disk, the cloud kernel), and let cloud-init provision it.
# Usage (from the host): tests/e2e/run-cloud-image.sh BUILD_DIR, which makes the image
# (make-debian-image OUT cloud) and runs `harness run tests/e2e/cloud-image.sh BUILD_DIR IMAGE`.
# Runs where /dev/kvm is real (in L1 when nested). IMAGE (read-only here) is the backing file
# of the overlay, which takes the writes.
# cloud-init, on first boot: grows partition 1 and its ext4 to the overlay's end (growpart,
# resizefs), sets the seed's hostname, brings eth0 up by DHCP from its own network config
# (netplan, systemd-networkd; --net user answers), creates a user with the test's SSH key, runs
# the seed's runcmd (a file with the hostname, the instance-id and df of /, and a marker line on
# ttyS0), prints "Cloud-init v. ... finished", and powers the VM off (power_state).
# Exit: 0 when every check passed, 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091
. "$here/lib.sh"
build=${1:?usage: cloud-image.sh BUILD_DIR IMAGE}
base=${2:?usage: cloud-image.sh BUILD_DIR IMAGE}
e2e_init cloud_image "$build/kiln" "$base"
ip link set lo up 2>/dev/null || true

# The overlay: 1 GiB more than the image, for growpart and resizefs to take.
base_bytes=$(qemu-img info --output=json "$base" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])')
disk_bytes=$((base_bytes + 1024 * 1048576))
disk=$E2E_TMP/cloud.qcow2
qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$disk" "$disk_bytes"
echo "cloud_image: image $((base_bytes / 1048576)) MiB, overlay $((disk_bytes / 1048576)) MiB"

# The seed: names unique to this run, so what the guest reports can only come from it.
token=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
iid=kiln-$token
host=kiln-cloud-$token
ssh-keygen -q -t ed25519 -N '' -C "kiln-cloud-test-$token" -f "$E2E_TMP/id_ed25519"
pubkey=$(cat "$E2E_TMP/id_ed25519.pub")
cat >"$E2E_TMP/meta-data" <<EOF
instance-id: $iid
local-hostname: $host
EOF
cat >"$E2E_TMP/user-data" <<EOF
#cloud-config
hostname: $host
users:
  - name: kiln
    shell: /bin/bash
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    lock_passwd: true
    ssh_authorized_keys:
      - $pubkey
EOF
# (runcmd runs under /bin/sh in cloud-init's final stage, after growpart, resizefs and users.)
cat >>"$E2E_TMP/user-data" <<'EOF'
runcmd:
  - |
    iid=$(cloud-init query instance_id)
    size=$(df -B1 --output=size / | tail -n 1 | tr -d ' ')
    {
        echo "hostname: $(hostname)"
        echo "instance-id: $iid"
        df -B1 /
    } >/var/lib/kiln-cloud-test
    sync
    echo "KILN-CLOUD: wrote /var/lib/kiln-cloud-test: hostname $(hostname) instance-id $iid root $size bytes" >/dev/ttyS0
power_state:
  mode: poweroff
  message: kiln-cloud-test done
EOF
seed=$E2E_TMP/seed.img
cloud-localds "$seed" "$E2E_TMP/user-data" "$E2E_TMP/meta-data"
echo "cloud_image: seed $(stat -c %s "$seed") bytes, instance-id $iid, hostname $host"

kiln_start cloud /dev/null --disk "path=$disk" --disk "path=$seed,format=raw,ro" --net user \
    --memory 1G --cpus 2 --timeout 600
boot_checks_begin
if wait_for_console "$OUT" 'Cloud-init v\. .* finished at' 590 "$KILN_PID"; then
    ok "cloud: cloud-init finished $((($(now_ms) - KILN_START_MS) / 1000)) s after kiln started"
else
    fail "cloud: no 'Cloud-init v. ... finished' on the console"
fi
kiln_wait cloud
expect_rc cloud 0
# (SeaBIOS and GRUB draw with terminal escapes: no anchors, and GRUB's banner comes in pieces.)
expect_console cloud 'SeaBIOS \(version' "SeaBIOS ran"
expect_console cloud "Booting .Debian GNU/Linux" "GRUB's menu entry"
expect_console cloud 'Linux version [^ ]+-cloud-amd64' "the cloud kernel"
expect_console cloud 'ci-info: .*10\.0\.2\.15' "cloud-init's ci-info table shows the DHCP address"
expect_console cloud 'Cloud-init v\. [0-9.]+.* finished at .*DataSourceNoCloud' \
    "cloud-init finished with the NoCloud seed"
expect_console cloud "KILN-CLOUD: wrote /var/lib/kiln-cloud-test: hostname $host instance-id $iid " \
    "the seed's runcmd ran with its hostname and instance-id"
expect_console cloud 'reboot: Power down' "power_state's poweroff reached ACPI S5"
refute_console cloud 'Kernel panic|BUG:|Oops' "no kernel trouble"
# A kernel WARN fails too (this kernel logs everything on the console), save one that nested TCG
# causes: L1's KVM never sees the guest's XSETBV (QEMU's emulated AMD-V does not seem to raise
# that intercept), so CPUID 0xD's EBX keeps the XSAVE size for x87/SSE alone, and Linux warns
# "XSAVE consistency problem: size 832 != kernel_size 576" (fpu/xstate.c). QEMU/KVM guests in
# the same L1 get the same warning; with hardware virtualization it does not happen.
warns=$(grep -E 'WARNING: CPU: [0-9]+ PID: [0-9]+ at ' "$OUT" || true)
if [[ ${KILN_E2E_MODE:-direct} == nested ]] && grep -q 'fpu/xstate.c' <<<"$warns"; then
    echo "cloud: note: the kernel's XSAVE size warning, a known effect of nested TCG"
    warns=$(grep -v 'fpu/xstate.c' <<<"$warns" || true)
fi
if [[ -z $warns ]]; then
    ok "cloud: no kernel warnings"
else
    fail "cloud: kernel warnings: $(tr '\n' ' ' <<<"$warns")"
fi
line=$(grep -m 1 -E 'Cloud-init v\. .* finished at' "$OUT" || true)
[[ $line =~ Up\ ([0-9.]+)\ seconds ]] && echo "cloud: cloud-init finished at ${BASH_REMATCH[1]} s guest uptime"
boot_checks_end cloud

# The overlay the guest wrote is consistent; then its partition 1 as PART, for e2fsprogs.
overlay_check "$disk"

# growpart: partition 1 now ends at the disk's end (MBR: the last sector, or within the last
# MiB if growpart aligned it).
read -r p_start p_size < <(sfdisk -J "$RAW" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"][0]
print(p["start"], p["size"])')
sectors=$((disk_bytes / 512))
p_end=$((p_start + p_size))
if [[ $p_start -eq 2048 && $p_end -le $sectors && $((sectors - p_end)) -lt 2048 ]]; then
    ok "growpart: partition 1 is sectors $p_start to $((p_end - 1)) of $sectors (was $(((base_bytes / 512) - 2048)) sectors, now $p_size)"
else
    fail "growpart: partition 1 is start $p_start size $p_size on a disk of $sectors sectors"
fi
# resizefs: the file system fills the partition (resize2fs may leave off a last block group too
# small to be worth its metadata: a few MiB at most).
stats=$(dumpe2fs -h "$PART" 2>/dev/null || true)
blocks=$(sed -n 's/^Block count: *//p' <<<"$stats")
bsize=$(sed -n 's/^Block size: *//p' <<<"$stats")
fs_bytes=$((${blocks:-0} * ${bsize:-0}))
if [[ $fs_bytes -gt $base_bytes && $((p_size * 512 - fs_bytes)) -lt $((8 * 1048576)) ]]; then
    ok "resizefs: ext4 is $fs_bytes bytes ($blocks blocks of $bsize) in a $((p_size * 512))-byte partition"
else
    fail "resizefs: ext4 is ${blocks:-?} blocks of ${bsize:-?} bytes in a $((p_size * 512))-byte partition"
fi

# The runcmd's file: this seed's hostname and instance-id, and a root of the grown size.
got=$(debugfs -R 'cat /var/lib/kiln-cloud-test' "$PART" 2>/dev/null || true)
awk '{ print "  | " $0 }' <<<"$got"
if grep -qx "hostname: $host" <<<"$got" && grep -qx "instance-id: $iid" <<<"$got"; then
    ok "the runcmd's file is on the disk with hostname $host and instance-id $iid"
else
    fail "the runcmd's file has not hostname $host and instance-id $iid"
fi
df_size=$(awk '$NF == "/" { print $2 }' <<<"$got")
if [[ -n $df_size && $df_size -gt $base_bytes ]]; then
    ok "df / in the guest: $df_size bytes, more than the image's $base_bytes"
else
    fail "df / in the guest: '${df_size}' bytes, not more than the image's $base_bytes"
fi
# users-groups and ssh: the user has the test's key, and the instance its own host keys.
keys=$(debugfs -R 'cat /home/kiln/.ssh/authorized_keys' "$PART" 2>/dev/null || true)
if grep -qxF "$pubkey" <<<"$keys"; then
    ok "user kiln has the seed's SSH key"
else
    fail "user kiln's authorized_keys lacks the seed's key: '$keys'"
fi
if debugfs -R 'stat /etc/ssh/ssh_host_ed25519_key.pub' "$PART" 2>/dev/null | grep -q '^Inode:'; then
    ok "cloud-init made the instance's SSH host keys"
else
    fail "no /etc/ssh/ssh_host_ed25519_key.pub on the disk"
fi
fsck_clean "$PART"
e2e_finish
