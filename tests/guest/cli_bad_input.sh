#!/usr/bin/env bash
# cli_bad_input.sh: one bad command line or kernel file; kiln must exit 125 with one clear line.
# Usage: cli_bad_input.sh KILN GUEST_DIR CASE
#
# For every case: exit status 125, nothing on stdout, exactly one line on stderr starting with
# "kiln: " and naming the offending input where there is one, and no core file.
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
CASE=$3
HELLO=$GUESTS/hello.elf
need_file "$HELLO" "hello guest"

# put_bytes FILE OFFSET BYTES: overwrite FILE at OFFSET with BYTES (printf escapes).
put_bytes() {
    # shellcheck disable=SC2059
    printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# A bzImage whose setup header is plausible (boot protocol 2.15, 64-bit entry, 31 setup sectors
# and a 1 MiB kernel declared) but whose file ends after 4 KiB.
make_truncated_bzimage() {
    head -c 4096 /dev/zero >"$1"
    put_bytes "$1" $((0x1f1)) '\036'                  # setup_sects = 30
    put_bytes "$1" $((0x1f4)) '\000\000\001\000'      # syssize = 0x10000 paragraphs
    put_bytes "$1" $((0x1fe)) '\125\252'              # boot_flag 0xaa55
    put_bytes "$1" $((0x202)) 'HdrS\017\002'          # header magic, version 2.15
    put_bytes "$1" $((0x211)) '\001'                  # loadflags: LOADED_HIGH
    put_bytes "$1" $((0x230)) '\000\000\040\000\001'  # kernel_alignment 2 MiB, relocatable
    put_bytes "$1" $((0x236)) '\003\000'              # xloadflags: KERNEL_64, above 4G
    put_bytes "$1" $((0x260)) '\000\000\000\001'      # init_size 16 MiB
}

# needle is a string the message must contain ("" when there is no input to name).
case $CASE in
missing_kernel)
    needle=$TEST_TMP/no-such-kernel.elf
    args=(run --kernel "$needle")
    ;;
kernel_is_directory)
    mkdir "$TEST_TMP/kernel-dir"
    needle=$TEST_TMP/kernel-dir
    args=(run --kernel "$needle")
    ;;
kernel_empty)
    needle=$TEST_TMP/empty-kernel
    : >"$needle"
    args=(run --kernel "$needle")
    ;;
kernel_truncated_bzimage)
    needle=$TEST_TMP/truncated.bzImage
    make_truncated_bzimage "$needle"
    args=(run --kernel "$needle")
    ;;
kernel_random_bytes)
    needle=$TEST_TMP/random.bin
    head -c 65536 /dev/urandom >"$needle"
    put_bytes "$needle" 0 'RAND' # never an ELF magic by chance
    put_bytes "$needle" $((0x1fe)) '\000\000\000\000\000\000\000\000' # nor a bzImage
    args=(run --kernel "$needle")
    ;;
memory_zero)
    needle=--memory
    args=(run --kernel "$HELLO" --memory 0)
    ;;
memory_overflow)
    needle=99999999T
    args=(run --kernel "$HELLO" --memory 99999999T)
    ;;
memory_bad_suffix)
    needle=1Q
    args=(run --kernel "$HELLO" --memory 1Q)
    ;;
cpus_zero)
    needle=--cpus
    args=(run --kernel "$HELLO" --cpus 0)
    ;;
cpus_too_many)
    needle=100000
    args=(run --kernel "$HELLO" --cpus 100000)
    ;;
cpus_not_a_number)
    needle=two
    args=(run --kernel "$HELLO" --cpus two)
    ;;
timeout_not_a_number)
    needle=soon
    args=(run --kernel "$HELLO" --timeout soon)
    ;;
serial_bad_mode)
    needle=telepathy
    args=(run --kernel "$HELLO" --serial telepathy)
    ;;
unknown_flag)
    needle=--frobnicate
    args=(run --kernel "$HELLO" --frobnicate)
    ;;
missing_value)
    needle=--kernel
    args=(run --kernel)
    ;;
no_kernel)
    needle=--kernel
    args=(run)
    ;;
no_arguments)
    needle=
    args=()
    ;;
unknown_command)
    needle=frobnicate
    args=(frobnicate)
    ;;
disk_missing)
    needle=$TEST_TMP/no-such-disk.img
    args=(run --kernel "$HELLO" --disk "path=$needle")
    ;;
disk_is_directory)
    needle=$TEST_TMP
    args=(run --kernel "$HELLO" --disk "path=$needle")
    ;;
disk_twice)
    needle=$TEST_TMP/disk.img
    truncate -s 1M "$needle"
    args=(run --kernel "$HELLO" --disk "path=$needle" --disk "path=$needle")
    ;;
disk_bad_option)
    needle=cache=none
    args=(run --kernel "$HELLO" --disk "path=x.img,cache=none")
    ;;
disk_bad_serial)
    needle=serial
    args=(run --kernel "$HELLO" --disk "path=x.img,serial=123456789012345678901")
    ;;
net_tap_missing)
    needle="no such network interface"
    args=(run --kernel "$HELLO" --net tap=kilnnosuch0)
    ;;
net_tap_not_tap)
    needle="not a TAP interface"
    args=(run --kernel "$HELLO" --net tap=lo)
    ;;
net_bad_mac)
    needle=mac
    args=(run --kernel "$HELLO" --net user,mac=01:00:5e:00:00:01)
    ;;
net_bad_hostfwd)
    needle=hostfwd
    args=(run --kernel "$HELLO" --net user,hostfwd=tcp::80)
    ;;
net_hostfwd_busy)
    # The same host port twice: the second listener cannot bind.
    port=$((40000 + $$ % 20000))
    needle="127.0.0.1:$port"
    args=(run --kernel "$HELLO" --net "user,hostfwd=tcp::$port-:80,hostfwd=tcp::$port-:81")
    ;;
*)
    echo "FAIL: unknown case '$CASE'" >&2
    exit 1
    ;;
esac

run_kiln "${args[@]}"

# Checks bad input needs no KVM for, except that kiln may open /dev/kvm before reading the
# kernel: on a host without KVM that error legitimately comes first, so the case is skipped.
if [ "$RC" -ne 125 ] || { [ -n "$needle" ] && ! grep -qF -- "$needle" "$ERR"; }; then
    if run_failed_for_kvm; then
        why=$(kvm_unusable_reason "$HELLO")
        [ -z "$why" ] || skip "$CASE: kiln reports KVM before the bad input: $why"
    fi
fi

expect_rc 125 "$CASE"
if [ -s "$OUT" ]; then
    fail "$CASE: something was printed on stdout"
    dump_run
fi
# Exactly one complete line.
if [ "$(wc -l <"$ERR")" -eq 1 ] && [ "$(tail -c 1 "$ERR" | od -An -tx1 | tr -d ' ')" = 0a ]; then
    ok "$CASE: one line on stderr"
else
    fail "$CASE: stderr is not exactly one line"
    dump_run
fi
if head -n 1 "$ERR" | grep -q '^kiln: '; then
    ok "$CASE: message starts with 'kiln: '"
else
    fail "$CASE: message does not start with 'kiln: '"
    dump_run
fi
if [ -n "$needle" ]; then
    if grep -qF -- "$needle" "$ERR"; then
        ok "$CASE: message names '$needle'"
    else
        fail "$CASE: message does not name '$needle'"
        dump_run
    fi
fi
cores=$(find "$TEST_TMP" -maxdepth 1 -name 'core*' | head -n 3)
if [ -n "$cores" ]; then
    fail "$CASE: kiln left a core file: $cores"
fi
finish
