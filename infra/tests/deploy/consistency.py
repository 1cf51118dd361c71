#!/usr/bin/env python3
"""Cross-checks the deployment files against what the services really read.

Inputs are the *rendered* files, so interpolation, YAML anchors, kustomize
generators and patches are already applied:

  consistency.py --root . --compose compose.yml --compose-test compose-test.yml \
                 --k8s base.yaml --k8s overlay.yaml

compose.yml is `docker compose -f infra/docker-compose.yml --profile monitoring config`
(every service), compose-test.yml the same for docker-compose.test.yml, and each
--k8s file is `kubectl kustomize <dir>`.

What the services read comes from the Rust sources:
  - the default port: HttpSettings::from_env(env, <port>) in <service>/src/configuration.rs
  - the variables: env.<getter>("NAME", ...) or helper(env, "NAME", ...) in
    <service>/src, plus those of each
    shared settings struct (HttpSettings, DatabaseSettings, KafkaSettings,
    TelemetrySettings) that the service's configuration.rs uses, read from the
    struct's impl block in shared/src/configuration.rs. Test modules are ignored.

Exit status 0 when everything agrees, 1 with one line per problem otherwise.
Python standard library plus PyYAML (installed beside the validators by check.sh).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

SERVICES = ("api-gateway", "user-service", "order-service", "payment-service")
LIVE, READY = "/health/live", "/health/ready"
# Variables whose code default (127.0.0.1/localhost) cannot work inside a container
# or a pod: wherever a service reads one, the deployment must set it.
MUST_SET = ("KAFKA_BROKERS", "DATABASE_URL", "USER_SERVICE_URL", "ORDER_SERVICE_URL")
# env.get("NAME", …) and friends, or a helper called as f(env, "NAME", …).
ENV_CALL = re.compile(r'\benv\.(?:get|optional|string|millis|raw)\(\s*"([A-Z][A-Z0-9_]*)"'
                      r'|\b\w+\(\s*&?env\s*,\s*"([A-Z][A-Z0-9_]*)"')


def env_names(text: str) -> set[str]:
    return {a or b for a, b in ENV_CALL.findall(text)}


# ---------------------------------------------------------------- Rust sources


def strip_tests(text: str) -> str:
    """Source without its #[cfg(test)] module (by convention the end of the file)."""
    index = text.find("#[cfg(test)]")
    return text if index < 0 else text[:index]


def shared_struct_vars(root: Path) -> dict[str, set[str]]:
    """Variables each `impl <X>Settings` block of shared/src/configuration.rs reads."""
    text = strip_tests((root / "shared/src/configuration.rs").read_text())
    result: dict[str, set[str]] = {}
    blocks = re.split(r"^impl ", text, flags=re.M)
    for block in blocks[1:]:
        match = re.match(r"(\w+Settings)\s*\{", block)
        if match:
            result.setdefault(match.group(1), set()).update(env_names(block))
    return result


class ServiceSpec:
    """What one service reads, according to its sources."""

    def __init__(self, root: Path, name: str, structs: dict[str, set[str]]):
        self.name = name
        config = strip_tests((root / name / "src/configuration.rs").read_text())
        port = re.search(r"HttpSettings::from_env\(\s*env\s*,\s*(\d+)\s*\)", config)
        if not port:
            raise SystemExit(f"{name}/src/configuration.rs: no HttpSettings::from_env(env, <port>) found")
        self.default_port = int(port.group(1))
        self.structs = sorted(s for s in structs if re.search(rf"\b{s}::from_env\(", config))
        self.reads: set[str] = set()
        for struct in self.structs:
            self.reads |= structs[struct]
        for path in sorted((root / name / "src").rglob("*.rs")):
            self.reads |= env_names(strip_tests(path.read_text()))
        if "PORT" not in self.reads:
            raise SystemExit(f"{name}: PORT not among the variables found ({sorted(self.reads)}): parser out of date?")

    def port(self, env: dict[str, str]) -> int:
        return int(env.get("PORT") or self.default_port)


def dockerfile_ports(root: Path) -> dict[str, tuple[str | None, list[str]]]:
    """runtime-<service> stage -> (ENV PORT, EXPOSE ports) in the root Dockerfile."""
    stages: dict[str, tuple[str | None, list[str]]] = {}
    current = None
    for line in (root / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+runtime-(\S+)", line, re.I)
        if match:
            current = match.group(1)
            stages[current] = (None, [])
            continue
        if re.match(r"FROM\s", line, re.I):
            current = None
        if current is None:
            continue
        env = re.match(r"ENV\s+PORT[= ](\d+)", line)
        if env:
            stages[current] = (env.group(1), stages[current][1])
        expose = re.match(r"EXPOSE\s+(.+)", line)
        if expose:
            stages[current][1].extend(p.split("/")[0] for p in expose.group(1).split())
    return stages


# ---------------------------------------------------------------- helpers


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checks = 0

    def check(self, ok: bool, message: str) -> bool:
        self.checks += 1
        if not ok:
            self.problems.append(message)
        return ok


def url_port(url: str) -> tuple[str | None, int | None]:
    parsed = urlparse(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.hostname, port


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # docker-compose v1 may keep the list form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def compose_ports(service: dict) -> list[tuple[str | None, int]]:
    """(published, target) for every port mapping, short or long syntax."""
    result = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published = port.get("published")
            result.append((None if published is None else str(published), int(port["target"])))
        else:
            parts = str(port).split("/")[0].split(":")
            result.append((parts[-2] if len(parts) > 1 else None, int(parts[-1])))
    return result


def healthcheck_command(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(t) for t in test[1:] if t not in ("CMD", "CMD-SHELL"))
    return str(test or "")


# ---------------------------------------------------------------- docker compose


def check_compose(root: Path, compose: dict, specs: dict[str, ServiceSpec], report: Report) -> None:
    services = compose.get("services") or {}
    where = "infra/docker-compose.yml"
    for name in SERVICES:
        report.check(name in services, f"{where}: no service {name}")
    image_ports = dockerfile_ports(root)

    # Every container has a healthcheck, and every dependency waits for it.
    for name, service in services.items():
        report.check(bool(healthcheck_command(service)), f"{where}: {name} has no healthcheck")
        for dep, how in (service.get("depends_on") or {}).items():
            condition = how.get("condition") if isinstance(how, dict) else None
            report.check(condition == "service_healthy",
                         f"{where}: {name} depends_on {dep} with condition {condition!r}, expected service_healthy")
            report.check(dep in services, f"{where}: {name} depends on unknown service {dep}")

    ports_by_host: dict[str, int] = {}
    for name, spec in specs.items():
        service = services.get(name)
        if service is None:
            continue
        env = compose_env(service)
        build_args = ((service.get("build") or {}).get("args")) or {}
        report.check(build_args.get("SERVICE") == name,
                     f"{where}: {name} builds with SERVICE={build_args.get('SERVICE')!r}, expected {name!r}")
        # The port: the one the service listens on, the image's EXPOSE, the mapping, the healthcheck.
        port = spec.port(env)
        ports_by_host[name] = port
        stage = image_ports.get(name)
        if report.check(stage is not None, f"Dockerfile: no stage runtime-{name}"):
            env_port, exposed = stage
            report.check(env_port == str(spec.default_port),
                         f"Dockerfile: runtime-{name} sets PORT={env_port}, {name} defaults to {spec.default_port}")
            report.check(exposed == [str(spec.default_port)],
                         f"Dockerfile: runtime-{name} exposes {exposed}, {name} listens on {spec.default_port}")
        targets = [target for _, target in compose_ports(service)]
        report.check(port in targets, f"{where}: {name} listens on {port} but publishes container ports {targets}")
        for var in sorted(env):
            report.check(var in spec.reads, f"{where}: {name} sets {var}, which {name} never reads")
        for var in MUST_SET:
            if var in spec.reads:
                report.check(bool(env.get(var)), f"{where}: {name} reads {var} but compose does not set it")
        command = healthcheck_command(service)
        urls = re.findall(r"https?://[^\s\"']+", command)
        if report.check(bool(urls), f"{where}: {name} healthcheck calls no URL: {command!r}"):
            for url in urls:
                host, url_port_ = url_port(url)
                path = urlparse(url).path
                report.check(path in (LIVE, READY), f"{where}: {name} healthcheck asks {path}, expected {LIVE} or {READY}")
                report.check(url_port_ == port, f"{where}: {name} healthcheck asks port {url_port_}, it listens on {port}")

    # URLs between services point at a service and the port it listens on.
    for name, spec in specs.items():
        env = compose_env(services.get(name) or {})
        for var in ("USER_SERVICE_URL", "ORDER_SERVICE_URL"):
            if var in env:
                host, port = url_port(env[var])
                expected = var.split("_")[0].lower() + "-service"
                report.check(host == expected and port == ports_by_host.get(expected),
                             f"{where}: {name} {var}={env[var]} but {expected} listens on {expected}:{ports_by_host.get(expected)}")

    # Kafka: what the services are told is what the broker advertises.
    kafka_env = compose_env(services.get("kafka") or {})
    advertised = [a.split("://", 1)[-1] for a in kafka_env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",") if a]
    for name in SERVICES:
        brokers = compose_env(services.get(name) or {}).get("KAFKA_BROKERS")
        if brokers:
            for broker in brokers.split(","):
                report.check(broker in advertised, f"{where}: {name} KAFKA_BROKERS={broker} is not an advertised listener {advertised}")

    # PostgreSQL: the databases the services use are created by the init scripts.
    init_dir = root / "infra/docker/postgres-init"
    created = set()
    for path in sorted(init_dir.glob("*.sql")) if init_dir.is_dir() else []:
        created |= set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)\"?", path.read_text(), re.I))
    for name in SERVICES:
        env = compose_env(services.get(name) or {})
        if "DATABASE_NAME" in env:
            report.check(env["DATABASE_NAME"] in created,
                         f"{where}: {name} uses database {env['DATABASE_NAME']}, which infra/docker/postgres-init does not create")
        if env.get("DATABASE_URL"):
            host, _ = url_port(env["DATABASE_URL"])
            report.check(host in services, f"{where}: {name} DATABASE_URL names host {host}, not a compose service")

    # Bind mounts point at files of the repository that exist.
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            kind = volume.get("type") if isinstance(volume, dict) else ("bind" if source.startswith((".", "/")) else "volume")
            if kind == "bind" and source:
                path = Path(source) if Path(source).is_absolute() else root / "infra" / source
                report.check(path.exists(), f"{where}: {name} mounts {path.relative_to(root) if path.is_relative_to(root) else path}, which does not exist")

    # Prometheus scrapes the services where they listen.
    prom = root / "infra/prometheus/prometheus.docker.yml"
    if prom.exists():
        config = yaml.safe_load(prom.read_text()) or {}
        scraped = set()
        for job in config.get("scrape_configs") or []:
            for static in job.get("static_configs") or []:
                for target in static.get("targets") or []:
                    host, _, port = target.rpartition(":")
                    if host in specs:
                        scraped.add(host)
                        report.check(int(port) == ports_by_host.get(host),
                                     f"infra/prometheus/prometheus.docker.yml: scrapes {target}, {host} listens on {ports_by_host.get(host)}")
                    if job.get("metrics_path", "/metrics") != "/metrics":
                        report.problems.append(f"infra/prometheus/prometheus.docker.yml: job {job.get('job_name')} scrapes {job.get('metrics_path')}, services serve /metrics")
        for name in SERVICES:
            report.check(name in scraped, f"infra/prometheus/prometheus.docker.yml: {name} is not scraped")


def check_compose_test(root: Path, compose: dict, report: Report) -> None:
    where = "infra/docker-compose.test.yml"
    services = compose.get("services") or {}
    report.check(set(services) == {"postgres", "kafka"}, f"{where}: expected only postgres and kafka, found {sorted(services)}")
    testing = (root / "shared/src/testing.rs").read_text()
    db_default = re.search(r'"TEST_DATABASE_URL",\s*"([^"]+)"', testing)
    kafka_default = re.search(r'"TEST_KAFKA_BROKERS",\s*"([^"]+)"', testing)
    if not report.check(bool(db_default and kafka_default), "shared/src/testing.rs: TEST_DATABASE_URL/TEST_KAFKA_BROKERS defaults not found"):
        return
    db_url = urlparse(db_default.group(1))
    postgres = services.get("postgres") or {}
    published = [p for p, t in compose_ports(postgres) if t == 5432]
    report.check(str(db_url.port) in published,
                 f"{where}: postgres publishes {published}, the tests default to port {db_url.port} (TEST_DATABASE_URL)")
    if not db_url.password:
        report.check(compose_env(postgres).get("POSTGRES_HOST_AUTH_METHOD") == "trust",
                     f"{where}: the tests' default URL has no password, so postgres needs POSTGRES_HOST_AUTH_METHOD=trust")
    kafka = services.get("kafka") or {}
    broker = kafka_default.group(1)
    advertised = [a.split("://", 1)[-1] for a in compose_env(kafka).get("KAFKA_ADVERTISED_LISTENERS", "").split(",")]
    report.check(broker in advertised, f"{where}: the tests default to {broker} (TEST_KAFKA_BROKERS), kafka advertises {advertised}")
    host_port = broker.rsplit(":", 1)[1]
    report.check(host_port in [p for p, _ in compose_ports(kafka)], f"{where}: kafka does not publish {host_port}")
    for name, service in services.items():
        report.check(bool(healthcheck_command(service)), f"{where}: {name} has no healthcheck")


# ---------------------------------------------------------------- Kubernetes


def quantity_present(resources: dict, kind: str, what: str) -> bool:
    return bool((resources.get(kind) or {}).get(what))


def probe_path_port(probe: dict | None) -> tuple[str | None, object]:
    get = (probe or {}).get("httpGet") or {}
    return get.get("path"), get.get("port")


def check_k8s(label: str, docs: list[dict], specs: dict[str, ServiceSpec], report: Report) -> None:
    where = label
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    services = by_kind.get("Service", {})
    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    pdbs = by_kind.get("PodDisruptionBudget", {})
    report.check(set(deployments) == set(SERVICES), f"{where}: Deployments {sorted(deployments)}, expected {sorted(SERVICES)}")

    listening: dict[str, int] = {}
    for name, spec in specs.items():
        deployment = deployments.get(name)
        if deployment is None:
            continue
        pod = deployment["spec"]["template"]
        containers = pod["spec"]["containers"]
        if not report.check(len(containers) == 1, f"{where}: {name} has {len(containers)} containers, expected 1"):
            continue
        container = containers[0]
        image = container.get("image", "")
        report.check(image.split("@")[0].rsplit(":", 1)[0].endswith("/" + name),
                     f"{where}: {name} runs image {image}, expected …/{name}")
        # The environment: explicit env plus every key of the envFrom sources.
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref = source["configMapRef"]["name"]
                if report.check(ref in config_maps, f"{where}: {name} envFrom ConfigMap {ref}, which is not rendered"):
                    env.update({prefix + k: str(v) for k, v in (config_maps[ref].get("data") or {}).items()})
            if "secretRef" in source:
                ref = source["secretRef"]["name"]
                if report.check(ref in secrets, f"{where}: {name} envFrom Secret {ref}, which is not rendered"):
                    keys = set(secrets[ref].get("data") or {}) | set(secrets[ref].get("stringData") or {})
                    env.update({prefix + k: "<secret>" for k in keys})
        for item in container.get("env") or []:
            value = item.get("value")
            ref = (item.get("valueFrom") or {}).get("secretKeyRef") or (item.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                store = secrets if "secretKeyRef" in item["valueFrom"] else config_maps
                doc = store.get(ref["name"])
                keys = set((doc or {}).get("data") or {}) | set((doc or {}).get("stringData") or {})
                report.check(doc is not None and ref["key"] in keys,
                             f"{where}: {name} {item['name']} refers to {ref['name']}/{ref['key']}, which does not exist")
                value = "<ref>"
            env[item["name"]] = "" if value is None else str(value)
        for var in sorted(env):
            report.check(var in spec.reads, f"{where}: {name} sets {var}, which {name} never reads")
        for var in MUST_SET:
            if var in spec.reads:
                report.check(bool(env.get(var)), f"{where}: {name} reads {var} but the manifests do not set it")

        port = spec.port(env)
        listening[name] = port
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        report.check(port in named.values(), f"{where}: {name} listens on {port}, containerPorts are {sorted(named.values())}")

        def resolve(p: object) -> object:
            return named.get(p, p) if isinstance(p, str) else p

        for probe, expected in (("livenessProbe", LIVE), ("readinessProbe", READY), ("startupProbe", LIVE)):
            if probe == "startupProbe" and probe not in container:
                continue
            path, probe_port = probe_path_port(container.get(probe))
            report.check(path == expected, f"{where}: {name} {probe} asks {path}, expected {expected}")
            report.check(resolve(probe_port) == port, f"{where}: {name} {probe} asks port {probe_port}, it listens on {port}")

        annotations = pod["metadata"].get("annotations") or {}
        report.check(annotations.get("prometheus.io/scrape") == "true", f"{where}: {name} lacks prometheus.io/scrape: \"true\"")
        report.check(annotations.get("prometheus.io/port") == str(port),
                     f"{where}: {name} prometheus.io/port is {annotations.get('prometheus.io/port')}, it listens on {port}")
        report.check(annotations.get("prometheus.io/path") == "/metrics", f"{where}: {name} prometheus.io/path is not /metrics")

        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for what in ("cpu", "memory"):
                report.check(quantity_present(resources, kind, what), f"{where}: {name} has no {what} {kind}")
        pod_security = pod["spec"].get("securityContext") or {}
        security = container.get("securityContext") or {}
        report.check(security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, f"{where}: {name} may run as root")
        report.check(security.get("readOnlyRootFilesystem") is True, f"{where}: {name} root filesystem is writable")
        report.check(security.get("allowPrivilegeEscalation") is False, f"{where}: {name} allows privilege escalation")

        service = services.get(name)
        if report.check(service is not None, f"{where}: no Service {name}"):
            selector = service["spec"].get("selector") or {}
            labels = pod["metadata"].get("labels") or {}
            report.check(bool(selector) and all(labels.get(k) == v for k, v in selector.items()),
                         f"{where}: Service {name} selector {selector} does not match the pods' labels")
            for svc_port in service["spec"]["ports"]:
                report.check(resolve(svc_port.get("targetPort", svc_port["port"])) == port,
                             f"{where}: Service {name} targets {svc_port.get('targetPort')}, the pod listens on {port}")
            report.check(any(p["port"] == port for p in service["spec"]["ports"]),
                         f"{where}: Service {name} does not offer port {port}, which the other services' URLs use")
        report.check(any((p["spec"].get("selector") or {}).get("matchLabels", {}).items() <= (pod["metadata"].get("labels") or {}).items()
                         for p in pdbs.values()), f"{where}: no PodDisruptionBudget selects {name}")

    # Consumers autoscale, within the partition count.
    for name in ("order-service", "payment-service"):
        hpa = hpas.get(name)
        if report.check(hpa is not None, f"{where}: no HorizontalPodAutoscaler for {name}"):
            report.check(hpa["apiVersion"] == "autoscaling/v2", f"{where}: HPA {name} is {hpa['apiVersion']}, expected autoscaling/v2")
            report.check("replicas" not in deployments.get(name, {}).get("spec", {}),
                         f"{where}: Deployment {name} sets replicas although an HPA scales it")
            partitions = None
            for cm in config_maps.values():
                partitions = (cm.get("data") or {}).get("KAFKA_TOPIC_PARTITIONS", partitions)
            partitions = int(partitions or 3)
            report.check(hpa["spec"]["maxReplicas"] <= partitions,
                         f"{where}: HPA {name} may scale to {hpa['spec']['maxReplicas']}, but topics have {partitions} partitions")

    # The gateway's upstream URLs name the Services and their ports.
    gateway = deployments.get("api-gateway")
    if gateway:
        for item in gateway["spec"]["template"]["spec"]["containers"][0].get("env") or []:
            if item["name"] in ("USER_SERVICE_URL", "ORDER_SERVICE_URL") and item.get("value"):
                host, port = url_port(item["value"])
                target = host.split(".")[0] if host else None
                report.check(target in services and port == listening.get(target),
                             f"{where}: api-gateway {item['name']}={item['value']} but {target} listens on {listening.get(target)}")


# ---------------------------------------------------------------- main


def run_all(root: Path, specs, compose, compose_test, k8s) -> Report:
    report = Report()
    check_compose(root, compose, specs, report)
    check_compose_test(root, compose_test, report)
    for label, docs in k8s:
        check_k8s(label, docs, specs, report)
    return report


def self_test(root: Path, specs, compose, compose_test, k8s) -> tuple[int, list[str]]:
    """Breaks copies of the inputs on purpose: each break must be reported."""
    failures = []
    count = 0

    def expect(what: str, mutate) -> None:
        nonlocal count
        count += 1
        c, t, k = copy.deepcopy(compose), copy.deepcopy(compose_test), copy.deepcopy(k8s)
        mutate(c, t, k)
        if not run_all(root, specs, c, t, k).problems:
            failures.append(f"self-test: {what} went unnoticed")

    def k8s_container(k, name):
        for doc in k[0][1]:
            if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
                return doc["spec"]["template"]["spec"]["containers"][0]
        raise KeyError(name)

    expect("a variable payment-service never reads, in compose",
           lambda c, t, k: c["services"]["payment-service"]["environment"].__setitem__("DATABASE_NAME", "orderdb"))
    expect("a wrong healthcheck path in compose",
           lambda c, t, k: c["services"]["user-service"]["healthcheck"].__setitem__(
               "test", ["CMD", "curl", "-f", "http://127.0.0.1:3001/healthz"]))
    expect("PORT set without moving the published port, in compose",
           lambda c, t, k: c["services"]["order-service"]["environment"].__setitem__("PORT", "4000"))
    expect("a variable api-gateway never reads, in Kubernetes",
           lambda c, t, k: k8s_container(k, "api-gateway").setdefault("env", []).append({"name": "KAFKA_BROKERS", "value": "x:9092"}))
    expect("a readiness probe on the liveness path, in Kubernetes",
           lambda c, t, k: k8s_container(k, "order-service")["readinessProbe"]["httpGet"].__setitem__("path", LIVE))
    expect("a containerPort that is not the service's port, in Kubernetes",
           lambda c, t, k: k8s_container(k, "user-service")["ports"][0].__setitem__("containerPort", 8080))
    expect("a test broker on another port",
           lambda c, t, k: t["services"]["kafka"]["environment"].__setitem__(
               "KAFKA_ADVERTISED_LISTENERS", "EXTERNAL://127.0.0.1:19092"))
    return count, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--compose", type=Path, required=True)
    parser.add_argument("--compose-test", type=Path, required=True)
    parser.add_argument("--k8s", action="append", required=True, metavar="LABEL=RENDERED.yaml",
                        help="a rendered kustomization, e.g. infra/k8s/base=/tmp/base.yaml")
    args = parser.parse_args()
    root = args.root.resolve()

    structs = shared_struct_vars(root)
    specs = {name: ServiceSpec(root, name, structs) for name in SERVICES}
    for spec in specs.values():
        print(f"  {spec.name:<16} port {spec.default_port}, reads {len(spec.reads)} variables "
              f"({', '.join(spec.structs)} + its own)")
    compose = yaml.safe_load(args.compose.read_text())
    compose_test = yaml.safe_load(args.compose_test.read_text())
    k8s = []
    for item in args.k8s:
        label, _, path = item.partition("=")
        k8s.append((label, [d for d in yaml.safe_load_all(Path(path).read_text()) if d]))

    report = run_all(root, specs, compose, compose_test, k8s)
    if report.problems:
        print(f"consistency: {len(report.problems)} problem(s) in {report.checks} checks:", file=sys.stderr)
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    breaks, failures = self_test(root, specs, compose, compose_test, k8s)
    if failures:
        for failure in failures:
            print(failure, file=sys.stderr)
        return 1
    print(f"  consistency: {report.checks} checks passed; all {breaks} deliberate breaks detected (self-test)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
