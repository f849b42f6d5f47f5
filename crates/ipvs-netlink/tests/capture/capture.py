#!/usr/bin/env python3
"""Capture the IPVS generic-netlink traffic of ipvsadm commands through an nlmon device.

Run as root in a throwaway namespace with IPVS (the lab):
    cargo xtask vm -- python3 crates/ipvs-netlink/tests/capture/capture.py OUT
Each netlink message is written as `<user|kernel> <hex>` after a `# command` line.
nlmon hands every netlink skb to packet sockets; pkttype tells the direction
(PACKET_USER 6 = sent by user space, PACKET_KERNEL 7 = sent by the kernel).
"""
import socket, subprocess, sys, time

COMMANDS = [
    "ipvsadm -A -t 10.0.0.1:80 -s rr",
    "ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 5 -x 100 -y 10",
    "ipvsadm -A -u [2001:db8::1]:53 -s sh -p 300 -M 64 -b sh-fallback,sh-port",
    "ipvsadm -a -u [2001:db8::1]:53 -r [2001:db8::2]:53 -g -w 0",
    "ipvsadm -A -f 7 -s wlc -o",
    "ipvsadm -a -f 7 -r 10.0.0.3 -i -w 2",
    "ipvsadm -Ln",
    "ipvsadm -Ln --timeout",
    "ipvsadm -D -t 10.0.0.1:80",
]

def main(out):
    subprocess.run("ip link add nlmon0 type nlmon && ip link set nlmon0 up", shell=True, check=True)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind(("nlmon0", 0))
    s.settimeout(0.5)
    with open(out, "w") as f:
        f.write("# kernel %s\n" % subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip())
        for cmd in COMMANDS:
            f.write("# %s\n" % cmd)
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
            f.write("# exit %d %s\n" % (r.returncode, r.stdout.replace("\n", "\\n") + r.stderr.replace("\n", "\\n")))
            time.sleep(0.2)
            while True:
                try:
                    data, addr = s.recvfrom(65536)
                except socket.timeout:
                    break
                who = {6: "user", 7: "kernel"}.get(addr[2], str(addr[2]))
                f.write("%s %s\n" % (who, data.hex()))

main(sys.argv[1])
