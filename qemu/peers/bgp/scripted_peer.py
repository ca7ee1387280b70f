#!/usr/bin/env python3
"""A scripted BGP speaker for the QEMU tests: raw BGP-4 over TCP, no library.

    scripted_peer.py LOCAL_ADDR LOCAL_AS REMOTE_ADDR MODE [N]

It connects from LOCAL_ADDR to REMOTE_ADDR:179, sends an OPEN (4-octet AS, IPv4 unicast,
route refresh), answers the appliance's OPEN with a KEEPALIVE, and once the session is up:

- `malformed`: sends an UPDATE whose Withdrawn Routes Length runs past the message (RFC 4271
  6.3 / RFC 7606 4: session reset, NOTIFICATION 3/1);
- `flood N`: announces N /24 prefixes from 10.128.0.0 on, one attribute set;
- `hold`: announces nothing.

It then waits (at most 15 s) for a NOTIFICATION and prints one line: `notification CODE
SUBCODE`, or `no notification` (after 15 s of an established session), or `failed WHY`.

    scripted_peer.py ADDR,ADDR,... LOCAL_AS REMOTE_ADDR together

connects from every ADDR at the same moment (their SYNs leave back to back) and prints
`connected N` once all N connections are up (each may take 5 s), or `failed ADDR WHY`.
"""
import errno
import select
import socket
import struct
import sys
import time

MARKER = b"\xff" * 16


def message(kind, body):
    return MARKER + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(asn, bgp_id):
    caps = bytes([1, 4, 0, 1, 0, 1])  # multiprotocol IPv4 unicast
    caps += bytes([2, 0])  # route refresh
    caps += bytes([65, 4]) + struct.pack("!I", asn)  # 4-octet AS
    params = bytes([2, len(caps)]) + caps
    my_as = asn if asn <= 0xFFFF else 23456
    body = struct.pack("!BHH", 4, my_as, 90) + socket.inet_aton(bgp_id) + bytes([len(params)]) + params
    return message(1, body)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def read_message(sock):
    header = read_exact(sock, 19)
    length, kind = struct.unpack("!HB", header[16:19])
    return kind, read_exact(sock, length - 19)


def flood(local, asn, n):
    attrs = bytes([0x40, 1, 1, 0])  # ORIGIN IGP
    attrs += bytes([0x40, 2, 6, 2, 1]) + struct.pack("!I", asn)  # AS_PATH (4-octet)
    attrs += bytes([0x40, 3, 4]) + socket.inet_aton(local)  # NEXT_HOP
    out = []
    nlri = b""
    for i in range(n):
        net = (10 << 24) | (128 << 16) | (i << 8)
        nlri += bytes([24]) + struct.pack("!I", net)[:3]
        if len(nlri) >= 3800 or i == n - 1:
            body = struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs + nlri
            out.append(message(2, body))
            nlri = b""
    return out


def together(addresses, remote):
    socks = []
    for local in addresses:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind((local, 0))
        sock.connect_ex((remote, 179))
        socks.append((local, sock))
    for local, sock in socks:
        _, writable, _ = select.select([], [sock], [], 5)
        if not writable:
            print(f"failed {local} timeout")
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            print(f"failed {local} {errno.errorcode.get(err, err)}")
            return
    print(f"connected {len(socks)}")
    for _, sock in socks:
        sock.close()


def main():
    local, asn, remote, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    if mode == "together":
        together(local.split(","), remote)
        return
    try:
        sock = socket.create_connection((remote, 179), timeout=10, source_address=(local, 0))
    except OSError as e:
        print(f"failed connect {e}")
        return
    sock.settimeout(15)
    sock.sendall(open_message(asn, local))
    established = False
    deadline = time.time() + 15
    try:
        while time.time() < deadline:
            kind, body = read_message(sock)
            if kind == 3:
                print(f"notification {body[0]} {body[1]}")
                return
            if kind == 1:
                sock.sendall(message(4, b""))
            elif kind == 4 and not established:
                established = True
                deadline = time.time() + 15
                if mode == "malformed":
                    sock.sendall(message(2, struct.pack("!HH", 10, 0)))
                elif mode == "flood":
                    for m in flood(local, asn, count):
                        sock.sendall(m)
            elif kind == 4:
                sock.sendall(message(4, b""))
    except socket.timeout:
        pass
    except EOFError:
        print("failed closed without notification")
        return
    except OSError as e:
        print(f"failed reset {e.errno}")
        return
    print("no notification" if established else "failed not established")


if __name__ == "__main__":
    main()
