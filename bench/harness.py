#!/usr/bin/env python3
"""The benchmark harness: starts the four services, measures each figure beside
its physical limit in the same run, and writes report.md and results.json.

Figures are medians over repeated runs. Budgets are judged here, never in tests.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

SERVICES = {"user-service": 3001, "order-service": 3002, "payment-service": 3003, "api-gateway": 3005}
API_KEY = "development-service-key-change-me"
MIB = 1024 * 1024

BUDGETS = {
    "idle_rss_mib": 20,
    "load_rss_mib": 64,
    "start_to_ready_s": 0.5,
    "gateway_added_p50_ms": 0.3,
    "chain_p50_margin_ms": 10,
}


def log(message):
    print(f"==> {message}", flush=True)


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def psql(database_url, sql, database="postgres"):
    return subprocess.run(["psql", f"{database_url}/{database}", "-Atqc", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Stack:
    """The four services as processes, with bench databases and topics of their own."""

    def __init__(self, args):
        self.args = args
        stamp = datetime.now().strftime("%Y%m%d%H%M%S")
        self.user_db, self.order_db = f"bench_users_{stamp}", f"bench_orders_{stamp}"
        self.prefix = f"bench{stamp}."
        self.processes = {}
        self.logs = tempfile.mkdtemp(prefix="bench-logs-")

    def env(self, service):
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.args.database_url,
            "KAFKA_BROKERS": self.args.brokers,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "none",
            "RUST_LOG": "warn",
            "PAYMENT_DELAY_MS": "0",
            "PAYMENT_FAILURE_RATE": "0",
            "API_RATE_LIMIT_PER_MINUTE": "100000000",
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
        })
        if service == "user-service":
            env["DATABASE_NAME"] = self.user_db
        if service == "order-service":
            env["DATABASE_NAME"] = self.order_db
        return env

    def start(self, service):
        """Starts one service; returns seconds from exec to /health/ready answering 200."""
        log_file = open(os.path.join(self.logs, f"{service}.log"), "ab")
        started = time.perf_counter()
        process = subprocess.Popen([os.path.join(self.args.bin_dir, service)], env=self.env(service),
                                   stdout=log_file, stderr=log_file)
        self.processes[service] = process
        url = f"http://127.0.0.1:{SERVICES[service]}/health/ready"
        deadline = started + 60
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                sys.exit(f"{service} exited during start-up; see {self.logs}/{service}.log")
            try:
                if http("GET", url, timeout=1)[0] == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.002)
        sys.exit(f"{service} was not ready within 60 s; see {self.logs}/{service}.log")

    def stop(self, service):
        process = self.processes.pop(service, None)
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    def stop_all(self):
        for service in list(self.processes):
            self.stop(service)

    def create_databases(self):
        for db in (self.user_db, self.order_db):
            psql(self.args.database_url, f'CREATE DATABASE "{db}"')

    def drop_databases(self):
        for db in (self.user_db, self.order_db):
            psql(self.args.database_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def wrk(url, duration, connections, headers=(), script=None):
    """Runs wrk; returns requests/s, p50 and p99 in ms, and non-2xx/socket errors."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", script]
    output = subprocess.run(command + [url], check=True, capture_output=True, text=True).stdout

    def latency(label):
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(g) for g in match.groups())
    return {"rps": rps, "p50_ms": latency("50"), "p99_ms": latency("99"), "errors": errors}


def median_runs(runs):
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def sample_rss(stack, stop_event, peaks):
    while not stop_event.is_set():
        for service, process in stack.processes.items():
            try:
                peaks[service] = max(peaks.get(service, 0), rss_mib(process.pid))
            except OSError:
                pass
        time.sleep(0.05)


def kafka_hop(brokers, prefix, count):
    """One produce → consume hop on the same broker, consumer tuned like the services."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{prefix}bench.hop"
    admin = AdminClient({"bootstrap.servers": brokers})  # must outlive the request
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "linger.ms": 0})
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"{prefix}hop", "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 10, "enable.auto.commit": False})
    consumer.subscribe([topic])
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(0.05)
    samples = []
    for i in range(count + 5):
        sent = time.perf_counter()
        producer.produce(topic, value=str(i).encode())
        producer.flush(5)
        deadline = time.time() + 10
        while True:
            message = consumer.poll(1)
            if message is not None and not message.error() and message.value() == str(i).encode():
                break
            if time.time() > deadline:
                sys.exit(f"hop {i}: message not consumed within 10 s")
        if i >= 5:  # the first hops warm connections up
            samples.append((time.perf_counter() - sent) * 1000)
    consumer.close()
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1], "samples": len(samples)}


def register(gateway, email):
    status, body = http("POST", f"{gateway}/api/auth/register",
                        {"email": email, "name": "Bench User", "password": "SecurePass123!"})
    if status != 201:
        sys.exit(f"registration failed: {status} {body[:200]}")
    return json.loads(body)


def chain_run(args, stack, gateway, rate, duration):
    """Registers users at `rate`/s for `duration` s; returns POST → paid latencies (ms) and
    how long after the last registration the last order was paid."""
    sends = {}
    lock = threading.Lock()
    interval = 1 / rate
    threads = []
    begin = time.time()

    def one(i):
        sent = time.time()
        user = register(gateway, f"chain-{rate}-{i}-{uuid.uuid4().hex[:8]}@example.com")
        with lock:
            sends[user["user"]["id"]] = sent

    total = int(rate * duration)
    for i in range(total):
        target = begin + i * interval
        pause = target - time.time()
        if pause > 0:
            time.sleep(pause)
        thread = threading.Thread(target=one, args=(i,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    last_sent = max(sends.values())
    ids = ",".join(f"'{i}'" for i in sends)
    deadline = time.time() + 60
    while True:
        rows = psql(args.database_url, f"SELECT user_id, EXTRACT(EPOCH FROM updated_at) FROM orders "
                    f"WHERE kind = 'welcome' AND status = 'paid' AND user_id IN ({ids})", stack.order_db)
        paid = {line.split("|")[0]: float(line.split("|")[1]) for line in rows.splitlines() if line}
        if len(paid) == len(sends) or time.time() > deadline:
            break
        time.sleep(0.05)
    latencies = sorted((paid[u] - sends[u]) * 1000 for u in paid)
    drained_after = (max(paid.values()) - last_sent) if paid else None
    return {
        "rate_per_s": rate,
        "users": len(sends),
        "settled": len(paid),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else None,
        "drained_after_last_s": drained_after,
    }


def pgbench(args, seconds):
    database = "bench_pgbench"
    psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    psql(args.database_url, f'CREATE DATABASE "{database}"')
    subprocess.run(["pgbench", "-q", "-i", "-s", "1", f"{args.database_url}/{database}"], check=True, capture_output=True)
    output = subprocess.run(["pgbench", "-S", "-c", "16", "-j", "2", "-T", str(seconds), f"{args.database_url}/{database}"],
                            check=True, capture_output=True, text=True).stdout
    psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
    return {"tps": tps, "latency_avg_ms": latency}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["full", "smoke"], default="full")
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    smoke = args.mode == "smoke"
    duration, repeats, connections = (1, 1, 4) if smoke else (5, 3, 16)
    results = {"mode": args.mode, "when": datetime.now(timezone.utc).isoformat(), "machine": f"{os.cpu_count()} cores"}

    stack = Stack(args)
    stack.create_databases()
    try:
        log("Start-up: exec → /health/ready, infrastructure already up")
        results["start_to_ready_s"] = {s: stack.start(s) for s in SERVICES}
        time.sleep(1)
        results["idle_rss_mib"] = {s: rss_mib(p.pid) for s, p in stack.processes.items()}
        gateway = "http://127.0.0.1:3005"
        status, body = http("POST", f"{gateway}/api/auth/login",
                            {"email": "admin@example.com", "password": "Admin123!ChangeMe"})
        admin = json.loads(body)
        token, admin_id = admin["access_token"], admin["user"]["id"]

        log("Event chain: one produce → consume hop on the same broker")
        results["hop"] = kafka_hop(args.brokers, stack.prefix, 20 if smoke else 200)

        log("Event chain: registration → welcome order paid, at fixed rates")
        rates = [5] if smoke else [10, 20, 40, 80]
        runs = []
        for rate in rates:
            run = chain_run(args, stack, gateway, rate, 1 if smoke else 10)
            runs.append(run)
            if run["p50_ms"] is None:
                sys.exit(f"  {rate}/s: no welcome order was paid within 60 s")
            log(f"  {rate}/s: p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, "
                f"drained {run['drained_after_last_s']:.2f} s after the last registration")
        results["chain"] = runs
        # Bounded lag: every order paid within 2 s of the last registration.
        sustained = [r["rate_per_s"] for r in runs if r["settled"] == r["users"] and r["drained_after_last_s"] <= 2]
        results["chain_highest_sustained_rate_per_s"] = max(sustained) if sustained else 0
        base = runs[0]
        results["chain_over_three_hops"] = base["p50_ms"] / (3 * results["hop"]["p50_ms"])
        peaks = {}
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(stack, stop_sampling, peaks))
        sampler.start()

        log("Read path: GET /api/users/{id} through the gateway, straight to user-service, and pgbench -S")
        via_gateway = median_runs([wrk(f"{gateway}/api/users/{admin_id}", duration, connections,
                                       [f"Authorization: Bearer {token}"]) for _ in range(repeats)])
        direct = median_runs([wrk(f"http://127.0.0.1:3001/users/{admin_id}", duration, connections,
                                  [f"X-Api-Key: {API_KEY}", f"X-Principal-Id: {admin_id}", "X-Principal-Role: admin"])
                              for _ in range(repeats)])
        postgres = median_runs([pgbench(args, duration) for _ in range(repeats)])
        results["read"] = {"gateway": via_gateway, "direct": direct, "pgbench_select": postgres,
                           "gateway_over_direct_rps": via_gateway["rps"] / direct["rps"],
                           "direct_over_pgbench_tps": direct["rps"] / postgres["tps"],
                           "gateway_added_p50_ms": via_gateway["p50_ms"] - direct["p50_ms"]}

        log("Write path: POST /api/orders through the gateway (outbox included)")
        script = os.path.join(tempfile.mkdtemp(), "order.lua")
        with open(script, "w") as lua:
            body = json.dumps({"userId": admin_id, "items": [{"productId": "product-bench", "quantity": 2, "price": 9.99}]})
            lua.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      f'wrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        results["write"] = median_runs([wrk(f"{gateway}/api/orders", duration, connections, script=script)
                                        for _ in range(repeats)])
        stop_sampling.set()
        sampler.join()
        results["load_rss_mib"] = peaks

        log("Write path's events: waiting until every order it placed is paid")
        started = time.time()
        placed = int(psql(args.database_url, "SELECT count(*) FROM orders", stack.order_db))
        pending = placed
        while pending > 0 and time.time() - started < 180:
            time.sleep(0.5)
            pending = int(psql(args.database_url, "SELECT count(*) FROM orders WHERE status = 'pending'", stack.order_db))
        drained = time.time() - started
        results["write_backlog"] = {"orders": placed, "still_pending": pending, "waited_s": drained}
        log(f"  {placed} orders; after {drained:.1f} s, {pending} still pending")

    finally:
        stack.stop_all()
        stack.drop_databases()

    write_report(args, results)


def verdict(ok):
    return "PASS" if ok else "FAIL"


def write_report(args, r):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump(r, out, indent=2)
    read, write, hop, chain0 = r["read"], r["write"], r["hop"], r["chain"][0]
    lines = [
        "# Benchmark report", "",
        f"Run {r['when']} on {r['machine']}, mode `{r['mode']}`. Medians of repeated runs; each figure "
        "stands beside its limit measured in the same run. Raw numbers: `results.json`.", "",
        "## Read path: authenticated `GET /api/users/{id}`", "",
        "| | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|",
        f"| through the gateway | {read['gateway']['rps']:.0f} | {read['gateway']['p50_ms']:.2f} | {read['gateway']['p99_ms']:.2f} | {read['gateway']['errors']:.0f} |",
        f"| straight to user-service | {read['direct']['rps']:.0f} | {read['direct']['p50_ms']:.2f} | {read['direct']['p99_ms']:.2f} | {read['direct']['errors']:.0f} |",
        f"| PostgreSQL primary-key select (`pgbench -S`, 16 clients) | {read['pgbench_select']['tps']:.0f} | avg {read['pgbench_select']['latency_avg_ms']:.2f} | | |",
        "",
        f"Ratios: gateway ÷ direct = {read['gateway_over_direct_rps']:.2f}; direct ÷ pgbench = {read['direct_over_pgbench_tps']:.2f}; "
        f"the gateway adds {read['gateway_added_p50_ms']:.2f} ms to p50.", "",
        "## Write path: `POST /api/orders` (outbox included)", "",
        "| req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|",
        f"| {write['rps']:.0f} | {write['p50_ms']:.2f} | {write['p99_ms']:.2f} | {write['errors']:.0f} |", "",
        f"The write load placed {r['write_backlog']['orders']} orders; {r['write_backlog']['waited_s']:.1f} s after it stopped, "
        f"{r['write_backlog']['still_pending']} were still waiting for their payment (the event chain catching up; the harness waits at most 180 s).", "",
        "## Event chain: registration → welcome order paid (payment delay 0)", "",
        f"One produce → consume hop on the same broker: p50 {hop['p50_ms']:.2f} ms, p99 {hop['p99_ms']:.2f} ms ({hop['samples']} hops).", "",
        "| rate /s | users | settled | p50 ms | p99 ms | last paid after last POST (s) |", "|---|---|---|---|---|---|",
    ]
    for run in r["chain"]:
        lines.append(f"| {run['rate_per_s']} | {run['users']} | {run['settled']} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {run['drained_after_last_s']:.2f} |")
    lines += ["", f"Highest rate sustained with bounded lag (all paid within 2 s of the last registration): "
              f"{r['chain_highest_sustained_rate_per_s']}/s. Chain p50 ÷ (3 × hop p50) = {r['chain_over_three_hops']:.2f}.", "",
              "## Footprint", "", "| service | start → ready s | idle RSS MiB | peak RSS under load MiB |", "|---|---|---|---|"]
    for service in SERVICES:
        lines.append(f"| {service} | {r['start_to_ready_s'][service]:.3f} | {r['idle_rss_mib'][service]:.1f} | {r['load_rss_mib'].get(service, 0):.1f} |")
    budgets = [
        ("each service idle RSS ≤ 20 MiB", max(r["idle_rss_mib"].values()) <= BUDGETS["idle_rss_mib"], f"max {max(r['idle_rss_mib'].values()):.1f} MiB"),
        ("each service RSS under load ≤ 64 MiB", max(r["load_rss_mib"].values()) <= BUDGETS["load_rss_mib"], f"max {max(r['load_rss_mib'].values()):.1f} MiB"),
        ("each service start → ready ≤ 0.5 s", max(r["start_to_ready_s"].values()) <= BUDGETS["start_to_ready_s"], f"max {max(r['start_to_ready_s'].values()):.3f} s"),
        ("gateway adds ≤ 0.3 ms to p50", read["gateway_added_p50_ms"] <= BUDGETS["gateway_added_p50_ms"], f"{read['gateway_added_p50_ms']:.2f} ms"),
        ("no errors under load", read["gateway"]["errors"] + read["direct"]["errors"] + write["errors"] == 0, f"{read['gateway']['errors'] + read['direct']['errors'] + write['errors']:.0f}"),
        ("chain p50 ≤ 3 × hop + 10 ms", chain0["p50_ms"] <= 3 * hop["p50_ms"] + BUDGETS["chain_p50_margin_ms"], f"{chain0['p50_ms']:.1f} ms vs {3 * hop['p50_ms'] + 10:.1f} ms"),
    ]
    lines += ["", "## Budgets", "", "| budget | verdict | measured |", "|---|---|---|"]
    lines += [f"| {name} | {verdict(ok)} | {measured} |" for name, ok, measured in budgets]
    if r["mode"] == "smoke":
        lines += ["", "_Smoke run: debug build, one-second runs. These numbers prove the harness works and mean nothing else._"]
    with open(os.path.join(args.out, "report.md"), "w") as out:
        out.write("\n".join(lines) + "\n")
    log(f"Wrote {args.out}/report.md and results.json")
    print("\n".join(lines[-(len(budgets) + 4):]))


if __name__ == "__main__":
    main()
