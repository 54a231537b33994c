#!/usr/bin/env bash
# cli_bad_matrix.sh: every kind of bad input to `kiln run`, each refused the same way.
# Usage: cli_bad_matrix.sh KILN GUEST_DIR
#
# Each case runs kiln once in a folder of its own holding the user's files for that case. It must
# exit 125, print nothing on stdout and exactly one line on stderr that starts with "kiln: ",
# names the offending input and matches the case's reason, leave no core file, and leave every
# file in the folder byte-identical (sha256 before and after). None of this needs /dev/kvm: bad
# input is found before kiln opens it. Cases marked "nobody" run as an unprivileged user (when
# this script runs as root), for files root could read anyway.
HERE=$(cd "$(dirname "$0")" && pwd)
KILN=$(readlink -f "$1")
GUESTS=$(readlink -f "$2")
. "$HERE/common.sh"
HELLO=$GUESTS/hello.elf
need_file "$HELLO" "hello guest"
# The folders must be reachable by the unprivileged user too.
chmod 0755 "$TEST_TMP"
IMAGES=$TEST_TMP/images
python3 "$HERE/bad_images.py" "$HELLO" "$IMAGES" || { echo "FAIL: bad_images.py" >&2; exit 1; }
PORT=$((40000 + $$ % 20000))
CASES=0

# as_nobody CMD...: CMD as user nobody when root, else as is.
as_nobody() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
    else
        "$@"
    fi
}

hash_files() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}

# check NAME NEEDLE REASON [nobody] -- ARGS...: run kiln ARGS in the current case folder ($D).
# NEEDLE: text the message must contain (the input; "" when there is none to name); REASON: an
# extended regex (case-insensitive) for why.
check() {
    local name=$1 needle=$2 reason=$3 user=root
    shift 3
    if [ "$1" = nobody ]; then
        user=nobody
        shift
    fi
    [ "$1" = -- ] && shift
    CASES=$((CASES + 1))
    local before after
    before=$(hash_files "$D")
    RUN_SEQ=$((RUN_SEQ + 1))
    OUT=$TEST_TMP/run$RUN_SEQ.out
    ERR=$TEST_TMP/run$RUN_SEQ.err
    RUN_ARGS="$*"
    local start
    start=$(now_ms)
    if [ $user = nobody ]; then
        (cd "$D" && ulimit -c unlimited 2>/dev/null; as_nobody timeout -s KILL 30 "$KILN" "$@") \
            >"$OUT" 2>"$ERR" </dev/null
    else
        (cd "$D" && timeout -s KILL 30 "$KILN" "$@") >"$OUT" 2>"$ERR" </dev/null
    fi
    RC=$?
    ELAPSED_MS=$(($(now_ms) - start))
    after=$(hash_files "$D")
    local bad=
    [ "$RC" -eq 125 ] || bad="exit status $RC, expected 125"
    [ -z "$bad" ] && [ -s "$OUT" ] && bad="output on stdout"
    if [ -z "$bad" ] && { [ "$(wc -l <"$ERR")" -ne 1 ] ||
        [ "$(tail -c 1 "$ERR" | od -An -tx1 | tr -d ' ')" != 0a ]; }; then
        bad="stderr is not exactly one line"
    fi
    [ -z "$bad" ] && ! grep -q '^kiln: ' "$ERR" && bad="message does not start with 'kiln: '"
    [ -z "$bad" ] && [ -n "$needle" ] && ! grep -qF -- "$needle" "$ERR" &&
        bad="message does not name '$needle'"
    [ -z "$bad" ] && ! grep -qiE -- "$reason" "$ERR" && bad="message does not give the reason /$reason/"
    [ -z "$bad" ] && [ "$before" != "$after" ] && bad="the user's files changed"
    [ -z "$bad" ] && [ -n "$(find "$D" -maxdepth 1 -name 'core*')" ] && bad="kiln left a core file"
    if [ -n "$bad" ]; then
        fail "$name: $bad"
        dump_run
    else
        ok "$name: $(cat "$ERR")"
    fi
}

# new_case NAME: a fresh folder for the next case's files, made current as $D.
new_case() {
    D=$TEST_TMP/case-$1
    mkdir -p "$D"
    chmod 0755 "$D"
}

# img NAME: a copy of the malformed image NAME in the case folder.
img() {
    cp "$IMAGES/$1" "$D/$1"
    echo "$D/$1"
}

# ---- Kernels
new_case k_missing
check kernel_missing "$D/vmlinuz" "no such file" -- run --kernel "$D/vmlinuz"
new_case k_dir
mkdir "$D/kernel.d"
check kernel_is_directory "$D/kernel.d" "directory" -- run --kernel "$D/kernel.d"
new_case k_empty
: >"$D/empty"
check kernel_empty "$D/empty" "empty" -- run --kernel "$D/empty"
new_case k_unreadable
cp "$HELLO" "$D/secret.elf"
chmod 0000 "$D/secret.elf"
check kernel_unreadable "$D/secret.elf" "permission denied" nobody -- run --kernel "$D/secret.elf"
new_case k_fifo
mkfifo "$D/pipe"
check kernel_is_fifo "$D/pipe" "not a regular file|invalid" -- run --kernel "$D/pipe"
new_case k_random
head -c 65536 /dev/urandom >"$D/random.bin"
printf 'RAND' | dd of="$D/random.bin" conv=notrunc status=none # never an ELF magic
printf '\0\0\0\0\0\0\0\0' | dd of="$D/random.bin" bs=1 seek=$((0x1fe)) conv=notrunc status=none
check kernel_random_bytes "$D/random.bin" "not a bzImage or ELF" -- run --kernel "$D/random.bin"
new_case k_oversized
truncate -s 200M "$D/huge.bin"
check kernel_larger_than_ram "$D/huge.bin" "larger|too (big|large)" -- \
    run --kernel "$D/huge.bin" --memory 64M
for c in elf_truncated_header:"truncated ELF header" elf_class32:"not a 64-bit ELF" \
    elf_big_endian:"little-endian" elf_bad_version:"ELF version" elf_machine_arm:"not x86-64" \
    elf_shared_object:"not an executable" elf_bad_phentsize:"program header size" \
    elf_too_many_phdrs:"too many ELF program headers" elf_phdrs_past_end:"outside the file" \
    elf_no_load:"no PT_LOAD" elf_segment_past_file:"outside the file" \
    elf_filesz_over_memsz:"file bytes but only" elf_segment_wraps:"wraps around" \
    elf_segment_outside_ram:"outside the VM's RAM" elf_entry_outside_ram:"entry point .* outside" \
    bz_truncated:"truncated bzImage" bz_setup_only:"no kernel after" \
    bz_old_protocol:"too old" bz_no_64bit_entry:"64-bit entry" \
    bz_too_big_for_ram:"needs [0-9]+ MiB of RAM"; do
    name=${c%%:*}
    new_case "$name"
    k=$(img "$name")
    check "kernel_$name" "$k" "${c#*:}" -- run --kernel "$k" --memory 64M
done
new_case bz_short_cmdline
k=$(img bz_short_cmdline)
check kernel_cmdline_too_long "$k" "command line is [0-9]+ bytes" -- \
    run --kernel "$k" --cmdline "console=ttyS0 root=/dev/vda rw quiet"

# ---- Initrds
new_case i_missing
check initrd_missing "$D/initrd.img" "no such file" -- run --kernel "$HELLO" --initrd "$D/initrd.img"
new_case i_dir
mkdir "$D/initrd.d"
check initrd_is_directory "$D/initrd.d" "directory" -- run --kernel "$HELLO" --initrd "$D/initrd.d"
new_case i_empty
: >"$D/initrd.img"
check initrd_empty "$D/initrd.img" "empty" -- run --kernel "$HELLO" --initrd "$D/initrd.img"
new_case i_unreadable
head -c 4096 /dev/urandom >"$D/initrd.img"
chmod 0000 "$D/initrd.img"
check initrd_unreadable "$D/initrd.img" "permission denied" nobody -- \
    run --kernel "$HELLO" --initrd "$D/initrd.img"
new_case i_oversized
truncate -s 100M "$D/initrd.img"
check initrd_larger_than_ram "$D/initrd.img" "larger|too (big|large)|does not fit" -- \
    run --kernel "$HELLO" --initrd "$D/initrd.img" --memory 64M
new_case i_fifo
mkfifo "$D/initrd.pipe"
check initrd_is_fifo "$D/initrd.pipe" "not a regular file|invalid" -- \
    run --kernel "$HELLO" --initrd "$D/initrd.pipe"

# ---- Sizes, counts and other options
new_case opts
for c in "memory_zero;--memory;below the minimum;--memory 0" \
    "memory_overflow;99999999999999G;too large|overflow|out of range;--memory 99999999999999G" \
    "memory_bad_suffix;99999999T;not a size;--memory 99999999T" \
    "memory_unknown_suffix;1Q;suffix|size;--memory 1Q" \
    "memory_negative;-64M;size;--memory -64M" \
    "memory_empty;--memory;size;--memory=" \
    "memory_unaligned;65537K;multiple of 4 KiB;--memory 65537K" \
    "cpus_zero;--cpus;at least one;--cpus 0" \
    "cpus_too_many;100000;maximum;--cpus 100000" \
    "cpus_not_a_number;two;number;--cpus two" \
    "cpus_negative;-1;number;--cpus -1" \
    "timeout_not_a_number;soon;number|seconds;--timeout soon" \
    "timeout_negative;-5;number|seconds;--timeout -5" \
    "serial_bad_mode;telepathy;serial;--serial telepathy" \
    "seccomp_bad_value;maybe;expected on or off;--seccomp maybe" \
    "debug_exit_port_too_big;0x10000;iobase must be a port;--debug-exit iobase=0x10000" \
    "debug_exit_bad_size;iosize=3;iosize must be 1, 2 or 4;--debug-exit iobase=0xf4,iosize=3" \
    "debug_exit_past_end;0xfffe;go past 0xffff;--debug-exit iobase=0xfffe,iosize=4" \
    "debug_exit_unknown;port=;unknown option;--debug-exit port=0xf4" \
    "unknown_flag;--frobnicate;unknown;--frobnicate"; do
    IFS=';' read -r name needle reason opt <<<"$c"
    # shellcheck disable=SC2086
    check "$name" "$needle" "$reason" -- run --kernel "$HELLO" $opt
done
check missing_value "--kernel" "needs a value|missing|requires" -- run --kernel
check no_kernel "--kernel" "kernel" -- run
check no_arguments "" "usage|command" --
check unknown_command "frobnicate" "unknown|command" -- frobnicate

# ---- Disks
new_case d_missing
check disk_missing "$D/disk.img" "no such file" -- run --kernel "$HELLO" --disk "path=$D/disk.img"
new_case d_dir
check disk_is_directory "$D" "directory" -- run --kernel "$HELLO" --disk "path=$D"
new_case d_twice
truncate -s 1M "$D/disk.img"
check disk_twice "$D/disk.img" "locked" -- \
    run --kernel "$HELLO" --disk "path=$D/disk.img" --disk "path=$D/disk.img"
new_case d_locked
head -c 1M /dev/urandom >"$D/disk.img"
# Another program holds a POSIX write lock on the image, as another VM would.
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+b"); fcntl.lockf(f, fcntl.LOCK_EX); print("locked", flush=True)
time.sleep(60)' "$D/disk.img" >"$TEST_TMP/holder.out" &
holder=$!
for _ in $(seq 50); do grep -q locked "$TEST_TMP/holder.out" && break; sleep 0.1; done
check disk_locked_by_another "$D/disk.img" "locked" -- run --kernel "$HELLO" --disk "path=$D/disk.img"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
new_case d_readonly
head -c 1M /dev/urandom >"$D/disk.img"
chmod 0444 "$D/disk.img"
check disk_read_only_file "$D/disk.img" "for writing" nobody -- \
    run --kernel "$HELLO" --disk "path=$D/disk.img"
new_case d_empty
: >"$D/disk.img"
check disk_empty_image "$D/disk.img" "smaller than one 512-byte sector" -- \
    run --kernel "$HELLO" --disk "path=$D/disk.img"
new_case d_tiny
head -c 100 /dev/urandom >"$D/disk.img"
check disk_smaller_than_a_sector "$D/disk.img" "smaller than one 512-byte sector" -- \
    run --kernel "$HELLO" --disk "path=$D/disk.img"
new_case d_fifo
mkfifo "$D/disk.pipe"
check disk_is_fifo "$D/disk.pipe" "not a regular file or block device" -- \
    run --kernel "$HELLO" --disk "path=$D/disk.pipe"
new_case d_opts
truncate -s 1M "$D/disk.img"
check disk_bad_option "cache=none" "unknown|option" -- run --kernel "$HELLO" --disk "path=$D/disk.img,cache=none"
check disk_long_serial "serial" "1-20 printable" -- \
    run --kernel "$HELLO" --disk "path=$D/disk.img,serial=123456789012345678901"
check disk_serial_not_printable "serial" "printable" -- \
    run --kernel "$HELLO" --disk "path=$D/disk.img,serial=$(printf 'a\tb')"
check disk_bad_format "vmdk" "format must be raw or qcow2" -- \
    run --kernel "$HELLO" --disk "path=$D/disk.img,format=vmdk"
check disk_no_path "--disk" "path" -- run --kernel "$HELLO" --disk ro
check disk_empty_path "--disk" "path" -- run --kernel "$HELLO" --disk path=

# qcow2 images that lie: a header past the file's end, and a backing file that is not there.
new_case q_bad
printf 'QFI\373\0\0\0\003' >"$D/bad.qcow2"
head -c 200 /dev/urandom >>"$D/bad.qcow2"
check qcow2_corrupt_header "$D/bad.qcow2" "qcow2" -- run --kernel "$HELLO" --disk "path=$D/bad.qcow2"
new_case q_backing
qemu-img create -q -f qcow2 -u -b "$D/gone.qcow2" -F qcow2 "$D/top.qcow2" 64M 2>/dev/null ||
    fail "qemu-img could not make the test image"
check qcow2_missing_backing "$D/top.qcow2" "backing file" -- \
    run --kernel "$HELLO" --disk "path=$D/top.qcow2"
new_case q_forced
truncate -s 1M "$D/raw.img"
check raw_forced_qcow2 "$D/raw.img" "qcow2|magic" -- \
    run --kernel "$HELLO" --disk "path=$D/raw.img,format=qcow2"

# ---- Networks
new_case n
check net_tap_missing "kilnnosuch0" "no such network interface" -- \
    run --kernel "$HELLO" --net tap=kilnnosuch0
check net_tap_not_tap "lo" "not a TAP interface" -- run --kernel "$HELLO" --net tap=lo
check net_multicast_mac "multicast" "multicast" -- \
    run --kernel "$HELLO" --net user,mac=01:00:5e:00:00:01
check net_malformed_mac "zz:00" "mac" -- run --kernel "$HELLO" --net user,mac=zz:00:5e:00:00:01
check net_bad_hostfwd "hostfwd" "hostfwd" -- run --kernel "$HELLO" --net user,hostfwd=tcp::80
check net_hostfwd_busy "127.0.0.1:$PORT" "in use|cannot|bind" -- \
    run --kernel "$HELLO" --net "user,hostfwd=tcp::$PORT-:80,hostfwd=tcp::$PORT-:81"
check net_hostfwd_on_tap "hostfwd" "hostfwd is for user" -- \
    run --kernel "$HELLO" --net tap=lo,hostfwd=tcp::$PORT-:80
check net_unknown_kind "bridge" "unknown|net" -- run --kernel "$HELLO" --net bridge=br0

# ---- Named ports (--port)
new_case p
check port_bad_name "bad name" "a name is" -- run --kernel "$HELLO" --port "bad name,path=$D/out"
check port_no_backend "results" "expected NAME,path=FILE" -- run --kernel "$HELLO" --port results
check port_empty_path "results,path=" "empty path" -- run --kernel "$HELLO" --port results,path=
check port_bad_backend "tcp=" "expected path=FILE or socket=PATH" -- \
    run --kernel "$HELLO" --port results,tcp=127.0.0.1:1
check port_twice "results" "given twice" -- \
    run --kernel "$HELLO" --port "results,path=$D/a" --port "results,path=$D/b"
check port_file_is_directory "$D" "directory" -- run --kernel "$HELLO" --port "results,path=$D"
mkfifo "$D/fifo"
check port_file_fifo "$D/fifo" "No such device|not a file" -- \
    run --kernel "$HELLO" --port "results,path=$D/fifo"
check port_socket_missing "$D/nosuch.sock" "No such file" -- \
    run --kernel "$HELLO" --port "echo,socket=$D/nosuch.sock"
# A socket file nobody listens on any more.
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$D/dead.sock"
check port_socket_refused "$D/dead.sock" "refused" -- \
    run --kernel "$HELLO" --port "echo,socket=$D/dead.sock"

# ---- Shared directories (--share)
new_case s
mkdir -p "$D/dir"
echo data >"$D/file"
check share_missing "$D/nosuch" "No such file" -- run --kernel "$HELLO" --share "$D/nosuch,tag=t,ro"
check share_not_directory "$D/file" "Not a directory" -- run --kernel "$HELLO" --share "$D/file,tag=t,ro"
check share_no_tag "tag=TAG is required" "tag" -- run --kernel "$HELLO" --share "$D/dir,ro"
check share_long_tag "tag=" "tag=TAG is required" -- \
    run --kernel "$HELLO" --share "$D/dir,tag=abcdefghijklmnopqrstuvwxyz0123456789,ro"
check share_writable_missing "$D/nosuch" "No such file" -- run --kernel "$HELLO" --share "$D/nosuch,tag=t"
check share_tag_twice "tag t" "given twice" -- \
    run --kernel "$HELLO" --share "$D/dir,tag=t,ro" --share "$D/dir,tag=t,ro"
check share_unknown_option "rw" "unknown option" -- run --kernel "$HELLO" --share "$D/dir,tag=t,rw"

# ---- virtio-vsock (--vsock)
new_case v
echo data >"$D/file"
check vsock_cid_small "cid=2" "cid must be 3" -- run --kernel "$HELLO" --vsock "cid=2,socket=$D/v.sock"
check vsock_cid_big "cid=4294967295" "cid must be 3" -- \
    run --kernel "$HELLO" --vsock "cid=4294967295,socket=$D/v.sock"
check vsock_cid_junk "cid=3x" "cid must be 3" -- run --kernel "$HELLO" --vsock "cid=3x,socket=$D/v.sock"
check vsock_no_socket "cid=3" "socket=PATH is required" -- run --kernel "$HELLO" --vsock cid=3
check vsock_no_cid "socket=" "cid=N is required" -- run --kernel "$HELLO" --vsock "socket=$D/v.sock"
check vsock_unknown_option "port=1" "unknown option" -- \
    run --kernel "$HELLO" --vsock "cid=3,socket=$D/v.sock,port=1"
check vsock_twice "--vsock" "given twice" -- \
    run --kernel "$HELLO" --vsock "cid=3,socket=$D/a.sock" --vsock "cid=4,socket=$D/b.sock"
check vsock_path_is_file "$D/file" "not a socket" -- run --kernel "$HELLO" --vsock "cid=3,socket=$D/file"
check vsock_path_is_directory "$D" "not a socket" -- run --kernel "$HELLO" --vsock "cid=3,socket=$D"
check vsock_path_too_long "socket path" "longer than" -- \
    run --kernel "$HELLO" --vsock "cid=3,socket=$D/$(printf 'a%.0s' $(seq 120))"

# ---- The host as the guest's root (--rootfs-host)
new_case r
mkdir -p "$D/dir"
echo data >"$D/initrd"
check rootfs_no_kernel "--rootfs-host" "needs --kernel" -- \
    run --rootfs-host --disk "path=$D/initrd" -- true
check rootfs_initrd "--initrd" "not with --rootfs-host" -- \
    run --kernel "$HELLO" --rootfs-host --initrd "$D/initrd" -- true
check rootfs_command_alone "--" "needs --rootfs-host" -- run --kernel "$HELLO" -- true
check rootfs_empty_command "--rootfs-host" "command after -- is empty" -- \
    run --kernel "$HELLO" --rootfs-host -- ""
check rootfs_own_tag "kilnroot" "--rootfs-host's own" -- \
    run --kernel "$HELLO" --rootfs-host --share "$D/dir,tag=kilnroot,ro" -- true
check rootfs_kernel_missing "$D/nosuch" "No such file" -- \
    run --kernel "$D/nosuch" --rootfs-host -- true

# ---- Restoring a snapshot (--restore)
new_case n
mkdir -p "$D/snap"
head -c 1048576 /dev/zero >"$D/snap/memory"
check restore_missing "$D/nosuch" "No such file" -- run --restore "$D/nosuch"
check restore_with_kernel "--kernel" "not with --restore" -- run --restore "$D/snap" --kernel "$HELLO"
# (A memory file of the wrong size beside a good state: api.snapshot's refusals.)
check restore_no_state "$D/snap" "state: No such file" -- run --restore "$D/snap"
check snapshot_dir_no_api "--snapshot-dir" "needs --api-socket" -- \
    run --kernel "$HELLO" --snapshot-dir "$D/out"
check snapshot_dir_is_restore "$D/snap" "the --restore directory" -- \
    run --restore "$D/snap" --memory 8M --api-socket "$D/api.sock" --snapshot-dir "$D/snap"
echo data >"$D/plain"
check snapshot_dir_is_file "$D/plain" "Not a directory" -- \
    run --kernel "$HELLO" --api-socket "$D/api.sock" --snapshot-dir "$D/plain"
# kiln ctl SOCKET snapshot DIR: DIR is checked and its files made before the VM is asked.
check ctl_snapshot_dir_is_file "$D/plain" "Not a directory" -- ctl "$D/api.sock" snapshot "$D/plain"
check ctl_snapshot_dir_empty "snapshot" "empty directory" -- ctl "$D/api.sock" snapshot ""
mkdir -p "$D/locked"
check ctl_snapshot_dir_unwritable "$D/locked" "state.tmp: Permission denied" nobody -- \
    ctl "$D/api.sock" snapshot "$D/locked"
check ctl_snapshot_dir_no_parent "$D/nosuch/snap" "No such file" -- \
    ctl "$D/api.sock" snapshot "$D/nosuch/snap"
check ctl_snapshot_no_vm "$D/api.sock" "cannot connect" -- ctl "$D/api.sock" snapshot "$D/new"
[ ! -e "$D/new" ] && ok "ctl snapshot with no VM: the directory it made is gone" ||
    fail "ctl snapshot with no VM left $D/new behind"

# ---- Config files (--config): each message names the file and the JSON path of the field
new_case c
truncate -s 1M "$D/disk.img"
mkdir -p "$D/dir"
# cfg NAME TEXT: the config file NAME in the case folder, with @K@ the hello guest.
cfg() {
    printf '%s\n' "${2//@K@/$HELLO}" >"$D/$1"
    echo "$D/$1"
}
check config_missing "$D/nosuch.json" "no such file" -- run --config "$D/nosuch.json"
check config_is_directory "$D/dir" "is a directory" -- run --config "$D/dir"
f=$(cfg empty.json '')
check config_empty "$f" "empty" -- run --config "$f"
f=$(cfg syntax.json '{
  "kernel": "@K@",
  "cpus": 2,,
}')
check config_invalid_json "$f" "invalid JSON at line 3, column 13" -- run --config "$f"
f=$(cfg truncated.json '{"kernel": "@K@", "disks": [')
check config_truncated_json "$f" "invalid JSON" -- run --config "$f"
f=$(cfg array.json '["@K@"]')
check config_not_an_object "$f" "expected a JSON object" -- run --config "$f"
f=$(cfg type.json '{"kernel": "@K@", "cpus": "two"}')
check config_wrong_type "$f: .cpus" "expected a whole number" -- run --config "$f"
f=$(cfg unknown.json '{"kernel": "@K@", "cpu": 2}')
check config_unknown_field "$f: .cpu" "unknown field" -- run --config "$f"
f=$(cfg memory.json '{"kernel": "@K@", "memory": "1Q"}')
check config_bad_size "$f: .memory" "not a size" -- run --config "$f"
f=$(cfg kernel.json '{"kernel": "@K@.gone"}')
check config_kernel_missing "$f: .kernel" "no such file" -- run --config "$f"
f=$(cfg disk.json '{"kernel": "@K@", "disks": [{"path": "disk.img"}, {"path": "gone.img"}]}')
check config_disk_missing "$f: .disks[1].path" "no such file" -- run --config "$f"
f=$(cfg serial.json '{"kernel": "@K@", "disks": [{"path": "disk.img", "serial": "a b"}]}')
check config_bad_disk_serial "$f: .disks[0].serial" "1-20 printable" -- run --config "$f"
f=$(cfg disk_field.json '{"kernel": "@K@", "disks": [{"path": "disk.img", "cache": "none"}]}')
check config_unknown_disk_field "$f: .disks[0].cache" "unknown field" -- run --config "$f"
f=$(cfg hostfwd.json '{"kernel": "@K@", "nets": [{"type": "user", "hostfwd": ["tcp::80"]}]}')
check config_bad_hostfwd "$f: .nets[0].hostfwd[0]" "hostfwd must be" -- run --config "$f"
f=$(cfg tap.json '{"kernel": "@K@", "nets": [{"type": "tap", "name": "kilnnosuch0"}]}')
check config_tap_missing "kilnnosuch0" "no such network interface" -- run --config "$f"
f=$(cfg share.json '{"kernel": "@K@", "shares": [{"path": "dir", "tag": "t"}, {"path": "dir", "tag": "t"}]}')
check config_share_tag_twice "$f: .shares[1]" "given twice" -- run --config "$f"
f=$(cfg ok.json '{"kernel": "@K@"}')
check config_flag_overrides "--memory" "not a size" -- run --config "$f" --memory 1Q
check config_twice "--config" "more than once" -- run --config "$f" --config "$f"
f=$(cfg print.json '{"kernel": "@K@", "memory": "x"}')
check config_print_bad "$f: .memory" "not a size" -- config --print --config "$f"

# ---- The API socket (--api-socket, --stop-timeout) and its client (kiln ctl)
new_case a
mkdir -p "$D/dir"
echo data >"$D/file"
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$D/dead.sock"
LONG=$D/$(printf 'x%.0s' $(seq 1 120)).sock
check api_socket_is_file "$D/file" "exists and is not a socket" -- \
    run --kernel "$HELLO" --api-socket "$D/file"
check api_socket_is_directory "$D/dir" "exists and is not a socket" -- \
    run --kernel "$HELLO" --api-socket "$D/dir"
check api_socket_no_folder "$D/nosuch/api.sock" "No such file" -- \
    run --kernel "$HELLO" --api-socket "$D/nosuch/api.sock"
check api_socket_too_long "--api-socket" "longer than" -- run --kernel "$HELLO" --api-socket "$LONG"
check api_socket_empty "--api-socket" "empty path" -- run --kernel "$HELLO" --api-socket=
check stop_timeout_not_a_number "soon" "number of seconds" -- \
    run --kernel "$HELLO" --stop-timeout soon
check stop_timeout_zero "--stop-timeout 0" "above 0" -- run --kernel "$HELLO" --stop-timeout 0
check stop_timeout_negative "-1" "number of seconds" -- run --kernel "$HELLO" --stop-timeout -1
check ctl_missing_socket "$D/nosuch.sock" "cannot connect.*No such file" -- \
    ctl "$D/nosuch.sock" info
check ctl_not_a_socket "$D/file" "cannot connect.*refused" -- ctl "$D/file" info
check ctl_nobody_listens "$D/dead.sock" "cannot connect.*refused" -- ctl "$D/dead.sock" info
check ctl_no_command "ctl" "SOCKET COMMAND" -- ctl "$D/dead.sock"
check ctl_bad_stop_timeout "soon" "number of seconds" -- ctl "$D/dead.sock" stop soon
check ctl_argument_for_info "extra" "takes no argument" -- ctl "$D/dead.sock" info extra

echo "$CASES cases"
[ "$CASES" -ge 40 ] || fail "only $CASES cases (the matrix promises at least 40)"
finish
