"""The gateway's hop: the same calls through the gateway and straight to the service behind
it, a read and a write, at one and at 16 connections; and where the gateway's CPU time goes
under the read load, sampled with perf.

Gateway and direct runs alternate, so that whatever drifts during the run (the machine, the
database's caches, the event chain the writes start) weighs on both sides alike.
"""
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from load import median_runs, post_script, wrk

# Crates whose names say nothing about where the time goes: a symbol is charged to the
# first crate in it that is not one of these (`core::ptr::drop_in_place<reqwest::…>` is reqwest's).
WRAPPERS = {"core", "alloc", "std", "impl", "dyn"}
ALLOCATOR = re.compile(r"malloc|free|realloc|calloc|_rjem_|je_|sdallocx|tikv_jemalloc")
COPIES = re.compile(r"^(__)?mem(cpy|move|set|cmp)")


def measure(ports, pids, gateway, token, principal_id, api_key, order_items, duration, repeats, connection_counts,
            chain=None):
    """{kind: {connections: {"gateway": figures, "direct": figures, "nginx": figures}}} for kind
    read and write ("nginx" only where nginx is installed). Each side's figures include the CPU
    time per request of the proxy in front (the gateway, or nginx) and of the service behind
    it (µs), from `pids`; the direct writes also that of each of `chain` ({name: a function
    returning CPU seconds used so far}): the processes an order's event chain runs on."""
    scripts = tempfile.mkdtemp(prefix="bench-hop-")
    with ReferenceProxy(ports) as nginx:
        return _measure(ports, pids, nginx, scripts, gateway, token, principal_id, api_key, order_items, duration,
                        repeats, connection_counts, chain or {})


class ReferenceProxy:
    """nginx as a plain reverse proxy in front of the same two services, the same-run measure
    of what a hop costs on this machine before anything the gateway does: no token, no rate
    limit, no spans, no metrics. It keeps connections to the services open (as the gateway's
    pool does), runs one worker per core (as the gateway's runtime does) and writes an access
    log line per request, buffered. Without nginx, there is no such side."""

    def __init__(self, ports):
        self.ports, self.port, self.directory, self.pid = ports, None, None, None

    def __enter__(self):
        if not shutil.which("nginx"):
            return self
        self.directory = tempfile.mkdtemp(prefix="bench-nginx-")
        self.port = free_port()
        config = os.path.join(self.directory, "nginx.conf")
        with open(config, "w") as out:
            out.write(f"""worker_processes auto;
pid {self.directory}/nginx.pid;
error_log {self.directory}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log {self.directory}/access.log combined buffer=64k flush=1s;
  upstream users {{ server 127.0.0.1:{self.ports['user-service']}; keepalive 64; }}
  upstream orders {{ server 127.0.0.1:{self.ports['order-service']}; keepalive 64; }}
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  server {{
    listen 127.0.0.1:{self.port};
    location /users/ {{ proxy_pass http://users; }}
    location = /orders {{ proxy_pass http://orders; }}
  }}
}}
""")
        subprocess.run(["nginx", "-c", config, "-p", self.directory], check=True, capture_output=True)
        deadline = time.time() + 10
        while not os.path.exists(f"{self.directory}/nginx.pid") and time.time() < deadline:
            time.sleep(0.01)
        self.pid = int(open(f"{self.directory}/nginx.pid").read())
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self, user_only=False):
        """The master's and its workers' CPU time so far (in user space only, if asked)."""
        children = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout.split()
        return sum(cpu_seconds(int(pid), user_only) for pid in [self.pid, *children])

    def __exit__(self, *_):
        if self.pid:
            os.kill(self.pid, signal.SIGQUIT)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _measure(ports, pids, nginx, scripts, gateway, token, principal_id, api_key, order_items, duration, repeats,
             connection_counts, chain):
    body = json.dumps({"userId": principal_id, "items": order_items})
    as_service = {"X-Api-Key": api_key, "X-Principal-Id": principal_id, "X-Principal-Role": "admin"}
    bearer = {"Authorization": f"Bearer {token}"}
    backends = {"read": "user-service", "write": "order-service"}
    calls = {
        "read": {
            "gateway": (f"{gateway}/api/users/{principal_id}", bearer, None),
            "direct": (f"http://127.0.0.1:{ports['user-service']}/users/{principal_id}", as_service, None),
            "nginx": (nginx.port and nginx.url(f"/users/{principal_id}"), as_service, None),
        },
        "write": {
            "gateway": (f"{gateway}/api/orders", {}, post_script(
                os.path.join(scripts, "gateway.lua"), body, {**bearer, "Content-Type": "application/json"})),
            "direct": (f"http://127.0.0.1:{ports['order-service']}/orders", {}, post_script(
                os.path.join(scripts, "direct.lua"), body, {**as_service, "Content-Type": "application/json"})),
            "nginx": (nginx.port and nginx.url("/orders"), {}, os.path.join(scripts, "direct.lua")),
        },
    }
    for sides in calls.values():
        if not nginx.port:
            del sides["nginx"]
    results = {}
    for kind, sides in calls.items():
        results[kind] = {}
        for connections in connection_counts:
            runs = {side: [] for side in sides}
            for _ in range(repeats):
                for side, (url, headers, script) in sides.items():
                    if side == "nginx":
                        proxy, proxy_user = nginx.cpu_seconds, lambda: nginx.cpu_seconds(user_only=True)
                    else:
                        proxy = lambda: cpu_seconds(pids["api-gateway"])
                        proxy_user = lambda: cpu_seconds(pids["api-gateway"], user_only=True)
                    # The proxy's time in user space apart: its own code, where the kernel's
                    # part is what any proxy pays for the same sockets.
                    watched = {"gateway": proxy, "gateway_user": proxy_user,
                               "service": lambda: cpu_seconds(pids[backends[kind]])}
                    if kind == "write" and side == "direct":
                        watched.update(chain)
                    before = {name: used() for name, used in watched.items()}
                    run = wrk(url, duration, connections, [f"{name}: {value}" for name, value in headers.items()], script)
                    requests = run["rps"] * duration
                    for name, used in watched.items():
                        run[f"{name}_cpu_us_per_request"] = (used() - before[name]) / requests * 1e6
                    runs[side].append(run)
            figures = {side: median_runs(side_runs) for side, side_runs in runs.items()}
            figures["ratio_rps"] = figures["gateway"]["rps"] / figures["direct"]["rps"]
            figures["added_p50_ms"] = figures["gateway"]["p50_ms"] - figures["direct"]["p50_ms"]
            if "nginx" in figures:
                figures["nginx_ratio_rps"] = figures["nginx"]["rps"] / figures["direct"]["rps"]
                figures["nginx_added_p50_ms"] = figures["nginx"]["p50_ms"] - figures["direct"]["p50_ms"]
            results[kind][str(connections)] = figures
    return results


def cpu_seconds(pid, user_only=False):
    """User and system CPU time `pid` has used so far (user time only, if asked)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + (0 if user_only else int(fields[12]))) / os.sysconf("SC_CLK_TCK")


def profile(pid, load):
    """Samples `pid`'s CPU with perf while `load()` runs. Returns the share of samples (%)
    of the top symbols and of the crates they belong to, or None without perf."""
    if not shutil.which("perf"):
        return None
    # BENCH_PERF_DATA keeps the recording for `perf report`; BENCH_PERF_ARGS adds to the
    # recording's options (`--call-graph dwarf` for callers and callees).
    kept = os.environ.get("BENCH_PERF_DATA")
    data = kept or os.path.join(tempfile.mkdtemp(prefix="bench-perf-"), "perf.data")
    extra = os.environ.get("BENCH_PERF_ARGS", "").split()
    record = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", *extra, "-o", data,
                               "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        load()
    finally:
        record.send_signal(signal.SIGINT)
        record.wait(timeout=60)
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio",
                             "--percent-limit", "0.05"], capture_output=True, text=True).stdout
    if not kept:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)
    symbols = []
    for line in report.splitlines():
        if match := re.match(r"^\s+([\d.]+)%\s+\[([.k])\]\s+(.+?)(\s+-\s+-)?\s*$", line):
            symbols.append((float(match.group(1)), match.group(2) == "k", match.group(3)))
    areas = collections.Counter()
    for share, kernel, symbol in symbols:
        areas[area(symbol, kernel)] += share
    return {
        "samples_note": "self time, cpu-clock at 1999 Hz",
        "top_symbols": [{"percent": share, "symbol": shorten(symbol)} for share, _, symbol in symbols[:15]],
        "by_area": [{"percent": share, "area": name} for name, share in areas.most_common(15)],
    }


def area(symbol, kernel):
    """What a sampled symbol is part of: the kernel, the allocator, memory copies, or a crate."""
    if kernel:
        return "kernel (syscalls, TCP, scheduling)"
    if ALLOCATOR.search(symbol) and "::" not in symbol:
        return "allocator"
    if COPIES.match(symbol):
        return "memory copies"
    for crate in re.findall(r"(?:^|[<\s&(,*])([a-z_][a-z0-9_]*)::", symbol):
        if crate not in WRAPPERS:
            return crate
    return "std" if "::" in symbol else "other (libc, unresolved)"


def shorten(symbol, limit=110):
    """A symbol short enough for a table row: generic arguments dropped, then cut."""
    previous = None
    while previous != symbol:  # innermost first; `<T as Trait>::f` is no generic argument
        previous, symbol = symbol, re.sub(r"(?<=[A-Za-z0-9_])(?<!drop_in_place)<[^<>]*>", "", symbol)
    return symbol if len(symbol) <= limit else symbol[:limit - 1] + "…"


BUDGETS = {
    "read_ratio_16": 0.7,
    "read_added_p50_ms_16": 0.4,
    "read_added_p50_ms_1": 0.08,
    "write_ratio_16": 0.9,
    "write_direct_over_pgbench": 0.8,
    "gateway_peak_rss_mib": 32,
}


# The hop's budgets by name, as the report lists them and `holders` explains the failing ones.
READS_16_RATIO = "reads at 16 connections: gateway ≥ 0.7 × direct req/s"
READS_16_ADDED = "reads at 16 connections: gateway adds ≤ 0.4 ms to p50"
READS_1_ADDED = "reads at 1 connection: gateway adds ≤ 0.08 ms to p50"
WRITES_16_RATIO = "POST /api/orders at 16 connections: gateway ≥ 0.9 × direct req/s"
WRITES_OVER_PGBENCH = "POST /orders straight to order-service ≥ 0.8 × pgbench of its statement"

def report(hop, pgbench_write, gateway_peak_rss_mib, flood=None):
    """The report's section on the hop, and its budgets as (name, ok, measured); `flood`, the
    same run's order flood where it ran, gives what an order costs through its settlement."""
    lines = ["## The gateway's hop: the same call through the gateway and straight to its service", "",
             "| call | connections | via gateway req/s | direct req/s | ratio | gateway p50 / p99 ms | direct p50 / p99 ms | added p50 ms | CPU µs a request: gateway / service |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = {"read": "`GET /api/users/{id}` → user-service", "write": "`POST /api/orders` → order-service"}
    for kind, by_connections in ((k, hop[k]) for k in ("read", "write")):
        for connections, f in by_connections.items():
            g, d = f["gateway"], f["direct"]
            lines.append(f"| {names[kind]} | {connections} | {g['rps']:.0f} | {d['rps']:.0f} | {f['ratio_rps']:.2f} | "
                         f"{g['p50_ms']:.3f} / {g['p99_ms']:.2f} | {d['p50_ms']:.3f} / {d['p99_ms']:.2f} | {f['added_p50_ms']:.3f} | "
                         f"{g['gateway_cpu_us_per_request']:.0f} / {g['service_cpu_us_per_request']:.0f} |")
    reference = [(kind, connections, f) for kind in ("read", "write") for connections, f in hop[kind].items()
                 if "nginx" in f]
    if reference:
        lines += ["", "The same calls through nginx, a plain reverse proxy in front of the same services (no token, "
                  "no rate limit, no spans, no metrics; kept-alive upstream connections, a worker per core, a buffered "
                  "access log): what one more hop costs on this machine before anything the gateway does.", "",
                  "| call | connections | via nginx req/s | ratio to direct | nginx p50 / p99 ms | added p50 ms | "
                  "CPU µs a request: nginx / service |", "|---|---|---|---|---|---|---|"]
        for kind, connections, f in reference:
            n = f["nginx"]
            lines.append(f"| {names[kind]} | {connections} | {n['rps']:.0f} | {f['nginx_ratio_rps']:.2f} | "
                         f"{n['p50_ms']:.3f} / {n['p99_ms']:.2f} | {f['nginx_added_p50_ms']:.3f} | "
                         f"{n['gateway_cpu_us_per_request']:.0f} / {n['service_cpu_us_per_request']:.0f} |")
    lines += ["", f"`pgbench` of order-service's insert statement at the same concurrency, right after the writes: {pgbench_write['tps']:.0f} tps "
              f"(avg {pgbench_write['latency_avg_ms']:.2f} ms). The gateway's peak RSS over these runs: {gateway_peak_rss_mib:.1f} MiB."]
    lines += chain_split(hop["write"].get("16"), pgbench_write, hop.get("pending_after_writes"))
    if profile := hop.get("profile"):
        lines += ["", "Where the gateway's CPU time goes under the 16-connection read load (perf, "
                  f"{profile['samples_note']}), by area:", "",
                  "| area | % of samples |", "|---|---|"]
        lines += [f"| {row['area']} | {row['percent']:.1f} |" for row in profile["by_area"]]
        lines += ["", "Top symbols:", "", "| % | symbol |", "|---|---|"]
        lines += [f"| {row['percent']:.2f} | `{row['symbol']}` |" for row in profile["top_symbols"]]
    read16, read1, write16 = hop["read"].get("16"), hop["read"].get("1"), hop["write"].get("16")
    budgets = []
    if read16 and read1 and write16:
        direct_over_pgbench = write16["direct"]["rps"] / pgbench_write["tps"]

        def nginx(f, key, ms=False):
            """nginx's figure beside the gateway's, where nginx ran."""
            if key not in f:
                return ""
            return f" (nginx: {f[key]:.3f} ms)" if ms else f" (nginx: {f[key]:.2f})"

        budgets = [
            (READS_16_RATIO, read16["ratio_rps"] >= BUDGETS["read_ratio_16"],
             f"{read16['ratio_rps']:.2f}" + nginx(read16, "nginx_ratio_rps")),
            (READS_16_ADDED,
             read16["added_p50_ms"] <= BUDGETS["read_added_p50_ms_16"],
             f"{read16['added_p50_ms']:.3f} ms" + nginx(read16, "nginx_added_p50_ms", ms=True)),
            (READS_1_ADDED,
             read1["added_p50_ms"] <= BUDGETS["read_added_p50_ms_1"],
             f"{read1['added_p50_ms']:.3f} ms" + nginx(read1, "nginx_added_p50_ms", ms=True)),
            (WRITES_16_RATIO,
             write16["ratio_rps"] >= BUDGETS["write_ratio_16"],
             f"{write16['ratio_rps']:.2f}" + nginx(write16, "nginx_ratio_rps")),
            (WRITES_OVER_PGBENCH,
             direct_over_pgbench >= BUDGETS["write_direct_over_pgbench"], f"{direct_over_pgbench:.2f}"),
            ("gateway peak RSS ≤ 32 MiB under the hop's loads", gateway_peak_rss_mib <= BUDGETS["gateway_peak_rss_mib"],
             f"{gateway_peak_rss_mib:.1f} MiB"),
        ]
    lines += holders(budgets, hop, pgbench_write, flood)
    return lines, budgets


def chain_split(write16, pgbench_write, pending):
    """Where a direct order's CPU time goes, beside what `pgbench`'s statement alone costs;
    `pending` is the orders still awaiting their payment when the writes ended."""
    direct = (write16 or {}).get("direct", {})
    if f"{MACHINE}_cpu_us_per_request" not in direct or "machine_cpu_us_per_tx" not in pgbench_write:
        return []
    parts = ", ".join(f"{name} {direct[f'{name}_cpu_us_per_request']:.0f}" for name in CHAIN
                      if f"{name}_cpu_us_per_request" in direct)
    lines = ["", "CPU µs an order within the direct `POST /orders` runs at 16 connections: order-service "
            f"{direct['service_cpu_us_per_request']:.0f} (the request, its outbox relay and the settlements it "
            f"consumes), {parts}; {MACHINE} {direct[f'{MACHINE}_cpu_us_per_request']:.0f} (the load generator "
            f"included). `pgbench`'s statement alone: PostgreSQL {pgbench_write['postgres_cpu_us_per_tx']:.0f}, "
            f"{MACHINE} {pgbench_write['machine_cpu_us_per_tx']:.0f} a transaction."]
    if pending:
        lines[-1] += (f" These writes are one principal's, whose events are handled one after another: {pending} "
                      "orders still awaited their payment when the hop's writes ended, so this is what the chain did "
                      "within the runs, not what an order costs through its settlement (the order flood measures "
                      "that), and `pgbench` ran beside the chain working through them, as the writes did.")
    return lines


def holders(budgets, hop, pgbench_write, flood=None):
    """For each failing budget of the hop, the cost that holds it, from this run's figures and,
    where it ran, the order flood's (what a settled order cost each process)."""
    failing = {name for name, ok, _ in budgets if not ok}
    if not failing:
        return []
    read16, read1, write16 = hop["read"]["16"], hop["read"]["1"], hop["write"]["16"]
    kernel = next((row["percent"] for row in hop.get("profile", {}).get("by_area", []) if row["area"].startswith("kernel")),
                  None)
    lines = ["", "What holds the hop's failing budgets, from the figures above:", ""]
    where = f", {kernel:.0f} % of it in the kernel (the profile)" if kernel is not None else ""

    def split(f):
        """The proxies' CPU a request, kernel and user space apart, where the run has both."""
        g, n = f["gateway"], f["nginx"]
        if "gateway_user_cpu_us_per_request" not in g:
            return ""
        kernel = [side["gateway_cpu_us_per_request"] - side["gateway_user_cpu_us_per_request"] for side in (g, n)]
        return (f" (in the kernel {kernel[0]:.0f} against {kernel[1]:.0f} µs, in user space "
                f"{g['gateway_user_cpu_us_per_request']:.0f} against {n['gateway_user_cpu_us_per_request']:.0f}: "
                f"the gateway's own code, the crates in the profile)")

    name = READS_16_RATIO
    if name in failing and "nginx" in read16:
        lines.append(f"- Reads at 16: the gateway's own work, on the cores it shares with user-service, PostgreSQL and "
                     f"the load generator. It spends {read16['gateway']['gateway_cpu_us_per_request']:.0f} µs of CPU a "
                     f"read against nginx's {read16['nginx']['gateway_cpu_us_per_request']:.0f}{split(read16) or where}; "
                     f"nginx reaches {read16['nginx_ratio_rps']:.2f} of direct in this run.")
    for name, f, connections, budget in (
            (READS_16_ADDED, read16, 16, BUDGETS["read_added_p50_ms_16"]),
            (READS_1_ADDED, read1, 1, BUDGETS["read_added_p50_ms_1"])):
        if name in failing and "nginx" in f:
            share = f"{f['nginx_added_p50_ms'] / budget * 100:.0f} % of the budget"
            # Whether one more hop alone, as nginx makes it, already spends the budget on this machine.
            held = "one more hop on this machine" if f["nginx_added_p50_ms"] > budget else "the gateway's own work"
            lines.append(f"- Added p50 at {connections}: {held}. nginx, forwarding the same read with nothing else to "
                         f"do, adds {f['nginx_added_p50_ms']:.3f} ms in this run, {share}; the gateway spends "
                         f"{f['gateway']['gateway_cpu_us_per_request']:.0f} µs of CPU a read against nginx's "
                         f"{f['nginx']['gateway_cpu_us_per_request']:.0f}{split(f)}.")
    name = WRITES_16_RATIO
    if name in failing and "nginx" in write16:
        lines.append(f"- Writes through the gateway: the same 2 cores serve the proxy and the event chain, so each µs "
                     f"the proxy spends is the chain's. CPU a write: gateway {write16['gateway']['gateway_cpu_us_per_request']:.0f} µs, "
                     f"nginx {write16['nginx']['gateway_cpu_us_per_request']:.0f} µs{split(write16)}.")
    name = WRITES_OVER_PGBENCH
    direct = write16["direct"]
    if name in failing and f"{MACHINE}_cpu_us_per_request" in direct and "machine_cpu_us_per_tx" in pgbench_write:
        line = (f"- order-service against `pgbench`: the event chain each order starts, on the same 2 cores. Within "
                f"the direct runs an order cost the machine {direct[f'{MACHINE}_cpu_us_per_request']:.0f} µs of CPU, "
                f"a `pgbench` transaction {pgbench_write['machine_cpu_us_per_tx']:.0f} µs (the split above)")
        if settled_order := (flood or {}).get("cpu_us_per_settled_order"):
            carriers = [name for name in ("order-service", *CHAIN) if name in settled_order]
            carried = sum(settled_order[name] for name in carriers)
            parts = ", ".join(f"{name} {settled_order[name]:.0f}" for name in carriers)
            line += (f"; through its settlement (the order flood, {flood['users']} users) an order costs "
                     f"{carried:.0f} µs of CPU in the processes that carry it ({parts}), "
                     f"{carried / pgbench_write['machine_cpu_us_per_tx']:.1f} times a `pgbench` transaction")
        lines.append(line + ". The chain's work bounds the orders a second on these cores, whatever the API itself "
                     "costs.")
    return lines


# The processes an order's event chain runs on besides order-service, as `measure`'s `chain` names them.
CHAIN = ("payment-service", "broker (nisshi)", "PostgreSQL")
MACHINE = "the whole machine"


def errors(hop):
    """Non-2xx answers and socket errors over every run of the hop."""
    return sum(f[side]["errors"] for kind in ("read", "write") for f in hop[kind].values()
               for side in ("gateway", "direct", "nginx") if side in f)
