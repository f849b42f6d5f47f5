#!/usr/bin/env python3
"""Captures real kernel replies as seeds for the rtnetlink and conntrack fuzz targets.

Run as root inside a throwaway network namespace that has something to report:

    unshare -n sh -c 'ip link set lo up; ip addr add 10.0.0.1/24 dev lo; \
      ip -6 addr add fd00::1/64 dev lo nodad; ip link add v0 type veth peer name v1; \
      ip route add local 10.96.0.0/16 dev lo table local proto static; \
      iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT; \
      python3 capture-seeds.py corpus'

Each datagram the kernel sends for a dump (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, conntrack
IPCTNL_MSG_CT_GET) is written to corpus/TARGET/NAME-N, byte for byte.
"""
import os
import socket
import struct
import sys

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
NLMSG_DONE = 3


def dump(proto, msg_type, body, family=socket.AF_UNSPEC):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
    s.bind((0, 0))
    hdr = struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    s.send(hdr + body)
    out = []
    while True:
        d = s.recv(65536)
        out.append(d)
        if struct.unpack_from("=H", d, 4)[0] == NLMSG_DONE or any(
            struct.unpack_from("=H", d, off + 4)[0] == NLMSG_DONE for off in offsets(d)
        ):
            return out


def offsets(d):
    off = 0
    while off + 16 <= len(d):
        yield off
        n = struct.unpack_from("=I", d, off)[0]
        if n < 16:
            return
        off += (n + 3) & ~3


def save(root, target, name, datagrams):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    for i, d in enumerate(datagrams):
        with open(os.path.join(root, target, f"{name}-{i}"), "wb") as f:
            f.write(d)


def main(root):
    ifinfo = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
    save(root, "rtnetlink_link", "getlink", dump(NETLINK_ROUTE, 18, ifinfo))  # RTM_GETLINK
    ifaddr = struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)
    save(root, "rtnetlink_address", "getaddr", dump(NETLINK_ROUTE, 22, ifaddr))  # RTM_GETADDR
    for fam, tag in ((socket.AF_INET, "v4"), (socket.AF_INET6, "v6")):
        rtm = struct.pack("=BBBBBBBBI", fam, 0, 0, 0, 255, 0, 0, 0, 0)
        save(root, "rtnetlink_route", f"getroute-{tag}", dump(NETLINK_ROUTE, 26, rtm))
    # A UDP flow to conntrack: one datagram to a closed port.
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("127.0.0.1", 9999))
    # IPCTNL_MSG_CT_GET = (NFNL_SUBSYS_CTNETLINK 1 << 8) | 1; nfgenmsg: family, version, res_id.
    nfgen = struct.pack("=BBH", socket.AF_INET, 0, 0)
    save(root, "conntrack", "ctget", dump(NETLINK_NETFILTER, (1 << 8) | 1, nfgen))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "corpus")
