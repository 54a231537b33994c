#!/bin/sh
# blk-guest.sh: /test.sh of bench/blk's guest (L2): run the four fio jobs on /dev/vda, print results.
# Run by busybox sh from the harness's guest init (which powers off when this returns). Console
# lines for bench/blk-inner.sh: "BLK-BEGIN JOB" and "BLK-END JOB" bracket each fio run (the host
# side samples the VMM's CPU time when it sees them), "BLK-RESULT JOB TERSE" carries fio's terse
# (v3) line, "BLK-FAIL WHAT" a failure. Kernel command line: blk_mods=DIR (modules and their
# load-order file), blk_runtime=SECONDS (per job), blk_engine=libaio|psync.

# arg NAME: the value of NAME= on the kernel command line.
arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

# The distro kernel has virtio_pci and virtio_blk as modules: load them, dependencies first.
mods=$(arg blk_mods)
while read -r ko; do
    insmod "$mods/$ko" || echo "BLK-FAIL insmod $ko"
done <"$mods/load-order"
# devtmpfs has no udev to wait for: poll for the disk node.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
if [ ! -b /dev/vda ]; then
    echo "BLK-FAIL no /dev/vda"
    exit 1
fi

runtime=$(arg blk_runtime)
engine=$(arg blk_engine)
# psync has no queue: iodepth only means something with libaio.
depth=16
[ "$engine" = libaio ] || depth=1

for job in seqread seqwrite randread randwrite; do
    case $job in
        seqread) rw=read bs=1M ;;
        seqwrite) rw=write bs=1M ;;
        randread) rw=randread bs=4k ;;
        randwrite) rw=randwrite bs=4k ;;
    esac
    echo "BLK-BEGIN $job"
    # --direct=1: every I/O reaches the device (no guest page cache); terse output is one
    # ;-separated line that the host side parses with awk.
    res=$(fio --name="$job" --filename=/dev/vda --direct=1 --ioengine="$engine" \
        --iodepth="$depth" --rw="$rw" --bs="$bs" --runtime="$runtime" --time_based \
        --output-format=terse 2>&1)
    rc=$?
    echo "BLK-END $job"
    if [ $rc -ne 0 ]; then
        echo "BLK-FAIL fio $job status $rc: $res"
        continue
    fi
    echo "BLK-RESULT $job $(echo "$res" | grep '^3;' | tail -n 1)"
done
echo "BLK-DONE"
