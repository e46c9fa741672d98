# tests/rig/vmlib.sh: what the rig tests with vigild and QEMU guests share
# (sourced by tests/rig/test-vms and test-maint): why the test is skipped
# where it cannot run, the build's binaries for the rig, a private rig
# directory and prefix (so that a run never touches another's rig), the
# ok/bad/figure lines, a time limit, and virsh against a host's libvirtd.
# Set before sourcing: top_srcdir, top_builddir, VMLIB_NAME (a word naming
# the test: its summary line and temporary directories), VMLIB_LETTERS (two
# letters for the rig's prefix), VMLIB_LIMIT (seconds the whole test may take).
set -u
rig="$top_srcdir/tests/rig/rig"
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root for network/PID/mount namespaces"
for t in corosync corosync-cfgtool nft libvirtd virsh qemu-nbd python3; do
    command -v $t >/dev/null || skip "$t is not installed (scripts/install-deps installs it)"
done
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed (package qemu-system-x86)"
timeout 10 qemu-system-x86_64 -accel help 2>/dev/null | grep -qx tcg || skip "this QEMU has no TCG accelerator"
ip netns add vigil-probe-$$ 2>/dev/null || skip "this kernel or container cannot create network namespaces"
ip netns del vigil-probe-$$
VIGIL_RIG_VIGILD=$(cd "$top_builddir" && pwd)/vigild
VIGIL_RIG_VIGIL=$(cd "$top_builddir" && pwd)/vigil
for b in "$VIGIL_RIG_VIGILD" "$VIGIL_RIG_VIGIL" "$top_builddir/tests/rig/guest/counter.img"; do
    [ -e "$b" ] || { echo "FAIL: build $b first (make)"; exit 1; }
done
export VIGIL_RIG_VIGILD VIGIL_RIG_VIGIL

export VIGIL_RIG_DIR=$(mktemp -d "/tmp/vigil-rig-$VMLIB_NAME.XXXXXX")
rmdir "$VIGIL_RIG_DIR"
export VIGIL_RIG_PREFIX="$VMLIB_LETTERS$(( $$ % 10000 ))"
work=$(mktemp -d "/tmp/vigil-$VMLIB_NAME-test.XXXXXX")
. "$top_srcdir/tests/rig/poollib.sh"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
figure() { echo "figure: $*"; }
summary() { echo "$VMLIB_NAME: $pass passed, $fail failed"; [ $fail -eq 0 ]; }
cannot_go_on() { bad "$*"; echo "FAIL: cannot go on without it"; summary; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# the EXIT trap: on a failure the end of each vigild's log, then the rig down
vmlib_cleanup() {
    kill "$vmlib_watchdog" 2>/dev/null
    if [ "$fail" != 0 ] && [ -d "$VIGIL_RIG_DIR" ]; then # keep the daemons' word on a failure
        for h in h1 h2 h3; do
            [ -s "$VIGIL_RIG_DIR/$h/vigild.log" ] || continue
            echo "--- the end of $h's vigild.log"
            tail -n 25 "$VIGIL_RIG_DIR/$h/vigild.log"
        done
    fi
    timeout 60 "$rig" down >/dev/null 2>&1
    rm -rf "$work"
}
trap vmlib_cleanup EXIT
trap 'bad "stopped by a signal, or after the limit of $VMLIB_LIMIT s"; summary; exit 1' TERM INT
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep "$VMLIB_LIMIT" & sp=$!; wait $sp && kill -TERM $$ ) &
vmlib_watchdog=$!

# vs N ARGS...: virsh on host N against its own libvirtd; output in $vout
vs() {
    local n=$1; shift
    vout=$(timeout 30 "$rig" exec "h$n" virsh -q -c "qemu+tcp://10.99.0.$n/system" "$@" 2>&1)
}
