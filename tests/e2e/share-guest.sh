#!/bin/sh
# share-guest.sh: /test.sh of the share guest (L2): mount kiln's virtio-9p share and use it.
# Run by busybox sh from the harness's guest init, after KILN-GUEST-INIT; init powers off when
# this returns. Results are "SHARE key: value" console lines for share.sh.
# Kernel command line: share_mods=DIR (modules to insmod, in DIR/load-order), share_tag=TAG.

arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

say() {
    echo "SHARE $*"
}

mods=$(arg share_mods)
while read -r ko; do
    if insmod "$mods/$ko"; then say "insmod $ko: ok"; else say "insmod $ko: failed"; fi
done <"$mods/load-order"
mkdir -p /mnt/s
mount -t 9p -o trans=virtio,version=9p2000.L "$(arg share_tag)" /mnt/s
say "mount rc: $?"
say "hello: $(cat /mnt/s/hello.txt)"
say "big sha256: $(sha256sum /mnt/s/big.bin | cut -d' ' -f1)"
say "dir entries: $(ls /mnt/s/dir | wc -l)"
say "dir sizes: $(cat /mnt/s/dir/* | wc -c)"
say "readlink: $(readlink /mnt/s/link)"
say "stat hello: $(stat -c '%s %a' /mnt/s/hello.txt)"
msg=$( { echo x >/mnt/s/new.txt; } 2>&1)
say "create: rc $? $msg"
msg=$( { echo x >>/mnt/s/hello.txt; } 2>&1)
say "append: rc $? $msg"
msg=$(mkdir /mnt/s/newdir 2>&1)
say "mkdir: rc $? $msg"
msg=$(rm /mnt/s/hello.txt 2>&1)
say "rm: rc $? $msg"
# A FIFO is the guest's own once mounted (opening it would wait for a guest writer): only stat.
say "fifo: $(stat -c %F /mnt/s/fifo)"
umount /mnt/s
say "umount rc: $?"
