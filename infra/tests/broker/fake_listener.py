#!/usr/bin/env python3
"""A listener on 127.0.0.1 that is not a healthy Kafka broker, for the broker tests.

    fake_listener.py MODE [PORT]     (PORT 0 or absent: a free one)

Prints the port it listens on, then serves until killed. MODE:
  silent       accepts connections and never answers (a stopped or hung process)
  close        accepts and closes each connection at once
  apiversions  answers ApiVersions v0 like a broker offering Metadata v0-12, then closes
               the connection on the next request: the shape of a broker whose storage
               failed (the protocol layer answers, every storage request fails)
  kafka4       a healthy broker that, like Kafka 4, offers Metadata from v4 only: answers
               ApiVersions and Metadata v4 (one broker, one topic) well formed
"""

from __future__ import annotations

import socket
import struct
import sys
import threading


def read_frame(conn: socket.socket) -> bytes | None:
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    size = exactly(4)
    return None if size is None else exactly(struct.unpack(">i", size)[0])


def apiversions(conn: socket.socket) -> None:
    with conn:
        frame = read_frame(conn)
        if frame is None:
            return
        api_key, _version, correlation = struct.unpack(">hhi", frame[:8])
        if api_key != 18:
            return
        body = struct.pack(">ih", correlation, 0) + struct.pack(">i", 2) + struct.pack(">hhh", 3, 0, 12) + struct.pack(">hhh", 18, 0, 3)
        conn.sendall(struct.pack(">i", len(body)) + body)
        read_frame(conn)  # the Metadata request: dropped, connection closed


def string(value: str) -> bytes:
    return struct.pack(">h", len(value)) + value.encode()


def kafka4(conn: socket.socket, port: int) -> None:
    with conn:
        while (frame := read_frame(conn)) is not None:
            api_key, version, correlation = struct.unpack(">hhi", frame[:8])
            if api_key == 18:
                body = struct.pack(">ih", correlation, 0) + struct.pack(">i", 2) + struct.pack(">hhh", 3, 4, 12) + struct.pack(">hhh", 18, 0, 4)
            elif api_key == 3 and version == 4:
                partition = struct.pack(">hii", 0, 0, 1) + struct.pack(">ii", 1, 1) + struct.pack(">ii", 1, 1)
                topic = struct.pack(">h", 0) + string("a.topic") + struct.pack(">b", 0) + struct.pack(">i", 1) + partition
                broker = struct.pack(">i", 1) + string("127.0.0.1") + struct.pack(">i", port) + struct.pack(">h", -1)
                body = (struct.pack(">ii", correlation, 0) + struct.pack(">i", 1) + broker + string("fake-cluster")
                        + struct.pack(">i", 1) + struct.pack(">i", 1) + topic)
            else:
                return
            conn.sendall(struct.pack(">i", len(body)) + body)


def main() -> None:
    mode = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    print(server.getsockname()[1], flush=True)
    held = []
    while True:
        conn, _ = server.accept()
        if mode == "silent":
            held.append(conn)  # never read, never answered, never closed
        elif mode == "close":
            conn.close()
        elif mode == "apiversions":
            threading.Thread(target=apiversions, args=(conn,), daemon=True).start()
        elif mode == "kafka4":
            threading.Thread(target=kafka4, args=(conn, server.getsockname()[1]), daemon=True).start()
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
