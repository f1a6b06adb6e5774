#!/usr/bin/env python3
"""A userspace switch in miniature, for nsinspect's tests: frames read from a packet socket on each of
the given interfaces are written out of the other(s), the way Open vSwitch's netdev datapath (or any
packet-socket forwarder) moves them. Nothing is learned: every frame goes out of every other port.

usage: packet-forwarder.py READY_FILE IFNAME IFNAME [IFNAME…]   (runs until killed)
"""
import os
import select
import socket
import sys

ETH_P_ALL = 0x0003


def main() -> None:
    ready, names = sys.argv[1], sys.argv[2:]
    if len(names) < 2:
        sys.exit("packet-forwarder: give a ready file and at least two interfaces")
    ports = []
    for name in names:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        ports.append(s)
    with open(ready, "w") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        readable, _, _ = select.select(ports, [], [])
        for s in readable:
            frame, address = s.recvfrom(65535)
            if address[2] == socket.PACKET_OUTGOING:  # our own transmissions, seen again
                continue
            for other in ports:
                if other is not s:
                    other.send(frame)


if __name__ == "__main__":
    main()
