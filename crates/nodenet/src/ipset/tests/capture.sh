#!/usr/bin/env bash
# Captures the netlink messages the `ipset` CLI exchanges with the kernel, as hex, for the
# byte-exact tests in this directory. Run as root; it works in a throwaway network namespace:
#   unshare -n bash crates/nodenet/src/ipset/tests/capture.sh > crates/nodenet/src/ipset/tests/captured.txt
# Output: one "# <ipset arguments>" line per command, then "send <hex>" / "recv <hex>" per syscall.
set -u
cmd() {
    echo "# $*"
    strace -e trace=sendto,sendmsg,recvmsg -e write=all -e read=all -xx -s 65536 ipset "$@" 2>&1 >/dev/null |
        awk '/^(sendto|sendmsg)\(/ { if (buf != "") print dir, buf; dir = "send"; buf = ""; next }
             /^recvmsg\(/ { if (buf != "") print dir, buf; dir = "recv"; buf = ""; next }
             /^ \| [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / { line = substr($0, 11, 49); gsub(/ /, "", line); buf = buf line; next }
             END { if (buf != "") print dir, buf }'
}
cmd create kip hash:ip,port family inet hashsize 1024 maxelem 65536
cmd create k6 hash:ip,port family inet6 comment
cmd create kpip hash:ip,port,ip
cmd create kpnet hash:ip,port,net
cmd create kip1 hash:ip
cmd create knet hash:net
cmd create kbp bitmap:port range 0-65535
cmd add kip 10.96.0.10,tcp:53
cmd add k6 fd00::1,udp:53 comment hello
cmd add kpip 10.0.0.1,tcp:80,10.0.0.2
cmd add kpnet 10.0.0.1,sctp:80,10.1.0.0/16
cmd add kip1 10.0.0.9
cmd add knet 10.2.0.0/16
cmd add kbp 30000
cmd test kbp 30000
cmd test kbp 30001
cmd del kip 10.96.0.10,tcp:53
printf 'add kip 10.0.0.1,tcp:80\nadd kip 10.0.0.2,udp:53\n' > /tmp/ipset-capture-restore.txt
cmd restore -f /tmp/ipset-capture-restore.txt
cmd list kip
cmd list k6
cmd list kpip
cmd list kpnet
cmd list kip1
cmd list knet
cmd list kbp
cmd list -n
cmd rename kip1 kip1b
cmd swap kip1b knet
cmd create kip2 hash:ip
cmd swap kip1b kip2
cmd create kip hash:ip,port
cmd flush kip
cmd destroy kip
cmd destroy kip
for i in $(seq 1 2500); do echo "add kbig 10.1.$((i / 256)).$((i % 256))"; done > /tmp/ipset-capture-big.txt
ipset create kbig hash:ip
ipset restore -f /tmp/ipset-capture-big.txt
cmd list kbig
