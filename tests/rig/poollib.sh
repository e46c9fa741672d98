# tests/rig/poollib.sh: helpers for the scripts that drive a pool on the rig
# (tests/rig/test-pool, bench/pooldb/run).  Sourced by bash; needs $rig
# (the rig script), $work (a scratch directory) and python3.

# vg HOST ARGS...: `vigil ARGS` on HOST, bounded by $VT (default 30 s);
# leaves the exit status in $rc, standard output in $out and the first line
# of standard error in $msg
vg() {
    local h=$1; shift
    timeout "${VT:-30}" "$rig" exec "$h" vigil "$@" </dev/null >"$work/out" 2>"$work/err"
    rc=$?
    out=$(cat "$work/out")
    msg=$(grep -m 1 . "$work/err")
}
ip_of() { echo "10.99.0.${1#h}"; }

# load HOST: `vigil status --json` on HOST into S_pool, S_master, S_is_master,
# S_quorate, S_members (sorted, comma-separated), S_version, S_epoch,
# S_digest, S_synced, S_corosync: JSON null reads "null", an absent key
# "missing"; S_ok=0 (and every field "none") when there was no JSON object
PY_STATUS='
import sys, json, shlex
def v(x):
    return "null" if x is None else (str(x).lower() if isinstance(x, bool) else str(x))
try:
    s = json.loads(sys.stdin.read())
    assert isinstance(s, dict)
    g = lambda k: v(s[k]) if k in s else "missing"
    m = s.get("members")
    f = dict(pool=g("pool"), master=g("master"), is_master=g("is_master"), quorate=g("quorate"),
             members=",".join(sorted(map(str, m))) if isinstance(m, list) else "missing",
             version=g("database_version"), epoch=g("database_epoch"), digest=g("database_digest"),
             synced=g("synced"), corosync=g("corosync"), ok="1")
except Exception:
    f = dict(pool="none", master="none", is_master="none", quorate="none", members="none", version="none",
             epoch="none", digest="none", synced="none", corosync="none", ok="0")
for k, x in f.items():
    print("S_%s=%s" % (k, shlex.quote(x)))
'
load() {
    eval "$(timeout 10 "$rig" exec "$1" vigil status --json 2>/dev/null </dev/null | python3 -c "$PY_STATUS")"
}

# corosync_running HOST: a corosync process runs in HOST
corosync_running() { timeout 10 "$rig" exec "$1" pgrep -x corosync >/dev/null 2>&1; }

# agree SECS POOL HOST...: polls until each HOST is in POOL, synced and
# quorate, sees exactly these HOSTs as members, and all of them report the
# same master (one of them, and is_master there only), version, epoch and
# digest.  Sets AG_master, AG_version, AG_digest; prints the views if not.
agree() {
    local secs=$1 pool=$2; shift 2
    local want t0=$SECONDS h good sig first views
    want=$(printf '%s\n' "$@" | sort | paste -sd, -)
    while :; do
        good=1 first="" views=""
        for h in "$@"; do
            load "$h"
            views="$views  $h: pool=$S_pool synced=$S_synced quorate=$S_quorate members=$S_members master=$S_master is_master=$S_is_master version=$S_version epoch=$S_epoch digest=$S_digest corosync=$S_corosync"$'\n'
            [ "$S_pool" = "$pool" ] && [ "$S_synced" = true ] && [ "$S_quorate" = true ] && [ "$S_members" = "$want" ] || good=0
            case ",$want," in *",$S_master,"*) ;; *) good=0 ;; esac
            if [ "$S_master" = "$h" ]; then [ "$S_is_master" = true ] || good=0; else [ "$S_is_master" = false ] || good=0; fi
            sig="$S_master $S_version $S_epoch $S_digest"
            [ -z "$first" ] && first=$sig
            [ "$sig" = "$first" ] || good=0
        done
        if [ $good = 1 ]; then
            AG_master=$S_master AG_version=$S_version AG_digest=$S_digest
            return 0
        fi
        if [ $((SECONDS - t0)) -ge "$secs" ]; then
            echo "  after ${secs} s the hosts still disagree (or are not synced):"
            printf '%s' "$views"
            return 1
        fi
        sleep 0.3
    done
}

# join_token HOST: `vigil pool join-token` on HOST; the token in $token;
# fails unless it printed exactly one line starting with vigil1-
join_token() {
    vg "$1" pool join-token
    token=$out
    [ $rc = 0 ] && [ "$(printf '%s\n' "$token" | wc -l)" = 1 ] && case $token in vigil1-?*) true ;; *) false ;; esac
}

# kill_tree PID...: ends these background jobs of ours and their children
kill_tree() {
    local p
    for p in "$@"; do
        kill $(ps -o pid= --ppid "$p" 2>/dev/null) "$p" 2>/dev/null
    done
}
