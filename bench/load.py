"""Load generation with wrk: one run's requests/s, latency percentiles and errors."""
import re
import statistics
import subprocess


def wrk(url, duration, connections, headers=(), script=None):
    """Runs wrk; returns requests/s, p50 and p99 in ms, and non-2xx/socket errors."""
    threads = min(2, connections)  # wrk needs a connection per thread
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
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
    """Each figure's median over `runs`."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def post_script(path, body, headers):
    """A wrk script that POSTs `body` (a JSON string) with `headers` to every request."""
    with open(path, "w") as lua:
        lua.write('wrk.method = "POST"\n')
        lua.write("wrk.body = " + lua_string(body) + "\n")
        for name, value in headers.items():
            lua.write(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}\n")
    return path


def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
