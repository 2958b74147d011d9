#!/usr/bin/env bash
# Stop what tests/slurm/start_cluster.sh STATE_DIR started: slurmd, slurmctld, and munged if it
# started it (by their pid files, nothing else), then remove the test /etc/slurm/slurm.conf.
set -uo pipefail
STATE=${1:?usage: stop_cluster.sh STATE_DIR}
MARKER="# spurlab one-node test cluster"
CONF=/etc/slurm/slurm.conf

if [ -e "$CONF" ] && grep -qF "$MARKER" "$CONF"; then
    scancel --user=root 2>/dev/null || true   # jobs of the test cluster only (it is ours)
fi
for name in slurmd slurmctld munged; do
    f="$STATE/$name.pid"
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$f"
done
if [ -e "$CONF" ] && grep -qF "$MARKER" "$CONF"; then rm -f "$CONF"; fi
exit 0
