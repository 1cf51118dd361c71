#!/usr/bin/env python3
"""Is there a working Kafka broker at HOST:PORT? Asked with real Kafka requests.

    kafka_check.py HOST PORT [--timeout SECONDS] [--quiet]

A TCP connect is not enough: a broker whose storage failed may keep accepting
connections while it fails every request, and so does a stopped
process (the kernel completes the handshake into its backlog). This sends, on one
connection, ApiVersions v0 and then Metadata (v1, or the oldest version the broker offers
up to v8: Kafka 4 dropped v0-v3) with an empty topic list, which brokers answer with
their brokers (some also list their topics, reading their store), and calls
the broker healthy only when both come back well formed, without an error code, and
Metadata names at least one broker. When KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are
set, it signs in by SCRAM (RFC 5802: SaslHandshake v1, then SaslAuthenticate v1) between the two, as a broker that requires
authentication answers nothing else before.

Exit status:
  0  a healthy Kafka broker answers
  1  something accepts TCP connections but does not answer Kafka requests: wedged,
     stopped, overloaded past the timeout, or not Kafka at all (the message says which
     step failed: a listener that does not even answer ApiVersions is probably foreign)
  2  nothing listens there (connection refused, host or network unreachable, unknown host)

One line on stdout says what was found (not with --quiet). Python 3 standard library
only; the Kafka wire protocol is written out below (size-prefixed frames, request
header v1: api_key, api_version, correlation_id, client_id).
"""

from __future__ import annotations

import argparse
import base64
import errno
import hashlib
import hmac
import os
import secrets
import socket
import struct
import sys
import time
from dataclasses import dataclass

HEALTHY, NOT_KAFKA, NOTHING = 0, 1, 2
API_VERSIONS, METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 3, 17, 36
# Kafka's codes for the SCRAM mechanisms (AlterUserScramCredentials), and their hashes.
MECHANISMS = {"SCRAM-SHA-256": (1, hashlib.sha256), "SCRAM-SHA-512": (2, hashlib.sha512)}
CLIENT_ID = b"kafka-check"
MAX_FRAME = 64 * 1024 * 1024


class Unhealthy(Exception):
    """The listener answered, but not as a healthy Kafka broker."""


class Reader:
    """Decodes the big-endian primitives of a response body."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise Unhealthy(f"malformed response: {len(self.data)} bytes, needed {self.pos + n}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def uvarint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.int8() & 0xFF
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise Unhealthy("malformed response: a varint longer than 5 bytes")

    def compact_len(self) -> int:
        """A compact array's length (flexible versions: unsigned varint, length + 1)."""
        return max(self.uvarint() - 1, 0)

    def compact_string(self) -> str | None:
        n = self.uvarint() - 1
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def skip_tags(self) -> None:
        """Tagged fields (flexible versions), which this client does not read."""
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def array_len(self) -> int:
        n = self.int32()
        if n > 1_000_000:
            raise Unhealthy(f"malformed response: an array of {n} elements")
        return max(n, 0)


def uvarint(value: int) -> bytes:
    """An unsigned varint (flexible versions' lengths; record fields after zigzag)."""
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def string(value: str | bytes | None) -> bytes:
    """A nullable STRING (int16 length, -1 for null)."""
    if value is None:
        return struct.pack(">h", -1)
    data = value.encode() if isinstance(value, str) else value
    return struct.pack(">h", len(data)) + data


class Connection:
    """One connection; request() sends a frame and returns the matching response body."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.correlation = 0

    def close(self) -> None:
        self.sock.close()

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        return left

    def _recv_exactly(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            self.sock.settimeout(self._remaining())
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise Unhealthy("connection closed by the broker" if got == 0 and not chunks
                                else "connection closed in the middle of a response")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def request(self, api_key: int, api_version: int, body: bytes, flexible: bool = False) -> Reader:
        """Sends one request; `flexible` versions use request header v2 and response header
        v1, which add (empty) tagged fields."""
        self.correlation += 1
        header = struct.pack(">hhi", api_key, api_version, self.correlation) + string(CLIENT_ID)
        if flexible:
            header += b"\0"
        frame = header + body
        self.sock.settimeout(self._remaining())
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._recv_exactly(4))[0]
        if not 4 <= size <= MAX_FRAME:
            raise Unhealthy(f"not a Kafka response (frame size {size})")
        reader = Reader(self._recv_exactly(size))
        correlation = reader.int32()  # response header v0 for both requests
        if correlation != self.correlation:
            raise Unhealthy(f"not a Kafka response (correlation id {correlation}, sent {self.correlation})")
        if flexible:
            reader.skip_tags()
        return reader


def api_versions(conn: Connection) -> dict[int, tuple[int, int]]:
    """ApiVersions v0: error_code, [api_key, min_version, max_version]."""
    body = conn.request(API_VERSIONS, 0, b"")
    error = body.int16()
    if error != 0:
        raise Unhealthy(f"ApiVersions answered error code {error}")
    versions = {}
    for _ in range(body.array_len()):
        key, low, high = body.int16(), body.int16(), body.int16()
        versions[key] = (low, high)
    return versions


def metadata(conn: Connection, version: int, all_topics: bool = False) -> tuple[list[tuple[int, str, int]], list[tuple[str, int, int]]]:
    """Metadata (v1 to v8, the non-flexible ones): brokers and topics, as (name, error
    code, partition count), every field parsed so that a malformed answer is noticed.
    Asks for no topic (v1+: an empty list; some brokers list all anyway) unless `all_topics`
    (a null list: every topic)."""
    request = struct.pack(">i", -1 if all_topics else 0)
    if version >= 4:
        request += struct.pack(">b", 0)  # allow_auto_topic_creation
    if version >= 8:
        request += struct.pack(">bb", 0, 0)  # include cluster/topic authorized operations
    body = conn.request(METADATA, version, request)
    if version >= 3:
        body.int32()  # throttle_time_ms
    brokers = []
    for _ in range(body.array_len()):
        node, host, port, _rack = body.int32(), body.string(), body.int32(), body.string()
        brokers.append((node, host or "", port))
    if version >= 2:
        body.string()  # cluster_id
    body.int32()  # controller_id
    topics = []
    for _ in range(body.array_len()):
        error, name, _internal = body.int16(), body.string(), body.int8()
        partitions = body.array_len()
        topics.append((name or "", error, partitions))
        for _ in range(partitions):
            body.int16(), body.int32(), body.int32()  # error_code, partition, leader
            if version >= 7:
                body.int32()  # leader_epoch
            for _ in range(body.array_len()):  # replicas
                body.int32()
            for _ in range(body.array_len()):  # isr
                body.int32()
            if version >= 5:
                for _ in range(body.array_len()):  # offline replicas
                    body.int32()
        if version >= 8:
            body.int32()  # topic_authorized_operations
    if version >= 8:
        body.int32()  # cluster_authorized_operations
    return brokers, topics


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    mechanism: str = "SCRAM-SHA-512"

    def __repr__(self) -> str:  # never show the password
        return f"Credentials({self.username!r}, {self.mechanism})"


def credentials_from_env() -> Credentials | None:
    """The client's credentials, when KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are set."""
    username, password = os.environ.get("KAFKA_SASL_USERNAME"), os.environ.get("KAFKA_SASL_PASSWORD")
    if not username or not password:
        return None
    mechanism = os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").upper()
    if mechanism not in MECHANISMS:
        raise ValueError(f"KAFKA_SASL_MECHANISM {mechanism!r}: expected one of {', '.join(MECHANISMS)}")
    return Credentials(username, password, mechanism)


def _bytes(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def _authenticate_step(conn: Connection, token: bytes) -> bytes:
    body = conn.request(SASL_AUTHENTICATE, 1, _bytes(token))
    error, message = body.int16(), body.string()
    if error != 0:
        raise Unhealthy(f"SASL authentication failed: error code {error}{f' ({message})' if message else ''}")
    size = body.int32()
    answer = body.take(max(size, 0))
    body.int64()  # session_lifetime_ms
    return answer


def _attributes(message: bytes) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.decode().split(",") if "=" in part)


def authenticate(conn: Connection, credentials: Credentials) -> None:
    """Signs the connection in by SCRAM; raises Unhealthy when the broker refuses."""
    _code, digest = MECHANISMS[credentials.mechanism]
    body = conn.request(SASL_HANDSHAKE, 1, string(credentials.mechanism))
    error = body.int16()
    offered = [body.string() for _ in range(body.array_len())]
    if error != 0:
        raise Unhealthy(f"the broker does not take {credentials.mechanism} (error code {error}; it offers {offered})")

    user = credentials.username.replace("=", "=3D").replace(",", "=2C")
    client_nonce = base64.b64encode(secrets.token_bytes(24)).decode()
    client_first_bare = f"n={user},r={client_nonce}"
    server_first = _authenticate_step(conn, f"n,,{client_first_bare}".encode())
    challenge = _attributes(server_first)
    nonce, salt, iterations = challenge.get("r", ""), challenge.get("s", ""), int(challenge.get("i", "0"))
    if not nonce.startswith(client_nonce) or not salt or iterations < 1:
        raise Unhealthy(f"malformed SCRAM challenge from the broker: {server_first!r}")

    salted = hashlib.pbkdf2_hmac(digest().name, credentials.password.encode(), base64.b64decode(salt), iterations)
    client_key = hmac.digest(salted, b"Client Key", digest)
    without_proof = f"c=biws,r={nonce}"
    auth_message = f"{client_first_bare},{server_first.decode()},{without_proof}".encode()
    signature = hmac.digest(digest(client_key).digest(), auth_message, digest)
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    server_final = _attributes(_authenticate_step(conn, f"{without_proof},p={proof}".encode()))

    if "e" in server_final:
        raise Unhealthy(f"the broker refused {credentials.username}'s credentials ({server_final['e']})")
    expected = hmac.digest(hmac.digest(salted, b"Server Key", digest), auth_message, digest)
    if not hmac.compare_digest(base64.b64decode(server_final.get("v", "")), expected):
        raise Unhealthy("the broker's SCRAM answer does not prove it knows the credentials")


def connect(host: str, port: int, timeout: float) -> Connection:
    """A connection, signed in when the environment holds credentials."""
    conn = Connection(host, port, timeout)
    credentials = credentials_from_env()
    if credentials:
        try:
            authenticate(conn, credentials)
        except BaseException:
            conn.close()
            raise
    return conn


def metadata_version(versions: dict[int, tuple[int, int]]) -> int:
    """v1 where offered (nisshi, Kafka 3); the oldest offered otherwise (Kafka 4 starts at v4)."""
    if METADATA not in versions:
        raise Unhealthy("ApiVersions does not offer Metadata")
    low, high = versions[METADATA]
    version = max(low, 1)
    if version > min(high, 8):
        raise Unhealthy(f"ApiVersions offers Metadata v{low}-v{high}; this check speaks v1-v8")
    return version


def check(host: str, port: int, timeout: float) -> tuple[int, str]:
    # Signs in first when the environment holds credentials (a broker that requires
    # authentication answers nothing but ApiVersions and SASL before that).
    credentials = credentials_from_env()
    where = f"{host}:{port}"
    try:
        conn = Connection(host, port, timeout)
    except ConnectionRefusedError:
        return NOTHING, f"nothing listens on {where} (connection refused)"
    except socket.gaierror as err:
        return NOTHING, f"cannot resolve {host}: {err}"
    except socket.timeout:
        # On loopback this is a listener whose backlog is full; elsewhere maybe a firewall.
        return NOT_KAFKA, f"{where}: TCP connect timed out after {timeout:g} s (a listener that accepts nothing, or a filtered port)"
    except OSError as err:
        if err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return NOTHING, f"{where} unreachable: {err.strerror}"
        return NOT_KAFKA, f"{where}: connect failed: {err}"
    step = "ApiVersions"
    try:
        version = metadata_version(api_versions(conn))
        if credentials:
            step = "SASL authentication"
            authenticate(conn, credentials)
        step = "Metadata"
        brokers, topics = metadata(conn, version)
        if not brokers:
            raise Unhealthy("Metadata named no broker")
    except socket.timeout:
        what = "does not answer" if step == "ApiVersions" else "answers ApiVersions but not"
        return NOT_KAFKA, f"{where} accepts connections but {what} a Kafka {step} request within {timeout:g} s"
    except (Unhealthy, OSError) as err:
        what = "accepts connections but does not speak Kafka" if step == "ApiVersions" \
            else f"answers ApiVersions but fails {step}"
        return NOT_KAFKA, f"{where} {what}: {err}"
    finally:
        conn.close()
    listed = ", ".join(f"{node}@{h}:{p}" for node, h, p in brokers)
    return HEALTHY, f"Kafka broker answers on {where}: brokers {listed}, {len(topics)} topics"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds for the whole exchange, connect included (default 2)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing, only the exit status")
    args = parser.parse_args()
    status, message = check(args.host, args.port, args.timeout)
    if not args.quiet:
        print(message)
    return status


if __name__ == "__main__":
    sys.exit(main())
