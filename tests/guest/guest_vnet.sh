#!/usr/bin/env bash
# guest_vnet.sh: a tiny polled virtio-net-pci driver (the vnet guest) prints its MAC, asks for the
# gateway 10.0.2.2 by ARP and pings it twice (the larger reply spans two RX buffers): through
# user-mode networking (libslirp answers all of it), with the default and with a given MAC, then
# through a TAP in a network namespace of its own whose kernel holds 10.0.2.2 (root and ip(8)
# only; that part is skipped otherwise).
# Usage: guest_vnet.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/vnet.elf" "vnet guest"
require_kvm "$GUESTS/hello.elf"

HEX='[0-9a-f]{2}'
MAC_RE="$HEX:$HEX:$HEX:$HEX:$HEX:$HEX"

# expect_stdout_match ERE WHAT: the last run's stdout has a whole line matching ERE.
expect_stdout_match() {
    if grep -qxE -- "$1" "$OUT"; then
        ok "$2: printed a line matching '$1'"
        return 0
    fi
    fail "$2: stdout has no line matching '$1'"
    dump_run
    return 1
}

# The lines every successful run prints after the MAC; $1 names the run, $2 the gateway's MAC.
expect_exchange() {
    expect_rc 0 "$1" || return
    expect_stdout_line "vnet: arp reply from 10.0.2.2 is-at $2" "$1"
    expect_stdout_match "vnet: ping reply from 10.0.2.2 seq 1 bytes 32 buffers 1 ttl [0-9]+" "$1"
    # The large reply takes two of the guest's 1 KiB RX buffers (MRG_RXBUF, num_buffers 2).
    expect_stdout_match "vnet: ping reply from 10.0.2.2 seq 2 bytes 1200 buffers 2 ttl [0-9]+" "$1"
    expect_stdout_line "vnet: ok" "$1"
    # The guest notes a merged frame it saw before all of its buffers were in the used ring.
    if grep -q '^vnet: note:' "$OUT"; then
        echo "NOTE ($1): $(grep '^vnet: note:' "$OUT")"
    fi
}

# (a) User mode, the default MAC: kiln's locally administered 02:6b:6c prefix. libslirp answers
# for its gateway with 52:55 and the address.
run_kiln run --kernel "$GUESTS/vnet.elf" --net user --timeout 60
expect_stdout_match "vnet: mac 02:6b:6c:$HEX:$HEX:$HEX" "user"
expect_exchange "user" "52:55:0a:00:02:02"

# (b) User mode with mac=: the guest reads it from the config space.
run_kiln run --kernel "$GUESTS/vnet.elf" --net user,mac=02:00:00:00:00:42 --timeout 60
expect_stdout_line "vnet: mac 02:00:00:00:00:42" "user,mac="
expect_exchange "user,mac=" "52:55:0a:00:02:02"

# (c) A TAP in a namespace of its own, so no traffic reaches the host's networks; that kernel
# answers ARP and ping for 10.0.2.2 from the TAP's MAC.
NS=kiln-vnet-$$
NS_CREATED=0
cleanup() {
    [ "$NS_CREATED" -eq 0 ] || ip netns delete "$NS" 2>/dev/null
    rm -rf "$TEST_TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

tap_part() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP (tap part): not running as root"
        return
    fi
    if ! command -v ip >/dev/null 2>&1; then
        echo "SKIP (tap part): no ip(8)"
        return
    fi
    if ! ip netns add "$NS" 2>"$TEST_TMP/netns.err"; then
        echo "SKIP (tap part): cannot create a network namespace:" \
            "$(head -n 1 "$TEST_TMP/netns.err")"
        return
    fi
    NS_CREATED=1
    if ! { ip -n "$NS" tuntap add dev ktap0 mode tap &&
        ip -n "$NS" addr add 10.0.2.2/24 dev ktap0 &&
        ip -n "$NS" link set ktap0 up; } 2>"$TEST_TMP/tap.err"; then
        echo "SKIP (tap part): cannot set up a TAP in $NS: $(head -n 1 "$TEST_TMP/tap.err")"
        return
    fi
    local tap_mac
    tap_mac=$(ip -n "$NS" -o link show ktap0 | grep -oE "link/ether $MAC_RE" | cut -d' ' -f2)
    if [ -z "$tap_mac" ]; then
        fail "tap: cannot read ktap0's MAC"
        return
    fi
    local kiln=$KILN
    KILN=ip
    run_kiln netns exec "$NS" "$kiln" run --kernel "$GUESTS/vnet.elf" --net tap=ktap0 --timeout 60
    KILN=$kiln
    expect_stdout_match "vnet: mac 02:6b:6c:$HEX:$HEX:$HEX" "tap"
    expect_exchange "tap" "$tap_mac"
}
tap_part

# (d) Without privileges: user mode, and a TAP the operator created for that user
# (`ip tuntap add ... user UID`), each run by nobody with only /dev/kvm's group and no
# capabilities. Needs root (to switch users) and setpriv.
unprivileged_part() {
    if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null 2>&1; then
        echo "SKIP (unprivileged part): needs root and setpriv to become nobody"
        return
    fi
    local kvm_gid kiln=$KILN
    kvm_gid=$(stat -c %g /dev/kvm)
    local as_nobody=(setpriv --reuid=65534 --regid=65534 --groups="$kvm_gid" --inh-caps=-all
        --bounding-set=-all)
    if ! "${as_nobody[@]}" test -r "$kiln" -a -x "$kiln" -a -r "$GUESTS/vnet.elf"; then
        echo "SKIP (unprivileged part): nobody cannot reach $kiln or the guest"
        return
    fi
    KILN=${as_nobody[0]}
    run_kiln "${as_nobody[@]:1}" "$kiln" run --kernel "$GUESTS/vnet.elf" --net user --timeout 60
    expect_exchange "user, as nobody" "52:55:0a:00:02:02"
    if [ "$NS_CREATED" -eq 1 ] && ip -n "$NS" tuntap add dev ktap1 mode tap user 65534 &&
        ip -n "$NS" link set ktap0 down && ip -n "$NS" addr flush dev ktap0 &&
        ip -n "$NS" addr add 10.0.2.2/24 dev ktap1 && ip -n "$NS" link set ktap1 up; then
        local tap_mac
        tap_mac=$(ip -n "$NS" -o link show ktap1 | grep -oE "link/ether $MAC_RE" | cut -d' ' -f2)
        KILN=ip
        run_kiln netns exec "$NS" "${as_nobody[@]}" "$kiln" run --kernel "$GUESTS/vnet.elf" \
            --net tap=ktap1 --timeout 60
        expect_exchange "tap owned by nobody, as nobody" "$tap_mac"
        # A TAP owned by root is refused to nobody with a one-line reason, exit 125. (One with
        # no owner and no group, like ktap0, is open to every user: the kernel's rule.)
        ip -n "$NS" tuntap add dev ktap2 mode tap user 0
        run_kiln netns exec "$NS" "${as_nobody[@]}" "$kiln" run --kernel "$GUESTS/vnet.elf" \
            --net tap=ktap2 --timeout 60
        expect_rc 125 "root's tap, as nobody"
        if grep -q "tap=ktap2: permission denied" "$ERR"; then
            ok "root's tap, as nobody: $(cat "$ERR")"
        else
            fail "root's tap, as nobody: no permission message"
            dump_run
        fi
    else
        echo "SKIP (unprivileged tap part): no namespace or cannot add a TAP for nobody"
    fi
    KILN=$kiln
}
unprivileged_part
finish
