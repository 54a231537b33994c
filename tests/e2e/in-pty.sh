#!/usr/bin/env bash
# in-pty.sh: run a command on this script's terminal, recording its settings before, during, after.
# Usage: script -qfec "in-pty.sh DIR CMD [ARGS...]" /dev/null   (script(1) provides the pty)
# Writes into DIR: stty.before, stty.after (`stty -g`, before CMD and after it ended),
# stty.during (the first `stty -g` sample that differed from stty.before while CMD ran; absent if
# none did), stty.before.txt and stty.after.txt (`stty -a`, for a readable diff), and status.
# CMD's stdin, stdout and stderr are the terminal.
set -euo pipefail

dir=${1:?usage: in-pty.sh DIR CMD [ARGS...]}
shift
tty=$(tty) || {
    echo "in-pty.sh: stdin is not a terminal" >&2
    exit 125
}
stty -g >"$dir/stty.before"
stty -a >"$dir/stty.before.txt"
# In the background, so this shell can sample the terminal while CMD runs. stdin must be named:
# a non-interactive shell gives background commands /dev/null as stdin otherwise.
"$@" <"$tty" &
pid=$!
before=$(cat "$dir/stty.before")
# Sample until CMD changes the settings (a terminal-aware CMD such as kiln goes raw at start) or
# ends. Only a sample that differs is kept, so a late sample after CMD restored the terminal
# cannot be mistaken for "CMD never changed it".
while kill -0 "$pid" 2>/dev/null; do
    now=$(stty -g) || break
    if [[ $now != "$before" ]]; then
        echo "$now" >"$dir/stty.during"
        break
    fi
    sleep 0.1
done
rc=0
wait "$pid" || rc=$?
echo "$rc" >"$dir/status"
stty -g >"$dir/stty.after"
stty -a >"$dir/stty.after.txt"
exit "$rc"
