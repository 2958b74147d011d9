#!/usr/bin/env bash
# Start a one-node SLURM cluster on localhost, as root, for tests/test_slurm.py.
#
#   tests/slurm/start_cluster.sh STATE_DIR     (stop it with tests/slurm/stop_cluster.sh STATE_DIR)
#
# Installs slurm-wlm and munge from Debian if missing, writes /etc/slurm/slurm.conf (jobs read the
# config from there: a SLURM_CONF set in the submitting shell does not reach them), starts munged
# (it needs /run/munge), slurmctld and slurmd, and waits until the node is idle. No accounting
# (no slurmdbd): submit without an account and poll with squeue. State, logs and pid files live in
# STATE_DIR; the stop script ends only the daemons this script started.
# Exit codes: 0 cluster up; 3 not root or apt-get missing (caller skips); 4 a foreign
# /etc/slurm/slurm.conf is present (a real cluster: we do not touch it); 1 anything else.
set -euo pipefail

STATE=${1:?usage: start_cluster.sh STATE_DIR}
MARKER="# spurlab one-node test cluster"
CONF=/etc/slurm/slurm.conf
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

if [ "$(id -u)" != 0 ]; then echo "start_cluster: must run as root" >&2; exit 3; fi
if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    echo "start_cluster: $CONF exists and is not ours (a real cluster?); not touching it" >&2; exit 4
fi

# a test cluster left running by an earlier, interrupted run: stop it first
if [ -e "$CONF" ]; then
    old_state=$(sed -n "s|^$MARKER (tests/slurm/start_cluster.sh; state in \(.*\))\$|\1|p" "$CONF")
    if [ -n "$old_state" ]; then bash "$(dirname "$0")/stop_cluster.sh" "$old_state"; fi
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    if ! command -v apt-get >/dev/null; then echo "start_cluster: apt-get not available" >&2; exit 3; fi
    echo "start_cluster: installing slurm-wlm and munge" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$STATE/apt.log" 2>&1
    apt-get install -y -q --no-install-recommends slurm-wlm munge >>"$STATE/apt.log" 2>&1
fi

# munge: key (the package normally makes one), /run/munge, the daemon as user munge
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$STATE/munged.pid"   # started here: the stop script ends it
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n | unmunge >/dev/null

# slurm.conf from what slurmd detects on this machine (CPUs, memory)
NODE=$(hostname -s)
CPUS=$(nproc)
MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
mkdir -p /etc/slurm "$STATE/ctld" "$STATE/slurmd"
cat >"$CONF" <<CONFEOF
$MARKER (tests/slurm/start_cluster.sh; state in $STATE)
ClusterName=spurlabtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF

slurmctld -i   # -i: ignore state left by an earlier run
slurmd -N "$NODE"
for _ in $(seq 120); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case "$state" in
        idle*) echo "start_cluster: node $NODE idle ($CPUS CPUs, $MEM MB)"; exit 0 ;;
        down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
done
echo "start_cluster: node $NODE not idle after 60 s (state '$state'); see $STATE/slurmctld.log" >&2
exit 1
