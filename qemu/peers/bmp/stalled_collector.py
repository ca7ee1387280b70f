#!/usr/bin/env python3
"""A BMP collector that accepts connections and never reads (the seed's stalled collector).

Usage: stalled_collector.py ADDRESS PORT. Its receive buffer is made small so that the
exporter's queue, not the kernel, holds what it does not read. Runs until killed.
"""
import socket
import sys
import time

address, port = sys.argv[1], int(sys.argv[2])
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
listener.bind((address, port))
listener.listen(8)
held = []
while True:
    conn, _ = listener.accept()
    held.append(conn)  # kept open, never read
    time.sleep(0.1)
