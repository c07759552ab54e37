#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for tests and CI (no systemd, no slurmdbd).
#
#   tools/local_slurm.sh start STATE_DIR   # install slurm-wlm + munge if missing, start
#                                          # munged, slurmctld, slurmd; wait for the node
#   tools/local_slurm.sh stop STATE_DIR    # stop exactly the daemons `start` started (by PID)
#
# After `start`, export SLURM_CONF=STATE_DIR/etc/slurm.conf for sbatch/squeue/scontrol.
# The node declares one GPU backed by /dev/null so that jobs requesting a GPU are accepted
# and run on the CPU (the code falls back to CPU when no CUDA device is usable).
set -euo pipefail

cmd=${1:?usage: $0 start|stop STATE_DIR}
state=$(realpath -m "${2:?usage: $0 start|stop STATE_DIR}")
conf="$state/etc/slurm.conf"
# Snakemake's in-job executor strips SLURM_* variables (SLURM_CONF too) before its nested
# srun, which then reads the compiled-in default path: point that at our config while we run.
system_conf=/etc/slurm/slurm.conf

stop() {
    for name in slurmd slurmctld munged; do
        pidfile="$state/run/$name.pid"
        [[ -f "$pidfile" ]] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    if [[ -L "$system_conf" && "$(readlink "$system_conf")" == "$conf" ]]; then
        rm -f "$system_conf"
    fi
}

start() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "installing slurm-wlm and munge from Debian" >&2
        local sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
        $sudo apt-get update -qq >&2 || true
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq slurm-wlm munge >&2
    fi
    mkdir -p "$state"/{etc,run,log,spool/ctld,spool/d,munge}
    chmod 700 "$state/munge"
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))

    # munge: a private key and socket, so nothing of the system's munge is touched
    [[ -f "$state/munge/munge.key" ]] || { dd if=/dev/urandom bs=1 count=1024 of="$state/munge/munge.key" status=none; chmod 600 "$state/munge/munge.key"; }
    munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
        --pid-file="$state/run/munged.pid" --log-file="$state/log/munged.log" --seed-file="$state/munge/munge.seed"
    for _ in $(seq 50); do [[ -S "$state/munge/munge.socket" ]] && break; sleep 0.1; done

    cat > "$conf" <<CONF
ClusterName=soundclf
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$(id -un)
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
AuthType=auth/munge
# cred_expire: a requeued job waits this long before it starts again (default 120 s)
AuthInfo=socket=$state/munge/munge.socket,cred_expire=20
CredType=cred/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
# the workflow polls with squeue (no accounting): finished jobs must stay visible long enough
MinJobAge=120
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    echo "Name=gpu File=/dev/null" > "$state/etc/gres.conf"
    if [[ -e "$system_conf" && ! -L "$system_conf" ]]; then
        echo "warning: $system_conf exists and is not ours; srun inside jobs will read it" >&2
    else
        mkdir -p "$(dirname "$system_conf")"
        ln -sfn "$conf" "$system_conf"
    fi

    export SLURM_CONF="$conf"
    slurmctld -i -f "$conf"
    slurmd -f "$conf"
    for _ in $(seq 300); do
        if [[ "$(sinfo -h -o %t 2>/dev/null)" == "idle" ]]; then
            echo "SLURM_CONF=$conf"
            return 0
        fi
        sleep 0.2
    done
    echo "the local SLURM node did not become idle; logs in $state/log" >&2
    sinfo >&2 || true
    tail -20 "$state"/log/*.log >&2 || true
    stop
    return 1
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
