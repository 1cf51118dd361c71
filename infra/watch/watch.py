#!/usr/bin/env python3
"""`make watch`: runs the four services and, when their sources change, rebuilds
and restarts only the services affected: a service's own crate, or every service
that depends on the changed crate under `shared/`.

Each service's listening socket is opened here, once, and handed to every
process of that service as fd 3 (`LISTEN_FDS=1`, the systemd convention the
services understand). A restarted service takes over the same socket: the
connections that arrive meanwhile wait in its backlog instead of being refused.
The gateway's new process starts as soon as the old one is told to stop (`OVERLAP`);
a backend's only once the old one has exited. Every build asks for all four services, so
cargo's feature unification never changes between builds. A build that fails leaves the running
processes alone.
"""
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "infra", "scripts"))
from principals import with_principal  # noqa: E402
SERVICES = {"user-service": 3001, "order-service": 3002, "payment-service": 3003, "api-gateway": 3005}
# The gateway's admin listener (ADMIN_PORT), handed over as a second socket.
ADMIN_PORTS = {"api-gateway": (9305,)}
# The crates under shared/ and the services built on each (docs/architecture.md);
# testkit is for tests only, so a change there restarts nothing.
SHARED = {
    "shared/contracts": tuple(SERVICES),
    "shared/platform": tuple(SERVICES),
    "shared/database": ("user-service", "order-service", "payment-service"),
    "shared/eventing": ("user-service", "order-service", "payment-service"),
    "shared/testkit": (),
}
POLL_SECONDS = 0.1
# Services whose new process may start while the old one is still stopping. The gateway
# holds nothing exclusive (no partitions, no outbox): once told to stop, the old process
# stops accepting at once, and finishes its requests and flushes its spans (up to a second
# when no collector answers) while the new one already serves. The backends stop first:
# two processes would consume the same partitions.
OVERLAP = {"api-gateway"}


def log(message):
    print(f"[watch] {time.strftime('%H:%M:%S')} {message}", flush=True)


def snapshot(paths):
    """The newest modification time and the file count under each path (edits, adds, deletes)."""
    stamp = {}
    for top in paths:
        newest, count = 0.0, 0
        for directory, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".rs", ".toml", ".sql")):
                    count += 1
                    try:
                        newest = max(newest, os.stat(os.path.join(directory, name)).st_mtime)
                    except FileNotFoundError:
                        pass
        stamp[top] = (newest, count)
    return stamp


def listening_socket(port):
    """A socket listening on 127.0.0.1:`port`, held here across the service's restarts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


class Service:
    def __init__(self, name, port, env):
        self.name, self.env = name, env
        # The API's port, then (the gateway's) admin port for /health/* and /metrics.
        self.sockets = [listening_socket(port)] + [listening_socket(p) for p in ADMIN_PORTS.get(name, ())]
        self.process = None

    def start(self):
        fds = [s.fileno() for s in self.sockets]

        def hand_over_sockets():
            # Inheritable copies at fds 3, 4, …; every other descriptor of this process is
            # non-inheritable (PEP 446), so close_fds=False passes just those. Each is first
            # copied above 10, so that placing one never overwrites another still to place
            # (the first socket opened here may itself be fd 3 or 4).
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds]
            for index, fd in enumerate(high):
                os.dup2(fd, 3 + index)
                os.close(fd)

        env = dict(self.env, LISTEN_FDS=str(len(fds)))
        # Each service its own database, and the broker the scripts point at (common.sh).
        database = {"user-service": "USER_DATABASE_NAME", "order-service": "ORDER_DATABASE_NAME",
                    "payment-service": "PAYMENT_DATABASE_NAME"}.get(self.name)
        if database and database in env:
            env["DATABASE_NAME"] = env[database]
        if "KAFKA_PORT" in env:
            env["KAFKA_BROKERS"] = f"{env.get('KAFKA_HOST', '127.0.0.1')}:{env['KAFKA_PORT']}"
        env = with_principal(env, self.name)
        self.process = subprocess.Popen([os.path.join(ROOT, "target", "debug", self.name)], env=env,
                                        preexec_fn=hand_over_sockets, close_fds=False)
        log(f"{self.name} started (pid {self.process.pid})")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            reap(self.process)
        self.process = None

    def restart(self):
        # The socket stays open here, so requests arriving in between queue rather than fail.
        if self.name in OVERLAP and self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            threading.Thread(target=reap, args=(self.process,), daemon=True).start()
            self.process = None
        else:
            self.stop()
        self.start()


def reap(process):
    """Waits for a process told to stop; kills it after 30 s."""
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def build(services):
    command = ["cargo", "build", "--quiet"] + [arg for s in services for arg in ("-p", s)]
    log(f"building {', '.join(services)}")
    started = time.time()
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode == 0:
        log(f"built in {time.time() - started:.1f} s")
    return result.returncode == 0


def main():
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    if not build(list(SERVICES)):
        sys.exit("the initial build failed")
    services = {name: Service(name, port, env) for name, port in SERVICES.items()}
    for service in services.values():
        service.start()
    watched = list(SERVICES) + list(SHARED)
    last = snapshot(watched)

    def shutdown(*_):
        log("stopping")
        for service in services.values():
            service.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log("watching; edit a service or shared/ and save")
    while True:
        time.sleep(POLL_SECONDS)
        current = snapshot(watched)
        changed = [top for top in watched if current[top] != last[top]]
        if not changed:
            continue
        time.sleep(POLL_SECONDS)  # let an editor finish writing
        last = snapshot(watched)
        affected = sorted({name for top in changed for name in SHARED.get(top, (top,))})
        log(f"change in {', '.join(changed)}")
        if not affected:
            continue
        # Always the same set of packages: cargo unifies features over the packages it is
        # asked for, so `-p api-gateway` alone would rebuild shared dependencies with other
        # features than the first build did (38.6 s instead of 1.9 s for the first edit on a
        # fresh clone). Only the changed crates and their dependents compile either way.
        if build(list(SERVICES)):
            for name in affected:
                services[name].restart()
        else:
            log("build failed; the running services are unchanged")


if __name__ == "__main__":
    main()
