# tests/rig/vagent-hosts.sh: sourced by tests/rig/test-vagent-qemu and
# bench/migrate/run.  N small hypervisor hosts, each its own network, mount
# and PID namespace running one libvirtd with the QEMU driver (TCG guests),
# on a private switch: a bridge inside a namespace of its own, 10.77.0.N/24,
# no name and no address in the root namespace.  Settings from
# ../shared/RIG-NOTES.md (private libvirt directories bind-mounted, distinct
# host_uuid, TCP without auth on the host's address, QEMU as root without
# cgroups or namespaces).  A shell as PID 1 of each host reaps the QEMU
# processes libvirtd daemonizes; killing it powers the host off with its
# guests.  Until the rig (tests/rig/rig) grows libvirtd per host (branch
# vrig), this is the VM agent's own small one.
#
#   vh_init DIR PREFIX   where the state goes; names of the namespaces
#   vh_up N              switch + hosts h1..hN, libvirtd warmed up on each
#   vh_in I CMD...       CMD in host I's network namespace (at most 120 s)
#   vh_uri I             qemu+tcp://10.77.0.I/system
#   vh_libvirtd_pid I    libvirtd's PID (root namespace), empty when stopped
#   vh_libvirtd_start I  (again, after vh_libvirtd_stop I)
#   vh_libvirtd_stop I   libvirtd only: the host and its guests keep running
#   vh_guest_pid NAME    the PID of guest NAME's QEMU
#   vh_guest_xml NAME [BLOB]  a 64 MiB BIOS-only guest without disk (128 MiB
#                        with BLOB's bytes in its RAM)
#   vh_down              everything made, removed (also after a failure)
VH_NET=10.77.0

vh_init() {
    VH_DIR=$1 VH_P=$2 VH_N=0
}

vh_ns() { echo "${VH_P}-h$1"; }

vh_init_pid() { # PID 1 of host I's PID namespace
    local up
    up=$(cat "$VH_DIR/h$1/unshare.pid" 2>/dev/null) || return 0
    cat "/proc/$up/task/$up/children" 2>/dev/null | awk '{print $1}'
}

vh_libvirtd_pid() {
    local init
    init=$(vh_init_pid "$1")
    [ -n "$init" ] && pgrep -P "$init" -x libvirtd
}

vh_uri() { echo "qemu+tcp://$VH_NET.$1/system"; }

vh_in() {
    local i=$1; shift
    timeout 120 ip netns exec "$(vh_ns "$i")" "$@"
}

vh_host_files() { # I: the host's private libvirt directories and configuration
    local i=$1 d="$VH_DIR/h$1"
    mkdir -p "$d/etc" "$d/run" "$d/lib" "$d/cache" "$d/log"
    cat > "$d/etc/libvirtd.conf" <<EOF
listen_tls = 0
listen_tcp = 1
listen_addr = "$VH_NET.$i"
auth_tcp = "none"
auth_unix_rw = "none"
host_uuid = "$(printf '7a6e0000-0000-4000-8000-%012d' "$i")"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    cat > "$d/etc/qemu.conf" <<EOF
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_host = "$VH_NET.$i"
migration_address = "$VH_NET.$i"
EOF
}

vh_libvirtd_start() { # boots the host (namespaces, PID 1) the first time
    local i=$1 d="$VH_DIR/h$1" init
    init=$(vh_init_pid "$i")
    if [ -n "$init" ]; then
        # libvirtd again inside the running host; PID 1 adopts and reaps it
        timeout 20 nsenter -t "$init" -n -m -p -- sh -c 'libvirtd --listen >/dev/null 2>&1 &'
    else
        # a shell as PID 1 of the host's PID namespace runs libvirtd and
        # reaps whatever is reparented to it
        nohup ip netns exec "$(vh_ns "$i")" unshare --mount --pid --fork --propagation private sh -c "
            mount -t proc proc /proc && mount -t tmpfs tmpfs /run && mkdir -p /run/libvirt &&
            mount --bind '$d/run' /run/libvirt && mount --bind '$d/etc' /etc/libvirt &&
            mount --bind '$d/lib' /var/lib/libvirt && mount --bind '$d/cache' /var/cache/libvirt &&
            mount --bind '$d/log' /var/log/libvirt || exit 1
            libvirtd --listen &
            while :; do wait; sleep 1; done" > "$d/init.out" 2>&1 &
        echo $! > "$d/unshare.pid"
    fi
    # answering, and the QEMU driver's first probe done (about 4 s once)
    local t
    for t in $(seq 60); do
        vh_in "$i" virsh -c "$(vh_uri "$i")" domcapabilities >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "vagent-hosts: libvirtd on h$i does not answer (see $d/log/libvirtd.log, $d/init.out)" >&2
    return 1
}

vh_libvirtd_stop() { # only libvirtd (the guests keep running, as on a real host)
    local pid
    pid=$(vh_libvirtd_pid "$1")
    [ -n "$pid" ] || return 0
    kill -CONT "$pid" 2>/dev/null
    kill -TERM "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid"
}

vh_up() {
    local n=$1 i sw
    sw="${VH_P}-sw"
    mkdir -p "$VH_DIR"
    ip netns add "$sw" || return 1
    echo "$sw" >> "$VH_DIR/made"
    ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up || return 1
    for i in $(seq "$n"); do
        ip netns add "$(vh_ns "$i")" || return 1
        echo "$(vh_ns "$i")" >> "$VH_DIR/made"
        VH_N=$i
        ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$(vh_ns "$i")" &&
            ip -n "$sw" link set "p$i" master br0 && ip -n "$sw" link set "p$i" up &&
            ip -n "$(vh_ns "$i")" addr add "$VH_NET.$i/24" dev eth0 &&
            ip -n "$(vh_ns "$i")" link set eth0 up && ip -n "$(vh_ns "$i")" link set lo up || return 1
        vh_host_files "$i"
        vh_libvirtd_start "$i" || return 1
    done
}

vh_guest_pid() { pgrep -f "qemu-system-x86_64 -name guest=$1," | head -1; }

vh_guest_xml() { # NAME [BLOB]: BLOB (a file of up to 64 MiB) is loaded into
    # the guest's RAM at 32 MiB, so that a migration has that much to copy
    local mem=64 extra="" ns=""
    if [ -n "${2:-}" ]; then
        mem=128 ns=" xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
        extra="  <qemu:commandline>
    <qemu:arg value='-device'/>
    <qemu:arg value='loader,file=$2,addr=0x2000000,force-raw=on'/>
  </qemu:commandline>"
    fi
    cat <<EOF
<domain type='qemu'$ns>
  <name>$1</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='null'/>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
$extra
</domain>
EOF
}

vh_down() {
    local i init
    [ -n "${VH_DIR:-}" ] || return 0
    for i in $(seq "$VH_N"); do
        init=$(vh_init_pid "$i")
        [ -n "$init" ] && kill -KILL "$init" 2>/dev/null
    done
    sleep 0.5
    if [ -s "$VH_DIR/made" ]; then
        while read -r ns; do ip netns del "$ns" 2>/dev/null; done < "$VH_DIR/made"
    fi
    rm -rf "$VH_DIR"
}
