#!/bin/sh
# share-guest.sh: /test.sh of the share guest (L2): mount kiln's virtio-9p share and use it.
# Run by busybox sh from the harness's guest init, after KILN-GUEST-INIT; init powers off when
# this returns. Results are "SHARE key: value" console lines for share.sh.
# Kernel command line: share_mods=DIR (modules to insmod, in DIR/load-order), share_tag=TAG,
# share_mode=ro (read, and every change refused) or rw (changes, for the host to check; then
# the VM is snapshotted, killed and restored, and goes on through the share: see across()).

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

read_only() {
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
}

# Changes the host checks afterwards (share.sh), then a symlink that points out of the share.
read_write() {
    cd /mnt/s || return
    printf 'line1\n' >created.txt && printf 'line2\n' >>created.txt
    say "create: rc $?"
    head -c 3000000 /dev/urandom >big.bin && say "big sha256: $(sha256sum big.bin | cut -d' ' -f1)"
    mkdir -p tree/a/b && echo deep >tree/a/b/file && say "mkdir: rc $?"
    echo moved >before.txt && mv before.txt after.txt && say "rename: rc $?"
    mv tree/a tree/c && say "rename dir: rc $? $(cat tree/c/b/file)"
    echo gone >doomed.txt && rm doomed.txt && say "unlink: rc $?"
    rm -r removeme && say "rmdir: rc $?"
    chmod 640 created.txt && say "chmod: $(stat -c %a created.txt)"
    ln -s created.txt link.txt && say "symlink: $(readlink link.txt) $(cat link.txt)"
    ln created.txt hard.txt && say "hardlink: $(stat -c %h created.txt)"
    printf 0123456789 >trunc.txt && truncate -s 4 trunc.txt && say "truncate: $(cat trunc.txt)"
    touch -t 200102030405.06 created.txt && say "touch: $(stat -c %Y created.txt)"
    echo x >suid.txt && chmod 4755 suid.txt
    say "suid: rc $?"
    mkfifo pipe && say "mkfifo: $(stat -c %F pipe)"
    msg=$(mknod dev c 1 3 2>&1)
    say "mknod dev: rc $? $msg"
    sync created.txt && say "fsync: rc $?"
    # outside -> ../secret: the guest resolves it in its own tree, where /mnt/secret is absent.
    msg=$(cat outside 2>&1)
    say "read outside: rc $? $msg"
    msg=$( { echo pwned >outside; } 2>&1)
    say "write outside: rc $? $msg"
    cd /
}

# Across a snapshot: files open and the cwd in the share (work/, which share.sh filled) when
# "snap ready" is said; share.sh then snapshots the VM, kills it, removes work/gone.txt, makes
# work/from-host.txt and /go, and restores it. The restored guest sees /go and goes on: the same
# open files, the same cwd, the share's changes both ways; gone.txt's open file is stale.
across() {
    cd /mnt/s/work || return
    exec 3<>held.txt 4<ro.txt 5<gone.txt
    echo before >&3
    say "snap ready"
    i=0
    while [ ! -e /mnt/s/go ] && [ $i -lt 1200 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    say "snap go: after $i polls"
    say "snap ls: $(ls | tr '\n' ' ')"
    if echo after >&3; then say "snap write held: rc 0"; else say "snap write held: failed"; fi
    read -r line <&4
    say "snap read: $line"
    msg=$(cat <&5 2>&1)
    say "snap removed: rc $? $msg"
    if echo new >new.txt; then say "snap create: rc 0"; else say "snap create: failed"; fi
    say "snap host file: $(cat from-host.txt)"
    exec 3>&- 4<&- 5<&-
    cd /
}

if [ "$(arg share_mode)" = rw ]; then
    read_write
    across
else
    read_only
fi
umount /mnt/s
say "umount rc: $?"
