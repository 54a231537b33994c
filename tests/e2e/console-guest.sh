#!/bin/sh
# console-guest.sh: /test.sh of the console guest (L2): a shell on ttyS0, or an idle wait.
# Run by busybox sh from the harness's guest init (after KILN-GUEST-INIT), with the console
# (ttyS0) as stdin and stdout; init powers off when this returns.
# kiln_action: shell (print CONSOLE-READY, then an interactive shell reads the console) |
# idle (sleep 30 between IDLE-BEGIN and IDLE-END, then 5 s more).

read -r cmdline </proc/cmdline
action=
for w in $cmdline; do
    case $w in kiln_action=*) action=${w#*=} ;; esac
done
case $action in
    shell)
        # By now the 8250 driver is up: input sent from here on is not lost in a FIFO reset.
        echo CONSOLE-READY
        exec sh
        ;;
    idle)
        echo IDLE-BEGIN
        sleep 30
        echo IDLE-END
        # The host samples kiln's CPU time when it sees IDLE-END: kiln must still be there.
        sleep 5
        ;;
    *) echo "CONSOLE unknown action '$action'" ;;
esac
