#!/usr/bin/env python3
"""The checks behind check.sh, in the standard library only.

YAML files arrive already converted to JSON (check.sh does that), so this file
reads JSON only. Subcommands:

  selftest                    the PromQL splitting below, on known cases
  static   <dir>              the configuration's consistency, without Prometheus
  wait     <url> <secs> <jobs...>
                              until every target is up, scraped twice, and every
                              rule group evaluated after that
  evaluate <url> <dir> <jobs...>
                              every PromQL expression of the dashboards, the
                              datasources and the rules, evaluated; fails listing
                              the ones that return nothing

<dir> holds the converted files: prometheus.json, prometheus.docker.json,
datasources.json, dashboards-provider.json, rules/*.json, dashboards/*.json.

Which expression is checked, and why
------------------------------------
* Dashboard panel targets (`expr`), including panels inside rows, and the
  dashboards' template variables (`label_values(metric, label)` is checked as
  `count by (label) (metric)`). Grafana's variables are replaced as Grafana
  would: $__rate_interval → 1m, $__interval → 15s, $__range → 5m, and a
  dashboard variable by every value it takes on the live system, as one regex
  (`job="$service"` becomes `job=~"api-gateway|order-service|…"`): a panel
  passes when it shows data for at least one service. Panels that are empty for
  one particular service (payment-service has no HTTP API) are
  counted, and listed with OBS_VERBOSE=1, but do not fail the check.
* The Jaeger datasource's trace-to-metrics queries, with $__tags → job=~"<all>".
* Recording rules: their `expr` as it is.
* Alert rules: an alert's expression is a condition, empty while all is well
  (`up == 0`). What it must not be is blind: every quantity it compares must
  exist. So the expression is split at its top-level `or` / `and` / `unless`
  (only the left side of `unless`, whose right side may rightly be empty), and
  each operand at its first top-level comparison operator; the left-hand sides
  (`up`, `job:http_request_error_ratio:rate5m`, `sum by (…) (kafka_consumer_lag)`)
  are evaluated and each must return something. An alert without a comparison
  (e.g. `absent(…)`) is evaluated as it is.

An expression that returns no series fails the check. For each one the report
names the metrics it reads that no target serves at all, which is the usual
cause (not instrumented yet, or a labelled counter that is only created on its
first increment). OBS_ALLOW_EMPTY, a regex of metric names, turns the failures
caused only by those metrics into warnings.
"""

import glob
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# --------------------------------------------------------------------------- PromQL text

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
IDENT_CHAR = re.compile(r"[A-Za-z0-9_:]")
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_sum", "histogram_stddev", "histogram_stdvar", "holt_winters",
    "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln",
    "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round",
    "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan",
}
# Modifiers followed by a parenthesised list of label names, not of expressions.
LABEL_LIST_MODIFIERS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def _skip_string(expr, i):
    """Index just past the string literal starting at expr[i]."""
    quote = expr[i]
    i += 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string in: {expr}")


def top_level(expr):
    """Yields (index, char) of the characters outside brackets, strings and comments."""
    depth, i = 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
            continue
        if c == "#":
            nl = expr.find("\n", i)
            i = len(expr) if nl < 0 else nl
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            yield i, c
        i += 1


def strip_parens(expr):
    """`(a > 1)` → `a > 1`, while the outer parentheses enclose the whole expression."""
    expr = expr.strip()
    # The outer pair matches iff what is inside never closes more than it opened:
    # `(a) or (b)` has `a) or (b` inside, which does.
    while expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
        expr = expr[1:-1].strip()
    return expr


def _balanced(expr):
    """True when expr's brackets are balanced left to right (never below zero)."""
    depth, i = 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def split_words(expr, words):
    """Splits expr at the top-level set operators in `words` (followed by their modifiers)."""
    parts, start = [], 0
    positions = dict(top_level(expr))
    i = 0
    while i < len(expr):
        if i in positions and (i == 0 or not IDENT_CHAR.match(expr[i - 1])):
            m = IDENT.match(expr, i)
            if m and m.group(0).lower() in words:
                parts.append((expr[start:i], m.group(0).lower()))
                start = m.end()
                i = m.end()
                continue
        i += 1
    parts.append((expr[start:], None))
    return parts


def _drop_leading_modifiers(operand):
    """`on (job) group_left x` → `x`: the vector-matching modifiers that follow an operator."""
    operand = operand.strip()
    while True:
        m = re.match(r"(on|ignoring|group_left|group_right)\s*(\([^)]*\))?\s*", operand, re.I)
        b = re.match(r"bool\b\s*", operand, re.I)
        if m and m.group(0):
            operand = operand[m.end():]
        elif b:
            operand = operand[b.end():]
        else:
            return operand.strip()


def first_comparison(expr):
    """(lhs, op, rhs) at the first top-level comparison operator, or None."""
    chars = dict(top_level(expr))
    for i in sorted(chars):
        two = expr[i:i + 2]
        if two in ("==", "!=", ">=", "<="):
            if i + 1 in chars:
                return expr[:i].strip(), two, expr[i + 2:].strip()
        if expr[i] in "<>" and two not in (">=", "<="):
            return expr[:i].strip(), expr[i], expr[i + 1:].strip()
    return None


NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.I)


def alert_operands(expr):
    """The quantities an alert's condition compares: see the module's docstring."""
    expr = strip_parens(expr)
    ors = split_words(expr, {"or"})
    if len(ors) > 1:
        return [x for part, _ in ors for x in alert_operands(_drop_leading_modifiers(part))]
    ands = split_words(expr, {"and", "unless"})
    if len(ands) > 1:
        out, keep = [], True
        for part, op in ands:
            if keep:
                out += alert_operands(_drop_leading_modifiers(part))
            keep = op != "unless"  # the right side of `unless` may rightly be empty
        return out
    cmp = first_comparison(expr)
    if not cmp:
        return [expr]
    lhs, _, rhs = cmp
    if NUMBER.match(strip_parens(lhs)):  # `0 < x`: the quantity is on the right
        rhs = _drop_leading_modifiers(rhs)
        nested = first_comparison(rhs)
        return [strip_parens(nested[0] if nested else rhs)]
    return [strip_parens(lhs)]


def metric_names(expr):
    """Metric names an expression reads (recording-rule names included)."""
    out, i = [], 0
    text = expr
    # Blank out strings, label matchers {…}, ranges […] and label lists after by/on/….
    cleaned = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            j = _skip_string(text, i)
            cleaned.append(" " * (j - i))
            i = j
            continue
        if c in "{[":
            close = "}" if c == "{" else "]"
            j = text.index(close, i)
            cleaned.append(" " * (j + 1 - i))
            i = j + 1
            continue
        cleaned.append(c)
        i += 1
    cleaned = "".join(cleaned)
    cleaned = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", cleaned, flags=re.I)
    for m in IDENT.finditer(cleaned):
        if m.start() and IDENT_CHAR.match(cleaned[m.start() - 1]):
            continue
        if cleaned[m.start() - 1:m.start()] in (".",) or re.match(r"\d", m.group(0)):
            continue
        word = m.group(0)
        rest = cleaned[m.end():].lstrip()
        if word.lower() in KEYWORDS or word in AGGREGATIONS and rest.startswith(("(", "by", "without")):
            continue
        if word in FUNCTIONS and rest.startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        if word not in out:
            out.append(word)
    # Selectors written as {__name__="x"} are not recognised; none are used here.
    return out


# --------------------------------------------------------------------------- Grafana variables

BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def promql_regex(values):
    """`a|b.c` as a PromQL string body matching exactly these values (Go escapes, RE2 syntax)."""
    return "|".join(re.sub(r"([.+*?()\[\]{}|^$\\])", r"\\\\\1", v) for v in values)


def substitute(expr, values):
    """Replaces Grafana variables: builtins by fixed values, the others by a regex of their values.

    `label="$var"` becomes `label=~"a|b"` so that one query covers every value.
    """
    def regex_of(name):
        return promql_regex(values[name])

    def matcher(m):
        label, name = m.group(1), m.group(2) or m.group(3) or m.group(4)
        if name in values:
            return f'{label}=~"{regex_of(name)}"'
        return m.group(0)

    expr = re.sub(r'(\w+)\s*=\s*"(?:\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+))"', matcher, expr)

    def plain(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in values:
            return regex_of(name)
        raise KeyError(name)

    return VARIABLE.sub(plain, expr)


def variable_query(var):
    """The PromQL that checks a template variable, and (metric, label) to list its values."""
    q = var.get("query")
    if isinstance(q, dict):
        q = q.get("query", "")
    q = (q or var.get("definition") or "").strip()
    m = re.fullmatch(r"label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)", q)
    if m:
        return f"count by ({m.group(2)}) ({m.group(1)})", (m.group(1), m.group(2))
    m = re.fullmatch(r"label_values\(\s*(\w+)\s*\)", q)
    if m:
        return f'count by ({m.group(1)}) ({{{m.group(1)}=~".+"}})', ('{%s=~".+"}' % m.group(1), m.group(1))
    m = re.fullmatch(r"query_result\((.+)\)", q)
    if m:
        return m.group(1), None
    raise ValueError(f"unsupported variable query: {q!r}")


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


# --------------------------------------------------------------------------- files

def load(path):
    with open(path) as f:
        return json.load(f)


def dashboards(dir_):
    return [(os.path.basename(p), load(p)) for p in sorted(glob.glob(os.path.join(dir_, "dashboards", "*.json")))]


def rule_files(dir_):
    return [(os.path.basename(p).replace(".json", ".yml"), load(p))
            for p in sorted(glob.glob(os.path.join(dir_, "rules", "*.json")))]


# --------------------------------------------------------------------------- static

def static(dir_, jobs):
    errors = []
    err = errors.append

    local, docker = load(os.path.join(dir_, "prometheus.json")), load(os.path.join(dir_, "prometheus.docker.json"))

    def scrape(cfg):
        out = {}
        for sc in cfg.get("scrape_configs", []):
            targets = [t for s in sc.get("static_configs", []) for t in s.get("targets", [])]
            out[sc["job_name"]] = targets
        return out

    ls, ds = scrape(local), scrape(docker)
    for name, s in (("prometheus.yml", ls), ("prometheus.docker.yml", ds)):
        if sorted(s) != sorted(jobs):
            err(f"{name}: jobs are {sorted(s)}, expected exactly {sorted(jobs)}")
    for job in jobs:
        lt, dt = ls.get(job, []), ds.get(job, [])
        if len(lt) != 1 or not lt[0].startswith("127.0.0.1:"):
            err(f"prometheus.yml: {job} should have one target on 127.0.0.1, has {lt}")
        if len(dt) != 1 or dt[0].split(":")[0] != job:
            err(f"prometheus.docker.yml: {job} should have one target on host {job}, has {dt}")
        if lt and dt and lt[0].split(":")[-1] != dt[0].split(":")[-1]:
            err(f"{job}: port differs between prometheus.yml ({lt[0]}) and prometheus.docker.yml ({dt[0]})")
    if local.get("rule_files") != docker.get("rule_files") or not local.get("rule_files"):
        err("prometheus.yml and prometheus.docker.yml must load the same, non-empty rule_files")

    for name, rf in rule_files(dir_):
        for g in rf.get("groups", []):
            for r in g.get("rules", []):
                if "alert" in r:
                    ann = r.get("annotations", {})
                    missing = [k for k in ("summary", "description", "runbook") if not ann.get(k)]
                    if missing:
                        err(f"{name}: alert {r['alert']} lacks annotations {missing}")
                    if not r.get("labels", {}).get("severity"):
                        err(f"{name}: alert {r['alert']} lacks a severity label")

    dsf = load(os.path.join(dir_, "datasources.json"))
    uids = {d.get("uid"): d for d in dsf.get("datasources", [])}
    want = {"prometheus": ("prometheus", "http://prometheus:9090"), "jaeger": ("jaeger", "http://jaeger:16686")}
    for uid, (typ, url) in want.items():
        d = uids.get(uid)
        if not d or d.get("type") != typ or d.get("url") != url:
            err(f"datasources.yml: expected uid {uid} of type {typ} at {url}")
    for d in dsf.get("datasources", []):
        for dest in d.get("jsonData", {}).get("exemplarTraceIdDestinations", []):
            if dest.get("datasourceUid") not in uids:
                err(f"datasources.yml: exemplar destination {dest} names an unknown datasource")
        ttm = d.get("jsonData", {}).get("tracesToMetrics")
        if ttm and ttm.get("datasourceUid") not in uids:
            err("datasources.yml: tracesToMetrics names an unknown datasource")

    prov = load(os.path.join(dir_, "dashboards-provider.json"))
    paths = [p.get("options", {}).get("path") for p in prov.get("providers", []) if p.get("type") == "file"]
    if paths != ["/var/lib/grafana/dashboards"]:
        err(f"dashboards.yml: expected one file provider at /var/lib/grafana/dashboards, got {paths}")

    seen_uids = {}
    boards = dashboards(dir_)
    if not boards:
        err("no dashboards found")
    for name, d in boards:
        where = f"dashboards/{name}"
        if not d.get("uid") or not d.get("title"):
            err(f"{where}: needs uid and title")
        if d.get("uid") in seen_uids:
            err(f"{where}: uid {d.get('uid')} also used by {seen_uids[d['uid']]}")
        seen_uids[d.get("uid")] = name
        if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
            err(f"{where}: schemaVersion {d.get('schemaVersion')} (expected >= 36)")
        if d.get("id") not in (None,):
            err(f"{where}: a provisioned dashboard must not carry a database id (set \"id\": null or omit it)")
        ids, jaeger_links = set(), 0
        for p in walk_panels(d.get("panels")):
            pw = f"{where} panel {p.get('id')} {p.get('title')!r}"
            if p.get("id") in ids or not isinstance(p.get("id"), int):
                err(f"{pw}: panel ids must be unique integers")
            ids.add(p.get("id"))
            gp = p.get("gridPos", {})
            if not all(isinstance(gp.get(k), int) for k in "xywh") or gp["x"] + gp["w"] > 24:
                err(f"{pw}: bad gridPos {gp}")
            if p.get("type") == "row":
                continue
            if p.get("datasource", {}).get("uid") not in uids:
                err(f"{pw}: datasource {p.get('datasource')} is not a provisioned uid")
            refs = set()
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") not in uids:
                    err(f"{pw}: target datasource {t.get('datasource')} is not a provisioned uid")
                if not t.get("refId") or t["refId"] in refs:
                    err(f"{pw}: targets need unique refIds")
                refs.add(t.get("refId"))
                if not (t.get("expr") or "").strip():
                    err(f"{pw}: target {t.get('refId')} has no expr")
            if not p.get("targets"):
                err(f"{pw}: no targets")
            links = p.get("links", []) + p.get("fieldConfig", {}).get("defaults", {}).get("links", [])
            for link in links:
                internal = link.get("internal")
                if internal and internal.get("datasourceUid") not in uids:
                    err(f"{pw}: data link to unknown datasource {internal.get('datasourceUid')}")
                if (internal and internal.get("datasourceUid") == "jaeger") or "16686" in link.get("url", ""):
                    jaeger_links += 1
        if not jaeger_links:
            err(f"{where}: no panel links to traces in Jaeger")
        for var in d.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                try:
                    variable_query(var)
                except ValueError as e:
                    err(f"{where}: variable {var.get('name')}: {e}")
                if var.get("datasource", {}).get("uid") not in uids:
                    err(f"{where}: variable {var.get('name')} uses an unknown datasource")

    for e in errors:
        print(f"  ✗ {e}")
    if errors:
        sys.exit(1)
    print(f"  ✓ 2 Prometheus configs with jobs {', '.join(jobs)}; {len(uids)} datasources; "
          f"{len(boards)} dashboards; panel links to Jaeger present")


# --------------------------------------------------------------------------- Prometheus API

class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")
        self.cache = {}

    def get(self, path, **params):
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            return json.load(r)

    def query(self, expr):
        """('ok', n_series) or ('error', message)."""
        if expr not in self.cache:
            try:
                body = self.get("/api/v1/query", query=expr)
                data = body["data"]
                n = len(data["result"]) if data["resultType"] in ("vector", "matrix") else 1
                self.cache[expr] = ("ok", n)
            except urllib.error.HTTPError as e:
                try:
                    msg = json.load(e).get("error", str(e))
                except Exception:  # noqa: BLE001 - any unreadable body
                    msg = str(e)
                self.cache[expr] = ("error", msg)
        return self.cache[expr]

    def label_values(self, metric, label):
        body = self.get("/api/v1/query", query=f"count by ({label}) ({metric})")
        return sorted(r["metric"].get(label, "") for r in body["data"]["result"])


def wait(url, jobs, deadline_s):
    prom = Prometheus(url)
    deadline = time.monotonic() + deadline_s

    def poll(what, check, interval=0.5):
        last = None
        while True:
            try:
                ok, last = check()
            except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
                ok, last = False, str(e)
            if ok:
                return last
            if time.monotonic() > deadline:
                print(f"  ✗ timed out after {deadline_s}s waiting for {what}: {last}")
                sys.exit(1)
            time.sleep(interval)

    def targets_up():
        active = prom.get("/api/v1/targets", state="active")["data"]["activeTargets"]
        by_job = {t["labels"].get("job"): t for t in active}
        missing = [j for j in jobs if j not in by_job]
        down = {j: f"{t['scrapeUrl']} {t['health']} {t.get('lastError') or ''}".strip()
                for j, t in by_job.items() if t["health"] != "up"}
        return not missing and not down, {"missing": missing, "not up": down}

    poll("every target to be up (is the platform running? `make up`)", targets_up)
    print(f"  ✓ {len(jobs)} targets up")

    def two_scrapes():
        body = prom.get("/api/v1/query", query="count_over_time(up[1m])")
        counts = {r["metric"]["job"]: int(float(r["value"][1])) for r in body["data"]["result"]}
        return all(counts.get(j, 0) >= 2 for j in jobs), counts

    poll("two scrapes of every target", two_scrapes)
    print("  ✓ every target scraped at least twice")

    def evaluations():
        groups = prom.get("/api/v1/rules")["data"]["groups"]
        return {g["file"] + ":" + g["name"]: g.get("lastEvaluation") for g in groups}, groups

    before, groups = evaluations()
    if not groups:
        print("  ✗ Prometheus loaded no rule groups")
        sys.exit(1)

    def evaluated_again():
        now, groups = evaluations()
        pending = [k for k, v in now.items() if v == before.get(k)]
        return not pending, {"not evaluated yet": pending}

    poll("every rule group to be evaluated after the second scrape", evaluated_again)
    _, groups = evaluations()
    bad = [(r.get("name"), r.get("lastError")) for g in groups for r in g["rules"] if r.get("health") == "err"]
    for name, error in bad:
        print(f"  ✗ rule {name}: {error}")
    if bad:
        sys.exit(1)
    n = sum(len(g["rules"]) for g in groups)
    print(f"  ✓ {len(groups)} rule groups ({n} rules) loaded and evaluated without error")


# --------------------------------------------------------------------------- evaluate

def collect(dir_, prom, jobs):
    """[(kind, source, original, query, per_value)] where per_value maps a variable value to its query."""
    items = []
    all_jobs = promql_regex(jobs)
    for name, d in dashboards(dir_):
        values, per_var = {}, None
        for var in d.get("templating", {}).get("list", []):
            vname = var.get("name")
            if var.get("type") == "query":
                q, source = variable_query(var)
                items.append(("dashboard", f"{name} variable ${vname}", q, q, {}))
                if source:
                    values[vname] = prom.label_values(*source) or ["<none>"]
            elif var.get("type") in ("custom", "constant"):
                values[vname] = [o.get("value") for o in var.get("options", [])] or [str(var.get("query", ""))]
            elif var.get("type") in ("interval",):
                values[vname] = ["1m"]
            elif var.get("type") in ("datasource",):
                values[vname] = [var.get("current", {}).get("value", "")]
            else:
                raise ValueError(f"{name}: unsupported variable type {var.get('type')}")
            per_var = per_var or (vname if var.get("type") == "query" else None)
        for p in walk_panels(d.get("panels")):
            for t in p.get("targets", []):
                expr = t.get("expr")
                if not expr:
                    continue
                src = f"{name} panel {p.get('id')} {p.get('title')!r} {t.get('refId')}"
                per_value = {}
                if per_var and re.search(r"\$\{?%s\b|\[\[%s\]\]" % (per_var, per_var), expr):
                    for v in values[per_var]:
                        per_value[v] = substitute(expr, {**values, per_var: [v]})
                items.append(("dashboard", src, expr, substitute(expr, values), per_value))

    dsf = load(os.path.join(dir_, "datasources.json"))
    for d in dsf.get("datasources", []):
        for q in d.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
            query = q["query"].replace("$__tags", f'job=~"{all_jobs}"')
            items.append(("datasource", f"datasources.yml {d['name']} tracesToMetrics {q.get('name')!r}",
                          q["query"], substitute(query, {}), {}))

    for name, rf in rule_files(dir_):
        for g in rf.get("groups", []):
            for r in g.get("rules", []):
                expr = r["expr"].strip()
                if "record" in r:
                    items.append(("recording", f"{name} {g['name']} record {r['record']}", expr, expr, {}))
                else:
                    operands = alert_operands(expr)
                    for i, op in enumerate(operands, 1):
                        label = f" operand {i}/{len(operands)}" if len(operands) > 1 else ""
                        items.append(("alert", f"{name} {g['name']} alert {r['alert']}{label}", expr, op, {}))
    return items


def evaluate(url, dir_, jobs):
    prom = Prometheus(url)
    items = collect(dir_, prom, jobs)
    allow = os.environ.get("OBS_ALLOW_EMPTY", "")
    verbose = os.environ.get("OBS_VERBOSE") == "1"
    served = {}

    def is_served(metric):
        if metric not in served:
            status, n = prom.query(f"count({{__name__={json.dumps(metric)}}})")
            served[metric] = status == "ok" and n > 0
        return served[metric]

    failures, warnings, errors, per_value_empty = [], [], [], {}
    for kind, src, original, query, per_value in items:
        status, n = prom.query(query)
        if status == "error":
            errors.append((src, query, n))
            continue
        if n == 0:
            unserved = [m for m in metric_names(query) if not is_served(m)]
            entry = (src, query, unserved)
            if allow and unserved and all(re.fullmatch(allow, m) for m in unserved):
                warnings.append(entry)
            else:
                failures.append(entry)
        for value, q in per_value.items():
            st, k = prom.query(q)
            if st == "ok" and k == 0:
                per_value_empty.setdefault(value, []).append(src)

    count = {k: sum(1 for it in items if it[0] == k) for k in ("dashboard", "datasource", "recording", "alert")}
    alerts = len({it[1].split(" operand ")[0] for it in items if it[0] == "alert"})
    unique = len({it[3] for it in items})

    def show(title, entries, mark):
        if not entries:
            return
        print(f"\n{title}")
        for src, query, unserved in entries:
            print(f"  {mark} {src}")
            print(f"      {query}")
            if unserved:
                print(f"      not served by any target: {', '.join(unserved)}")
            else:
                print("      every metric it reads is served: no series matches its labels yet")

    for src, query, message in errors:
        print(f"  ✗ {src}: Prometheus rejects the query: {message}\n      {query}")
    show("Empty results, allowed by OBS_ALLOW_EMPTY:", warnings, "!")
    show("Empty results:", failures, "✗")

    if per_value_empty:
        print("\nPanels empty for one value of their variable (information, not a failure):")
        for value in sorted(per_value_empty):
            srcs = per_value_empty[value]
            print(f"  {value}: {len(srcs)} panel expressions")
            if verbose:
                for s in srcs:
                    print(f"      {s}")

    rule_total = count["recording"] + count["alert"]
    print(f"\nChecked {len(items)} expressions ({unique} distinct queries):")
    print(f"  dashboards:  {count['dashboard']} (panel targets and template variables)")
    print(f"  datasources: {count['datasource']} (Jaeger trace-to-metrics queries)")
    print(f"  rules:       {rule_total} ({count['recording']} recording rules, "
          f"{count['alert']} operands of {alerts} alerts)")
    bad = len(failures) + len(errors)
    print(f"  non-empty:   {len(items) - bad - len(warnings)}; empty: {len(failures)}; "
          f"allowed empty: {len(warnings)}; invalid: {len(errors)}")
    unserved_all = sorted({m for _, _, u in failures + warnings for m in u})
    if unserved_all:
        print(f"  metrics not served by any target: {', '.join(unserved_all)}")
    sys.exit(1 if bad else 0)


# --------------------------------------------------------------------------- selftest

def selftest():
    cases = {
        "up == 0": ["up"],
        "job:http_request_error_ratio:rate5m > 0.05": ["job:http_request_error_ratio:rate5m"],
        "sum by (job, topic) (increase(kafka_dead_letters_total[10m])) > 0":
            ["sum by (job, topic) (increase(kafka_dead_letters_total[10m]))"],
        "a:rate1h > (14.4 * 0.005)\nand\na:rate5m > (14.4 * 0.005)": ["a:rate1h", "a:rate5m"],
        "(a > 1 and b > 2) or (c > 3 and d > 4)": ["a", "b", "c", "d"],
        "x > 1 unless on (job) maintenance == 1": ["x"],
        'rate(x{status=~"5.."}[5m]) / rate(x[5m]) > bool 0.1': ['rate(x{status=~"5.."}[5m]) / rate(x[5m])'],
        '0 < sum(y{a=">"})': ['sum(y{a=">"})'],
        "absent(up{job=\"x\"})": ["absent(up{job=\"x\"})"],
        "orders_created_total >= 1": ["orders_created_total"],
        "(x) or vector(0)": ["x", "vector(0)"],
    }
    failed = 0
    for expr, want in cases.items():
        got = alert_operands(expr)
        if got != want:
            failed += 1
            print(f"  ✗ alert_operands({expr!r}) = {got}, want {want}")
    names = {
        'histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{job=~"a|b"}[1m])))':
            ["http_request_duration_seconds_bucket"],
        "(sum by (job) (rate(a_total{status=~\"5..\"}[5m])) or sum by (job) (rate(a_total[5m])) * 0) / b:rate5m":
            ["a_total", "b:rate5m"],
        "time() - process_start_time_seconds": ["process_start_time_seconds"],
        "count by (job) (up)": ["up"],
        "1 - (x / y) > 1e3": ["x", "y"],
    }
    for expr, want in names.items():
        got = metric_names(expr)
        if got != want:
            failed += 1
            print(f"  ✗ metric_names({expr!r}) = {got}, want {want}")
    subs = {
        ('up{job="$service"}', ("service",)): 'up{job=~"a\\\\.b|c"}',
        ("rate(x[$__rate_interval])", ()): "rate(x[1m])",
        ("increase(x[$__range]) / $__range_s", ()): "increase(x[5m]) / 300",
        ('y{job=~"${service}"}', ("service",)): 'y{job=~"a\\\\.b|c"}',
    }
    for (expr, _), want in subs.items():
        got = substitute(expr, {"service": ["a.b", "c"]})
        if got != want:
            failed += 1
            print(f"  ✗ substitute({expr!r}) = {got!r}, want {want!r}")
    if failed:
        sys.exit(1)
    print(f"  ✓ {len(cases) + len(names) + len(subs)} self-tests of the PromQL splitting and substitution")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "selftest":
        selftest()
    elif cmd == "static":
        static(argv[2], argv[3:])
    elif cmd == "wait":
        wait(argv[2], argv[4:], float(argv[3]))
    elif cmd == "evaluate":
        evaluate(argv[2], argv[3], argv[4:])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
