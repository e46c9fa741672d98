# tests/rig/guestlib.sh: sourced by the rig tests that run the counter guest
# (tests/rig/test-libvirt, tests/rig/test-vagent, bench/migrate): its
# console as seen from each host, and its QEMU processes.  Needs $rig (the
# rig script) and $G (the guest's name, one no other rig uses).

# ticks HOST: the tick numbers the guest printed on HOST, one a line
ticks() { timeout 10 "$rig" guest-log "$1" "$G" 2>/dev/null | tr -d '\r' | sed -n "s/^vigil-guest $G tick \([0-9]\{1,\}\)\$/\1/p"; }
last_tick() { ticks "$1" | tail -n 1; }
boots() { timeout 10 "$rig" guest-log "$1" "$G" 2>/dev/null | tr -d '\r' | grep -c "^vigil-guest $G boot\$"; }
# wait_tick HOST ABOVE SECONDS: until HOST's last tick is > ABOVE
wait_tick() {
    local t=0 l
    while [ $t -lt $(($3 * 5)) ]; do
        l=$(last_tick "$1")
        [ -n "$l" ] && [ "$l" -gt "$2" ] && return 0
        sleep 0.2; t=$((t + 1))
    done
    return 1
}
# wait_boot HOST N SECONDS: until HOST's log has N boot lines and tick 1 after the last
wait_boot() {
    local t=0 l
    while [ $t -lt $(($3 * 5)) ]; do
        l=$(timeout 10 "$rig" guest-log "$1" "$G" 2>/dev/null | tr -d '\r' |
            awk -v g="$G" '$0 == "vigil-guest " g " boot" { b++; n = "" } $0 ~ "^vigil-guest " g " tick [0-9]+$" { n = $4 }
                END { print b + 0, n }')
        [ "${l% *}" = "$2" ] && [ -n "${l#* }" ] && [ "${l#* }" -ge 1 ] && return 0
        sleep 0.2; t=$((t + 1))
    done
    return 1
}
# guest_pids: live (not zombie) processes anywhere on the machine running our guest
guest_pids() {
    local p
    for p in $(pgrep -f "guest=$G," 2>/dev/null); do
        grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null || echo "$p"
    done
}
