#!/usr/bin/env python3
"""Cross-checks the deployment files against what the services really read.

Inputs are the *rendered* files, so interpolation, YAML anchors, kustomize
generators and patches are already applied:

  consistency.py --root . --compose compose.yml --compose-test compose-test.yml \
                 --k8s base.yaml --k8s overlay.yaml

compose.yml is `docker compose -f infra/docker-compose.yml --profile monitoring config`
(every service), compose-test.yml the same for docker-compose.test.yml, and each
--k8s file is `kubectl kustomize <dir>`. check.sh renders compose with every
KAFKA_PASSWORD_<PRINCIPAL> set to its own name, so a rendered password names the
variable it came from.

What the services read comes from the Rust sources:
  - the default port: HttpSettings::from_env(env, <port>) in <service>/src/configuration.rs
  - the variables: env.<getter>("NAME", ...), helper(env, "NAME", ...) or a local
    closure `let f = |name: &str, ...|` called as f("NAME", ...) in <service>/src,
    plus those of each shared type with a from_env (HttpSettings, DatabaseSettings,
    KafkaSettings, TelemetrySettings, ServiceKey, ...) that the service's
    configuration.rs uses, read from the type's impl block in shared/*/src/**.rs, with
    those of the shared types that impl block builds in turn (KafkaSecurity).
    Test modules are ignored.
  - whether it consumes Kafka: ConsumerBuilder::new in <service>/src.

Production secrets: a service whose rendered manifests say APP_ENV=production
refuses to start without its secrets (PRODUCTION_SECRETS below, each checked
against the sources). Every such service must receive each of them, non-empty, and
where the value is in the rendered files (a kustomize-generated Secret, a literal)
it must pass the service's production rules: keys and JWT secrets of at least 32
bytes and not the development value, a valid admin e-mail address, an admin
password that is not the development default and meets the password rules.

Kafka clients against Apache Kafka: every service with a Kafka consumer is given
KAFKA_GROUP_INSTANCE_ID (static membership): in
compose a fixed value of its own, in Kubernetes the pod name (fieldRef metadata.name).

Databases: every service with a database (DatabaseSettings::from_env(env, "<default>") in
its configuration.rs) owns one of its own. Compose names it (DATABASE_NAME, created by
infra/docker/postgres-init, no two services alike) and starts the service only once the
server its DATABASE_URL names is healthy; Kubernetes names it likewise and takes
DATABASE_URL, which may hold a password, from a Secret key of the service's own. The native
scripts and the bench know it too: a <X>_DATABASE_NAME in infra/scripts/common.sh
defaulting to the service's default, which databases.sh creates, services.sh passes to the
service, with-platform.sh replaces by a test database of its own and drops, and
infra/watch/watch.py passes on; and an entry in bench/harness.py's DATABASES.

Kafka principals (SASL/SCRAM, ACLs): each of user-, order- and payment-service signs in
as itself, KAFKA_SASL_USERNAME its own name, KAFKA_SASL_PASSWORD its own variable: in
compose KAFKA_PASSWORD_<SERVICE>, in Kubernetes that key of the Secret
platform-kafka-users, which the tree never generates. No container gets another
principal's password. No compose or Kubernetes file of the tree holds a Kafka password:
every KAFKA_*PASSWORD* setting, JAAS password="..." / user_<name>="..." and SCRAM
[password=...] is a reference (${VAR}, $VAR), never a value. The ACL table
(infra/k8s/components/kafka-acls/kafka-acls.sh, `allow` lines) grants Write on each base
topic to its owner and platform-operator (replay) only, Read on each consumer's group,
and every principal a client signs in as has its SCRAM credentials there. In compose the
Kafka clients start after kafka-init (the one-shot service that runs that script) has
succeeded, and each speaks the security protocol and mechanism of the listener it uses.

Exit status 0 when everything agrees, 1 with one line per problem otherwise.
Python standard library plus PyYAML (installed beside the validators by check.sh).
"""

from __future__ import annotations

import argparse
import base64
import binascii
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
# env.get("NAME", …) and friends (also `env\n    .string(…)`), or a helper called as f(env, "NAME", …).
ENV_CALL = re.compile(r'\benv\s*\.(?:get|optional|string|millis|raw|service_url|one_of)\(\s*"([A-Z][A-Z0-9_]*)"'
                      r'|\b\w+\(\s*&?env\s*,\s*"([A-Z][A-Z0-9_]*)"')
# A closure taking the variable's name first: `let positive = |name: &str, default: u32| …`.
NAME_CLOSURE = re.compile(r'\blet\s+(\w+)\s*=\s*(?:move\s*)?\|\s*\w+\s*:\s*&str\b')
# What production insists on, per service: the variables a service with APP_ENV=production
# refuses to start without (shared/platform/src/auth.rs ServiceKey, api-gateway JwtSettings,
# user-service AdminSettings). Each must also be among the variables the sources read.
PRODUCTION_SECRETS = {
    "api-gateway": ("SERVICE_API_KEY", "JWT_SECRET"),
    "user-service": ("SERVICE_API_KEY", "ADMIN_EMAIL", "ADMIN_PASSWORD"),
    "order-service": ("SERVICE_API_KEY",),
    "payment-service": (),
}
# Where the development defaults production refuses are defined: (file, constant).
DEVELOPMENT_VALUES = {
    "SERVICE_API_KEY": ("shared/platform/src/auth.rs", "DEVELOPMENT_API_KEY"),
    "JWT_SECRET": ("api-gateway/src/configuration.rs", "DEVELOPMENT_JWT_SECRET"),
    "ADMIN_PASSWORD": ("user-service/src/configuration.rs", "DEVELOPMENT_ADMIN_PASSWORD"),
}
MIN_SECRET_BYTES = 32  # ServiceKey and JwtSettings refuse shorter values in production.
GROUP_INSTANCE_ID = "KAFKA_GROUP_INSTANCE_ID"
# The files outside the deployment that must know each service's database (check_native).
NATIVE_FILES = ("infra/scripts/common.sh", "infra/scripts/databases.sh", "infra/scripts/services.sh",
                "infra/scripts/with-platform.sh", "infra/watch/watch.py", "bench/harness.py")
# Kafka principals and ACLs.
ACL_SCRIPT = "infra/k8s/components/kafka-acls/kafka-acls.sh"
KAFKA_INIT = "kafka-init"                  # compose's one-shot service running ACL_SCRIPT
KAFKA_USERS_SECRET = "platform-kafka-users"  # Kubernetes: one KAFKA_PASSWORD_<P> key a principal
KAFKA_ADMIN_SECRET = "platform-kafka-admin"  # Kubernetes: KAFKA_PASSWORD_ADMIN, for the ACL Job only
EXTERNAL_SECRETS = (KAFKA_USERS_SECRET, KAFKA_ADMIN_SECRET)  # created in the cluster, never in the tree
REPLAYER = "platform-operator"  # platform-dlq replays dead letters to their original topic
# Who writes each base topic (its .dlq is written by its consumer). The keys must be the
# topics of shared/contracts/src/events.rs.
TOPIC_OWNERS = {
    "user.created": "user-service", "user.deleted": "user-service",
    "order.created": "order-service", "order.cancelled": "order-service",
    "payment.completed": "payment-service", "payment.refunded": "payment-service",
}
# Files whose Kafka passwords must all be references (check_no_kafka_password_literals).
DEPLOY_FILES = ("infra/docker-compose.yml", "infra/docker-compose.test.yml")
DEPLOY_DIRS = ("infra/k8s",)


def password_variable(principal: str) -> str:
    """KAFKA_PASSWORD_USER_SERVICE for user-service (as infra/scripts/secrets.sh names them)."""
    return "KAFKA_PASSWORD_" + principal.replace("-", "_").upper()


def check_kafka_clients(where: str, name: str, spec: ServiceSpec, values: dict[str, str | None],
                        report: Report) -> None:
    """Apache Kafka settings every deployment gives: a static group member id."""
    if spec.consumes:
        report.check(GROUP_INSTANCE_ID in values,
                     f"{where}: {name} has a Kafka consumer but no {GROUP_INSTANCE_ID} (static group membership)")


def env_names(text: str) -> set[str]:
    names = {a or b for a, b in ENV_CALL.findall(text)}
    for closure in set(NAME_CLOSURE.findall(text)):
        names |= set(re.findall(rf'\b{closure}\(\s*"([A-Z][A-Z0-9_]*)"', text))
    return names


# ---------------------------------------------------------------- Rust sources


def strip_tests(text: str) -> str:
    """Source without its #[cfg(test)] module (by convention the end of the file)."""
    index = text.find("#[cfg(test)]")
    return text if index < 0 else text[:index]


def shared_struct_vars(root: Path) -> dict[str, set[str]]:
    """Variables each `impl <Type>` block with a from_env in shared/*/src/**.rs reads.

    Settings structs live in shared/platform/src/configuration.rs,
    shared/database/src/lib.rs and shared/eventing/src/configuration.rs, ServiceKey (SERVICE_API_KEY) in
    shared/platform/src/auth.rs; any shared type a service builds with `<Type>::from_env`
    counts."""
    result: dict[str, set[str]] = {}
    builds: dict[str, set[str]] = {}
    for path in sorted(root.glob("shared/*/src/**/*.rs")):
        text = strip_tests(path.read_text())
        blocks = re.split(r"^impl ", text, flags=re.M)
        for block in blocks[1:]:
            match = re.match(r"(\w+)\s*\{", block)
            if match and re.search(r"\bfn from_env\(", block):
                result.setdefault(match.group(1), set()).update(env_names(block))
                builds.setdefault(match.group(1), set()).update(re.findall(r"\b(\w+)::from_env\(", block))
    # A type whose from_env builds another (KafkaSettings builds KafkaSecurity) reads its variables too.
    changed = True
    while changed:
        changed = False
        for name, inner in builds.items():
            for other in inner & set(result):
                if not result[other] <= result[name]:
                    result[name] |= result[other]
                    changed = True
    if "SERVICE_API_KEY" not in result.get("ServiceKey", set()):
        raise SystemExit("shared/*/src: ServiceKey::from_env reading SERVICE_API_KEY not found: parser out of date?")
    return result


def rust_str_const(root: Path, file: str, name: str) -> str:
    """The value of `pub const <name>: &str = "...";` in a source file."""
    match = re.search(rf'\bconst\s+{name}\s*:\s*&str\s*=\s*"([^"\\]*)"', (root / file).read_text())
    if not match:
        raise SystemExit(f"{file}: const {name} not found: parser out of date?")
    return match.group(1)


class ServiceSpec:
    """What one service reads, according to its sources."""

    def __init__(self, root: Path, name: str, structs: dict[str, set[str]]):
        self.name = name
        config = strip_tests((root / name / "src/configuration.rs").read_text())
        port = re.search(r"HttpSettings::from_env\(\s*env\s*,\s*(\d+)\s*\)", config)
        if not port:
            raise SystemExit(f"{name}/src/configuration.rs: no HttpSettings::from_env(env, <port>) found")
        self.default_port = int(port.group(1))
        # A service whose health and metrics have a listener of their own (the gateway).
        admin = re.search(r'env\.get\("ADMIN_PORT",\s*(\d+)\)', config)
        self.default_admin_port = int(admin.group(1)) if admin else None
        self.structs = sorted(s for s in structs if re.search(rf"\b{s}::from_env\(", config))
        # The database the service uses unless DATABASE_NAME says otherwise.
        database = re.search(r'DatabaseSettings::from_env\(\s*env\s*,\s*"([^"]+)"\s*\)', config)
        self.default_database = database.group(1) if database else None
        self.reads: set[str] = set()
        for struct in self.structs:
            self.reads |= structs[struct]
        self.consumes = False
        for path in sorted((root / name / "src").rglob("*.rs")):
            text = strip_tests(path.read_text())
            self.reads |= env_names(text)
            self.consumes |= bool(re.search(r"\bConsumerBuilder::new\(", text))
        if "PORT" not in self.reads:
            raise SystemExit(f"{name}: PORT not among the variables found ({sorted(self.reads)}): parser out of date?")
        if ("DATABASE_NAME" in self.reads) != (self.default_database is not None):
            raise SystemExit(f"{name}: reads DATABASE_NAME: {'DATABASE_NAME' in self.reads}, "
                             f"DatabaseSettings::from_env(env, \"<default>\") found: {self.default_database is not None}: "
                             "parser out of date?")
        # The production rules name these variables; the parser must see the service read them.
        self.production_secrets = PRODUCTION_SECRETS.get(name, ())
        missing = [v for v in self.production_secrets if v not in self.reads]
        if missing:
            raise SystemExit(f"{name}: production needs {missing}, which the sources do not read: "
                             "PRODUCTION_SECRETS or the parser out of date?")

    def port(self, env: dict[str, str]) -> int:
        return int(env.get("PORT") or self.default_port)

    def probe_port(self, env: dict[str, str]) -> int:
        """Where `/health/*` and `/metrics` answer: the admin port, else the service's own."""
        if self.default_admin_port is None:
            return self.port(env)
        return int(env.get("ADMIN_PORT") or self.default_admin_port)

    def check_admin_reachable(self, where: str, env: dict[str, str], report: "Report") -> None:
        """An admin listener in a container must listen beyond loopback for probes and Prometheus."""
        if self.default_admin_port is not None:
            report.check(env.get("ADMIN_HOST") == "0.0.0.0",
                         f"{where}: {self.name} serves health and metrics on ADMIN_HOST, which must be 0.0.0.0 "
                         f"in a container (is {env.get('ADMIN_HOST')!r})")


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

    # Every long-running container has a healthcheck, and every dependency waits for it;
    # a one-shot container (restart "no", such as kafka-init) is waited for until it
    # has exited 0.
    one_shot = {name for name, service in services.items() if service.get("restart") == "no"}
    for name, service in services.items():
        if name not in one_shot:
            report.check(bool(healthcheck_command(service)), f"{where}: {name} has no healthcheck")
        for dep, how in (service.get("depends_on") or {}).items():
            condition = how.get("condition") if isinstance(how, dict) else None
            expected = "service_completed_successfully" if dep in one_shot else "service_healthy"
            report.check(condition == expected,
                         f"{where}: {name} depends_on {dep} with condition {condition!r}, expected {expected}")
            report.check(dep in services, f"{where}: {name} depends on unknown service {dep}")

    ports_by_host: dict[str, int] = {}
    probes_by_host: dict[str, int] = {}
    service_keys: dict[str, object] = {}
    instance_ids: dict[str, list[str]] = {}
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
        probe_port = spec.probe_port(env)
        ports_by_host[name] = port
        probes_by_host[name] = probe_port
        spec.check_admin_reachable(where, env, report)
        stage = image_ports.get(name)
        if report.check(stage is not None, f"Dockerfile: no stage runtime-{name}"):
            env_port, exposed = stage
            report.check(env_port == str(spec.default_port),
                         f"Dockerfile: runtime-{name} sets PORT={env_port}, {name} defaults to {spec.default_port}")
            listens = [str(p) for p in (spec.default_port, spec.default_admin_port) if p is not None]
            report.check(exposed == listens, f"Dockerfile: runtime-{name} exposes {exposed}, {name} listens on {listens}")
        targets = [target for _, target in compose_ports(service)]
        report.check(port in targets, f"{where}: {name} listens on {port} but publishes container ports {targets}")
        for var in sorted(env):
            report.check(var in spec.reads, f"{where}: {name} sets {var}, which {name} never reads")
        for var in MUST_SET:
            if var in spec.reads:
                report.check(bool(env.get(var)), f"{where}: {name} reads {var} but compose does not set it")
        check_production_secrets(where, name, spec, env, report)
        check_kafka_clients(where, name, spec, env, report)
        if GROUP_INSTANCE_ID in env:
            report.check(spec.consumes, f"{where}: {name} sets KAFKA_GROUP_INSTANCE_ID but has no Kafka consumer")
            report.check(bool(env[GROUP_INSTANCE_ID].strip()), f"{where}: {name} sets an empty KAFKA_GROUP_INSTANCE_ID")
            instance_ids.setdefault(env[GROUP_INSTANCE_ID], []).append(name)
        if "SERVICE_API_KEY" in spec.reads:
            key = env.get("SERVICE_API_KEY", "")
            service_keys[name] = key if key.strip() else "<development default>"
        command = healthcheck_command(service)
        urls = re.findall(r"https?://[^\s\"']+", command)
        if report.check(bool(urls), f"{where}: {name} healthcheck calls no URL: {command!r}"):
            for url in urls:
                host, url_port_ = url_port(url)
                path = urlparse(url).path
                report.check(path in (LIVE, READY), f"{where}: {name} healthcheck asks {path}, expected {LIVE} or {READY}")
                report.check(url_port_ == probe_port,
                             f"{where}: {name} healthcheck asks port {url_port_}, its health answers on {probe_port}")

    check_same_service_key(where, service_keys, report)
    for instance_id, names in instance_ids.items():
        report.check(len(names) == 1, f"{where}: {', '.join(names)} share KAFKA_GROUP_INSTANCE_ID={instance_id}")

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
    owners: dict[str, list[str]] = {}
    for name in SERVICES:
        service = services.get(name) or {}
        env = compose_env(service)
        spec = specs.get(name)
        if spec and spec.default_database:
            # Named, not left to the code's default, so that the init scripts can be checked.
            report.check(bool(env.get("DATABASE_NAME")),
                         f"{where}: {name} has a database (default {spec.default_database}) but compose does not set DATABASE_NAME")
        if "DATABASE_NAME" in env:
            owners.setdefault(env["DATABASE_NAME"], []).append(name)
            report.check(env["DATABASE_NAME"] in created,
                         f"{where}: {name} uses database {env['DATABASE_NAME']}, which infra/docker/postgres-init does not create")
        if env.get("DATABASE_URL"):
            host, _ = url_port(env["DATABASE_URL"])
            if report.check(host in services, f"{where}: {name} DATABASE_URL names host {host}, not a compose service"):
                # Migrations run at start: the server must be up (and its init scripts done) first.
                report.check(host in (service.get("depends_on") or {}),
                             f"{where}: {name} uses the database server {host} but does not depend on it (service_healthy)")
    for database, names in owners.items():
        report.check(len(names) == 1, f"{where}: {', '.join(names)} share database {database}; each service owns its own")

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
                        report.check(int(port) == probes_by_host.get(host),
                                     f"infra/prometheus/prometheus.docker.yml: scrapes {target}, {host} serves metrics on {probes_by_host.get(host)}")
                    if job.get("metrics_path", "/metrics") != "/metrics":
                        report.problems.append(f"infra/prometheus/prometheus.docker.yml: job {job.get('job_name')} scrapes {job.get('metrics_path')}, services serve /metrics")
        for name in SERVICES:
            report.check(name in scraped, f"infra/prometheus/prometheus.docker.yml: {name} is not scraped")


def check_compose_test(root: Path, compose: dict, report: Report) -> None:
    where = "infra/docker-compose.test.yml"
    services = compose.get("services") or {}
    report.check(set(services) == {"postgres", "kafka"}, f"{where}: expected only postgres and kafka, found {sorted(services)}")
    testing = (root / "shared/testkit/src/lib.rs").read_text()
    db_default = re.search(r'"TEST_DATABASE_URL",\s*"([^"]+)"', testing)
    kafka_default = re.search(r'"TEST_KAFKA_BROKERS",\s*"([^"]+)"', testing)
    if not report.check(bool(db_default and kafka_default), "shared/testkit/src/lib.rs: TEST_DATABASE_URL/TEST_KAFKA_BROKERS defaults not found"):
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


def secret_values(doc: dict) -> dict[str, str | None]:
    """A Secret's keys and decoded values (None where a value cannot be decoded)."""
    result: dict[str, str | None] = {}
    for key, encoded in (doc.get("data") or {}).items():
        try:
            result[key] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            result[key] = None
    result.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return result


def is_production(value: str | None) -> bool:
    """Whether APP_ENV makes a service production (Environment::from_str); unknown counts as production."""
    if value is None:
        return True
    value = value.strip().lower()
    return value in ("production", "prod")


DEVELOPMENT_DEFAULTS: dict[str, str] = {}  # filled by main() from the sources


def production_problem(var: str, value: str) -> str | None:
    """Why the service would refuse `value` for `var` in production, or None."""
    if not value.strip():
        return "is empty (the service treats it as unset and refuses the development default)"
    if value == DEVELOPMENT_DEFAULTS.get(var):
        return "is the development default"
    if var in ("SERVICE_API_KEY", "JWT_SECRET") and len(value.encode()) < MIN_SECRET_BYTES:
        return f"has {len(value.encode())} bytes, production needs at least {MIN_SECRET_BYTES}"
    if var == "ADMIN_EMAIL":
        address = value.strip()
        local, _, domain = address.rpartition("@")
        if not (local and "." in domain and len(address) <= 255 and not re.search(r"\s", address)):
            return f"{address!r} is not a valid e-mail address with a dot in its domain"
    if var == "ADMIN_PASSWORD":
        if not 8 <= len(value) <= 128:
            return "must be 8 to 128 characters"
        if not (any(c.isupper() for c in value) and any(c.islower() for c in value)
                and any(c in "0123456789" for c in value) and any(not c.isalnum() for c in value)):
            return "needs an upper-case letter, a lower-case letter, a digit and a special character"
    return None


def check_production_secrets(where: str, name: str, spec: ServiceSpec, values: dict[str, str | None],
                             report: Report) -> None:
    """With APP_ENV=production the service refuses to start without its secrets."""
    if not is_production(values.get("APP_ENV", "development")):
        return
    for var in spec.production_secrets:
        if not report.check(var in values, f"{where}: {name} runs with APP_ENV=production but is not given {var}, "
                                           "so it refuses to start"):
            continue
        value = values[var]
        if value is not None:  # known from the rendered files
            problem = production_problem(var, value)
            report.check(problem is None, f"{where}: {name} runs with APP_ENV=production and its {var} {problem}, "
                                          "so it refuses to start")


def check_same_service_key(where: str, keys: dict[str, object], report: Report) -> None:
    """The gateway calls the backends with its SERVICE_API_KEY: all of them must hold the same one."""
    report.check(len({str(k) for k in keys.values()}) <= 1,
                 f"{where}: SERVICE_API_KEY differs between {', '.join(sorted(keys))}, "
                 "so the backends refuse the gateway's calls")


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
    service_keys: dict[str, object] = {}
    database_owners: dict[str, list[str]] = {}
    url_keys: dict[str, list[str]] = {}
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
        # The environment: explicit env plus every key of the envFrom sources. `values`
        # holds what each variable resolves to where the rendered files say (None: not known
        # here, e.g. a fieldRef); `env` marks references as <secret>/<ref>.
        env: dict[str, str] = {}
        values: dict[str, str | None] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref = source["configMapRef"]["name"]
                if report.check(ref in config_maps, f"{where}: {name} envFrom ConfigMap {ref}, which is not rendered"):
                    data = {prefix + k: str(v) for k, v in (config_maps[ref].get("data") or {}).items()}
                    env.update(data)
                    values.update(data)
            if "secretRef" in source:
                ref = source["secretRef"]["name"]
                if report.check(ref in secrets, f"{where}: {name} envFrom Secret {ref}, which is not rendered"):
                    data = secret_values(secrets[ref])
                    env.update({prefix + k: "<secret>" for k in data})
                    values.update({prefix + k: v for k, v in data.items()})
        for item in container.get("env") or []:
            value = item.get("value")
            resolved: str | None = "" if value is None else str(value)
            value_from = item.get("valueFrom") or {}
            ref = value_from.get("secretKeyRef") or value_from.get("configMapKeyRef")
            if ref:
                is_secret = "secretKeyRef" in value_from
                doc = (secrets if is_secret else config_maps).get(ref["name"])
                data = secret_values(doc) if is_secret and doc else {k: str(v) for k, v in ((doc or {}).get("data") or {}).items()}
                # A Secret created in the cluster (Kafka passwords) is not rendered: value unknown here.
                report.check((is_secret and ref["name"] in EXTERNAL_SECRETS) or (doc is not None and ref["key"] in data),
                             f"{where}: {name} {item['name']} refers to {ref['name']}/{ref['key']}, which does not exist")
                value = "<ref>"
                resolved = data.get(ref["key"])
            elif value_from:
                value, resolved = "<ref>", None  # fieldRef, resourceFieldRef: known only in the pod
            env[item["name"]] = "" if value is None else str(value)
            values[item["name"]] = resolved
        for var in sorted(env):
            report.check(var in spec.reads, f"{where}: {name} sets {var}, which {name} never reads")
        for var in MUST_SET:
            if var in spec.reads:
                report.check(bool(env.get(var)), f"{where}: {name} reads {var} but the manifests do not set it")
        check_production_secrets(where, name, spec, values, report)
        check_kafka_clients(where, name, spec, values, report)
        # Its own database, and its server's URL (which may hold a password) from a Secret.
        if spec.default_database:
            report.check(bool(values.get("DATABASE_NAME")),
                         f"{where}: {name} has a database (default {spec.default_database}) but is not given DATABASE_NAME")
        if values.get("DATABASE_NAME"):
            database_owners.setdefault(values["DATABASE_NAME"], []).append(name)
        for item in container.get("env") or []:
            if item["name"] == "DATABASE_URL":
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if report.check(ref is not None, f"{where}: {name} DATABASE_URL is not taken from a Secret (secretKeyRef)"):
                    url_keys.setdefault(f"{ref.get('name')}/{ref.get('key')}", []).append(name)
        if "SERVICE_API_KEY" in spec.reads:
            # The value where the rendered files know it, else where it comes from.
            key_ref = next(((i.get("valueFrom") or {}).get("secretKeyRef") for i in container.get("env") or []
                            if i["name"] == "SERVICE_API_KEY"), None)
            known = values.get("SERVICE_API_KEY", "")
            if known is None:
                service_keys[name] = f"{(key_ref or {}).get('name')}/{(key_ref or {}).get('key')}"
            else:
                service_keys[name] = known if known.strip() else "<development default>"
        # Static membership: an id per pod, and only where there is a consumer group.
        if "KAFKA_GROUP_INSTANCE_ID" in env:
            report.check(spec.consumes, f"{where}: {name} sets KAFKA_GROUP_INSTANCE_ID but has no Kafka consumer")
            fields = [((i.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
                      for i in container.get("env") or [] if i["name"] == "KAFKA_GROUP_INSTANCE_ID"]
            report.check(all(field == "metadata.name" for field in fields),
                         f"{where}: {name} KAFKA_GROUP_INSTANCE_ID must be the pod name (fieldRef metadata.name); "
                         "one value shared by all replicas makes them fence each other out of the group")

        port = spec.port(env)
        probe_port = spec.probe_port(env)
        listening[name] = port
        spec.check_admin_reachable(where, env, report)
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        for p in {port, probe_port}:
            report.check(p in named.values(), f"{where}: {name} listens on {p}, containerPorts are {sorted(named.values())}")

        def resolve(p: object) -> object:
            return named.get(p, p) if isinstance(p, str) else p

        for probe, expected in (("livenessProbe", LIVE), ("readinessProbe", READY), ("startupProbe", LIVE)):
            if probe == "startupProbe" and probe not in container:
                continue
            path, asked = probe_path_port(container.get(probe))
            report.check(path == expected, f"{where}: {name} {probe} asks {path}, expected {expected}")
            report.check(resolve(asked) == probe_port,
                         f"{where}: {name} {probe} asks port {asked}, its health answers on {probe_port}")

        annotations = pod["metadata"].get("annotations") or {}
        report.check(annotations.get("prometheus.io/scrape") == "true", f"{where}: {name} lacks prometheus.io/scrape: \"true\"")
        report.check(annotations.get("prometheus.io/port") == str(probe_port),
                     f"{where}: {name} prometheus.io/port is {annotations.get('prometheus.io/port')}, its metrics are on {probe_port}")
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

    check_same_service_key(where, service_keys, report)
    for database, names in database_owners.items():
        report.check(len(names) == 1, f"{where}: {', '.join(names)} share database {database}; each service owns its own")
    for key, names in url_keys.items():
        report.check(len(names) == 1, f"{where}: {', '.join(names)} share the DATABASE_URL Secret key {key}; "
                                      "give each service a key of its own")

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

    # URLs between services name the Services and their ports.
    for name, deployment in deployments.items():
        for item in deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []:
            if item["name"] in ("USER_SERVICE_URL", "ORDER_SERVICE_URL") and item.get("value"):
                host, port = url_port(item["value"])
                target = host.split(".")[0] if host else None
                report.check(target in services and port == listening.get(target),
                             f"{where}: {name} {item['name']}={item['value']} but {target} listens on {listening.get(target)}")


# ---------------------------------------------------------------- Kafka principals and ACLs


def kafka_clients(specs: dict[str, ServiceSpec]) -> list[str]:
    """The services that speak Kafka (they read KAFKA_BROKERS): one principal each."""
    return [name for name, spec in specs.items() if "KAFKA_BROKERS" in spec.reads]


# `allow <principal> <Operation,...> <topic|group|cluster> [name...]`, after joining `\`-continued lines.
ALLOW_LINE = re.compile(r"^\s*allow\s+(\S+)\s+(\S+)\s+(topic|group|cluster)\b(.*)$", re.M)
SCRAM_LINE = re.compile(r"^\s*(?:\[.*\]\s*\|\|\s*)?scram_user\s+([\w.-]+)\s*$", re.M)


def parse_acls(script: str) -> tuple[set[tuple[str, str, str, str]], set[str]]:
    """kafka-acls.sh's table: {(principal, operation, resource type, name)}, and the
    principals it gives SCRAM credentials."""
    joined = script.replace("\\\n", " ")
    acls = set()
    for principal, operations, kind, names in ALLOW_LINE.findall(joined):
        for operation in operations.split(","):
            for name in names.split() or ["kafka-cluster"]:
                acls.add((principal, operation, kind, name))
    return acls, set(SCRAM_LINE.findall(joined))


def consumer_group(root: Path, name: str) -> str | None:
    """The group a service consumes in (`const CONSUMER_GROUP: &str = "…"` in its sources)."""
    for path in sorted((root / name / "src").rglob("*.rs")):
        match = re.search(r'\bconst\s+CONSUMER_GROUP\s*:\s*&str\s*=\s*"([^"]+)"', path.read_text())
        if match:
            return match.group(1)
    return None


def check_acls(root: Path, specs: dict[str, ServiceSpec], texts: dict[str, str], report: Report) -> None:
    """Write on a base topic for its owner and the replaying operator only; each consumer
    may read its groups; every principal in the table can sign in."""
    where = ACL_SCRIPT
    acls, users = parse_acls(texts[ACL_SCRIPT])
    if not report.check(bool(acls), f"{where}: no `allow` lines found: parser out of date?"):
        return
    events = (root / "shared/contracts/src/events.rs").read_text()
    topics = set(re.findall(r"""const\s+TOPIC\s*:\s*&'static\s+str\s*=\s*"([^"]+)\"""", events))
    report.check(topics == set(TOPIC_OWNERS),
                 f"consistency.py: TOPIC_OWNERS has {sorted(TOPIC_OWNERS)}, shared/contracts/src/events.rs "
                 f"{sorted(topics)}: give every topic its owner")
    for topic, owner in TOPIC_OWNERS.items():
        writers = {principal for principal, operation, kind, name in acls
                   if (operation, kind, name) == ("Write", "topic", topic)}
        report.check(writers == {owner, REPLAYER},
                     f"{where}: Write on {topic} goes to {sorted(writers)}; only its owner {owner} "
                     f"and {REPLAYER} (replay) may write it")
    for principal, operation, kind, name in sorted(acls):
        report.check("*" not in name, f"{where}: {operation} on {kind} {name!r} for {principal}: name each resource")
        report.check(principal in users, f"{where}: ACLs for {principal}, who gets no SCRAM credentials (scram_user)")
    keeper = "{}.topic-keeper" in (root / "shared/eventing/src/kafka/loss.rs").read_text()
    for name in kafka_clients(specs):
        report.check(name in users, f"{where}: {name} speaks Kafka but gets no SCRAM credentials (scram_user {name})")
        groups = [consumer_group(root, name)] if specs[name].consumes else []
        if keeper:  # the topic keeper commits its certificates in <client id>.topic-keeper
            groups.append(f"{name}.topic-keeper")
        for group in groups:
            report.check(group is not None and (name, "Read", "group", group) in acls,
                         f"{where}: {name} uses consumer group {group} but may not Read it")


JAAS_PAIR = re.compile(r'\b(username|password|user_[\w-]+)="([^"]*)"')


def listener_map(value: str, separator: str) -> dict[str, str]:
    """'A://h:1,B://h:2' -> {'A': 'h:1', …} (separator '://'), 'A:X,B:Y' -> {'A': 'X', …} (':')."""
    return dict(item.split(separator, 1) for item in value.split(",") if separator in item)


def check_compose_kafka(compose: dict, specs: dict[str, ServiceSpec], texts: dict[str, str], report: Report) -> None:
    """Principals, passwords, kafka-init and the broker's listeners in compose."""
    where = "infra/docker-compose.yml"
    services = compose.get("services") or {}
    _, users = parse_acls(texts[ACL_SCRIPT])
    clients = kafka_clients(specs)
    for name in clients:
        env = compose_env(services.get(name) or {})
        report.check(env.get("KAFKA_SASL_USERNAME") == name,
                     f"{where}: {name} signs in to Kafka as {env.get('KAFKA_SASL_USERNAME')!r}, not as itself")
        report.check(env.get("KAFKA_SASL_PASSWORD") == password_variable(name),
                     f"{where}: {name} KAFKA_SASL_PASSWORD is {env.get('KAFKA_SASL_PASSWORD')!r}, "
                     f"expected its own ${{{password_variable(name)}}}")

    # Passwords: each container holds those of the principals it signs in as, no other
    # (rendered, a password is the name of its variable); kafka-init holds them all.
    signing_in: list[str] = []
    for cname, service in services.items():
        if cname == KAFKA_INIT:
            continue
        env = compose_env(service)
        own = set()
        if env.get("KAFKA_SASL_USERNAME"):
            own.add(password_variable(env["KAFKA_SASL_USERNAME"]))
            signing_in.append(cname)
        for var, value in env.items():
            pairs = JAAS_PAIR.findall(value)
            user = next((v for k, v in pairs if k == "username"), None)
            for key, password in pairs:
                principal = user if key == "password" else key[len("user_"):]
                if key == "username" or principal is None:
                    continue
                own.add(password)
                report.check(password == password_variable(principal),
                             f"{where}: {cname} {var} gives {principal} the password {password!r}, "
                             f"expected ${{{password_variable(principal)}}}")
            if user and cname != "kafka":
                signing_in.append(cname)
                report.check(user in users, f"{where}: {cname} signs in as {user}, who gets no SCRAM credentials "
                                            f"in {ACL_SCRIPT}")
        held = {t for value in env.values() for t in re.findall(r"\bKAFKA_PASSWORD_\w+", value)}
        report.check(held <= own, f"{where}: {cname} is given {sorted(held - own)}, another principal's password")

    # kafka-init: every principal's password and the admin's, the ACL script, and every
    # Kafka client waits for it (the condition: see the depends_on check).
    init = services.get(KAFKA_INIT)
    if report.check(init is not None, f"{where}: no {KAFKA_INIT} service to create the Kafka users and ACLs"):
        env = compose_env(init)
        for principal in sorted(users | {"admin"}):
            report.check(env.get(password_variable(principal)) == password_variable(principal),
                         f"{where}: {KAFKA_INIT} lacks {password_variable(principal)} ({principal})")
        sources = [str(v.get("source", "")) if isinstance(v, dict) else str(v).split(":")[0]
                   for v in init.get("volumes") or []]
        report.check(any(src.endswith(ACL_SCRIPT.removeprefix("infra/")) for src in sources),
                     f"{where}: {KAFKA_INIT} does not mount {ACL_SCRIPT}")
        for cname in sorted(set(signing_in)):
            report.check(KAFKA_INIT in (services[cname].get("depends_on") or {}),
                         f"{where}: {cname} signs in to Kafka but does not wait for {KAFKA_INIT} (its user and ACLs)")

    # The broker: SASL on every listener, ACLs deciding, admin the super user; each client
    # speaks its listener's protocol and one of its mechanisms, which has a JAAS entry.
    kafka = compose_env(services.get("kafka") or {})
    protocols = listener_map(kafka.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", ""), ":")
    advertised = {address: listener for listener, address in
                  listener_map(kafka.get("KAFKA_ADVERTISED_LISTENERS", ""), "://").items()}
    for listener, protocol in protocols.items():
        report.check(protocol.startswith("SASL_"), f"{where}: kafka listener {listener} is {protocol}, without authentication")
    report.check(kafka.get("KAFKA_AUTHORIZER_CLASS_NAME") == "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                 f"{where}: kafka has no StandardAuthorizer: ACLs are not enforced")
    report.check(kafka.get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND") == "false",
                 f"{where}: kafka must set KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND to false")
    report.check("User:admin" in kafka.get("KAFKA_SUPER_USERS", "").split(";"), f"{where}: admin is not a super user")

    def speaks(cname: str, brokers: str, protocol: str | None, mechanism: str | None) -> None:
        listener = advertised.get(brokers.split(",")[0])
        if not report.check(listener is not None, f"{where}: {cname} uses {brokers}, no advertised listener"):
            return
        report.check(protocol == protocols.get(listener),
                     f"{where}: {cname} speaks {protocol} to listener {listener}, which is {protocols.get(listener)}")
        enabled = kafka.get(f"KAFKA_LISTENER_NAME_{listener}_SASL_ENABLED_MECHANISMS",
                            kafka.get("KAFKA_SASL_ENABLED_MECHANISMS", "GSSAPI")).split(",")
        report.check(mechanism in enabled, f"{where}: {cname} uses {mechanism}; listener {listener} enables {enabled}")
        jaas = f"KAFKA_LISTENER_NAME_{listener}_{str(mechanism).replace('-', '___')}_SASL_JAAS_CONFIG"
        report.check(jaas in kafka, f"{where}: kafka has no {jaas} for {cname}'s {mechanism}")

    for cname in clients:
        env = compose_env(services.get(cname) or {})
        if env.get("KAFKA_BROKERS"):  # the defaults of KafkaSecurity::from_env
            default = "SASL_PLAINTEXT" if env.get("KAFKA_SASL_USERNAME") else "PLAINTEXT"
            speaks(cname, env["KAFKA_BROKERS"], env.get("KAFKA_SECURITY_PROTOCOL", default),
                   env.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"))
    if init is not None:
        env = compose_env(init)
        speaks(KAFKA_INIT, env.get("KAFKA_BROKERS", ""), env.get("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
               env.get("KAFKA_ADMIN_SASL_MECHANISM", "SCRAM-SHA-512"))
    ui = compose_env(services.get("kafka-ui") or {})
    if ui.get("KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"):
        speaks("kafka-ui", ui["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"], ui.get("KAFKA_CLUSTERS_0_PROPERTIES_SECURITY_PROTOCOL"),
               ui.get("KAFKA_CLUSTERS_0_PROPERTIES_SASL_MECHANISM"))


def check_k8s_kafka(label: str, docs: list[dict], specs: dict[str, ServiceSpec], compose: dict,
                    texts: dict[str, str], report: Report) -> None:
    """Each service's principal and password key; the Secrets stay out of the tree; the ACL Job."""
    where = label
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for secret in by_kind.get("Secret", {}):
        for external in EXTERNAL_SECRETS:
            report.check(not (secret == external or secret.startswith(external + "-")),
                         f"{where}: renders Secret {secret}: Kafka passwords must not come from the tree; "
                         f"{external} is created in the cluster")
    for name in kafka_clients(specs):
        deployment = by_kind.get("Deployment", {}).get(name)
        if deployment is None:
            continue
        env = {i["name"]: i for i in deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []}
        report.check((env.get("KAFKA_SASL_USERNAME") or {}).get("value") == name,
                     f"{where}: {name} KAFKA_SASL_USERNAME is not its own name {name}")
        password = env.get("KAFKA_SASL_PASSWORD") or {}
        ref = (password.get("valueFrom") or {}).get("secretKeyRef") or {}
        report.check("value" not in password and ref.get("name") == KAFKA_USERS_SECRET
                     and ref.get("key") == password_variable(name),
                     f"{where}: {name} KAFKA_SASL_PASSWORD must be secretKeyRef {KAFKA_USERS_SECRET}/"
                     f"{password_variable(name)}, is {password.get('value', ref)!r}")
    for job in by_kind.get("Job", {}).values():
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        if "kafka-acls.sh" not in " ".join(container.get("command") or []):
            continue
        compose_image = ((compose.get("services") or {}).get("kafka") or {}).get("image")
        report.check(container.get("image") == compose_image,
                     f"{where}: Job {job['metadata']['name']} runs {container.get('image')}, compose's broker {compose_image}")
        refs = {(s.get("secretRef") or {}).get("name") for s in container.get("envFrom") or []}
        for external in EXTERNAL_SECRETS:
            report.check(external in refs, f"{where}: Job {job['metadata']['name']} does not read Secret {external}")
        scripts = [by_kind.get("ConfigMap", {}).get((v.get("configMap") or {}).get("name"), {})
                   for v in pod.get("volumes") or [] if "configMap" in v]
        report.check(any((cm.get("data") or {}).get("kafka-acls.sh") == texts[ACL_SCRIPT] for cm in scripts),
                     f"{where}: Job {job['metadata']['name']} does not mount {ACL_SCRIPT} as it is")


# A Kafka password setting (YAML `KEY: value`, env file or kustomize literal `KEY=value`),
# a JAAS password="…" / user_<name>="…", a SCRAM [password=…]: each must be a reference.
PASSWORD_SETTING = re.compile(r'^\s*-?\s*"?(KAFKA_\w*PASSWORD\w*)"?\s*(?::\s+|=)(.*)$')
JAAS_PASSWORD = re.compile(r'\b(?:password|user_[\w-]+)=\\?"([^"\\]*)')
SCRAM_PASSWORD = re.compile(r"\[(?:[^\]]*,)?password=([^\],]*)")


def read_deploy_texts(root: Path) -> dict[str, str]:
    texts = {path: (root / path).read_text() for path in DEPLOY_FILES}
    for directory in DEPLOY_DIRS:
        for path in sorted((root / directory).rglob("*")):
            if path.is_file():
                texts[str(path.relative_to(root))] = path.read_text()
    return texts


def check_no_kafka_password_literals(texts: dict[str, str], report: Report) -> None:
    for path, text in texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            values = [m.group(2) for m in [PASSWORD_SETTING.match(line)] if m]
            values += JAAS_PASSWORD.findall(line) + SCRAM_PASSWORD.findall(line)
            for value in values:
                value = value.strip().strip("'\"")
                report.check(value == "" or value.startswith("$"),
                             f"{path}:{number}: a Kafka password written into the file; "
                             "take it from a variable or a Secret the tree does not hold")


# ---------------------------------------------------------------- native scripts, bench


def read_native(root: Path) -> dict[str, str]:
    return {path: (root / path).read_text() for path in NATIVE_FILES}


def check_native(specs: dict[str, ServiceSpec], native: dict[str, str], report: Report) -> None:
    """Every service's database is known to the native scripts and the bench."""
    common = native["infra/scripts/common.sh"]
    defaults = {db: var for var, db in re.findall(r'^(\w+_DATABASE_NAME)="\$\{\1:-([^}]*)\}"', common, re.M)}

    def loop_vars(path: str) -> set[str]:
        """The variables a `for db in …` loop of the file goes through."""
        names: set[str] = set()
        for line in re.findall(r"^\s*for db in (.*); do", native[path], re.M):
            names |= set(re.findall(r"\$\{?(\w+)", line))
        return names

    created, dropped = loop_vars("infra/scripts/databases.sh"), loop_vars("infra/scripts/with-platform.sh")
    harness = re.search(r"^DATABASES = \{([^}]*)\}", native["bench/harness.py"], re.M)
    for name, spec in specs.items():
        if not spec.default_database:
            continue
        report.check(bool(harness and f'"{name}"' in harness.group(1)),
                     f"bench/harness.py: {name} is not in DATABASES, so the bench gives it no database of its own")
        var = defaults.get(spec.default_database)
        if not report.check(var is not None, f"infra/scripts/common.sh: no <X>_DATABASE_NAME defaulting to "
                                             f"{spec.default_database}, {name}'s database"):
            continue
        report.check(var in created, f"infra/scripts/databases.sh: does not create ${var} ({name}'s database)")
        report.check(bool(re.search(rf'^\s*{name}\)\s*database=\(DATABASE_NAME="\${var}"\)',
                                    native["infra/scripts/services.sh"], re.M)),
                     f"infra/scripts/services.sh: does not start {name} with DATABASE_NAME=\"${var}\"")
        report.check(bool(re.search(rf"\b{var}=test_\w+", native["infra/scripts/with-platform.sh"])),
                     f"infra/scripts/with-platform.sh: does not give {name} a test database of its own ({var}=test_…)")
        report.check(var in dropped, f"infra/scripts/with-platform.sh: does not drop ${var} ({name}'s test database)")
        report.check(f'"{name}": "{var}"' in native["infra/watch/watch.py"],
                     f"infra/watch/watch.py: does not pass {var} to {name} as DATABASE_NAME")


# ---------------------------------------------------------------- main


def run_all(root: Path, specs, compose, compose_test, k8s, native, texts) -> Report:
    report = Report()
    check_compose(root, compose, specs, report)
    check_compose_kafka(compose, specs, texts, report)
    check_compose_test(root, compose_test, report)
    for label, docs in k8s:
        check_k8s(label, docs, specs, report)
        check_k8s_kafka(label, docs, specs, compose, texts, report)
    check_acls(root, specs, texts, report)
    check_no_kafka_password_literals(texts, report)
    check_native(specs, native, report)
    return report


def self_test(root: Path, specs, compose, compose_test, k8s, native, texts) -> tuple[int, list[str]]:
    """Breaks copies of the inputs on purpose: each break must be reported."""
    failures = []
    count = 0

    def expect(what: str, mutate) -> None:
        nonlocal count
        count += 1
        c, t, k = copy.deepcopy(compose), copy.deepcopy(compose_test), copy.deepcopy(k8s)
        mutate(c, t, k)
        if not run_all(root, specs, c, t, k, native, texts).problems:
            failures.append(f"self-test: {what} went unnoticed")

    def broken_copy(files: dict, path: str, old: str, new: str, times: int) -> dict | None:
        """A copy of `files` with `old` replaced by `new` in `path` (`times` times, -1 for
        all); None, and a failure, when the text no longer holds `old`."""
        nonlocal count
        count += 1
        if old not in files[path]:
            failures.append(f"self-test: {path} no longer holds {old!r}; update the self-test")
            return None
        return dict(files, **{path: files[path].replace(old, new, times)})

    def expect_native(what: str, path: str, old: str, new: str) -> None:
        """`old` replaced by `new` in a copy of one of NATIVE_FILES must be reported."""
        broken = broken_copy(native, path, old, new, -1)
        if broken is not None and not run_all(root, specs, compose, compose_test, k8s, broken, texts).problems:
            failures.append(f"self-test: {what} went unnoticed")

    def expect_text(what: str, path: str, old: str, new: str) -> None:
        """`old` replaced by `new` in a copy of a deployment file's text must be reported."""
        broken = broken_copy(texts, path, old, new, 1)
        if broken is not None and not run_all(root, specs, compose, compose_test, k8s, native, broken).problems:
            failures.append(f"self-test: {what} went unnoticed")

    def k8s_container(k, name):
        for doc in k[0][1]:
            if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
                return doc["spec"]["template"]["spec"]["containers"][0]
        raise KeyError(name)

    expect("a variable payment-service never reads, in compose",
           lambda c, t, k: c["services"]["payment-service"]["environment"].__setitem__("JWT_SECRET", "x" * 40))
    expect("payment-service on order-service's database, in compose",
           lambda c, t, k: c["services"]["payment-service"]["environment"].__setitem__(
               "DATABASE_NAME", c["services"]["order-service"]["environment"]["DATABASE_NAME"]))
    expect("order-service not waiting for its database server, in compose",
           lambda c, t, k: c["services"]["order-service"]["depends_on"].pop("postgres"))
    expect("order-service on a database the init scripts do not create, in compose",
           lambda c, t, k: c["services"]["order-service"]["environment"].__setitem__("DATABASE_NAME", "nosuchdb"))
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
    def k8s_secret(k, prefix):
        for doc in k[0][1]:
            if doc["kind"] == "Secret" and doc["metadata"]["name"].startswith(prefix):
                return doc
        raise KeyError(prefix)

    def drop_env(container, var):
        container["env"] = [i for i in container.get("env") or [] if i["name"] != var]

    def set_secret(k, var, value):
        k8s_secret(k, "platform-auth").setdefault("data", {})[var] = base64.b64encode(value.encode()).decode()

    # The base renders APP_ENV=production: the production rules apply to it.
    expect("order-service without SERVICE_API_KEY under APP_ENV=production, in Kubernetes",
           lambda c, t, k: drop_env(k8s_container(k, "order-service"), "SERVICE_API_KEY"))
    expect("user-service without ADMIN_EMAIL under APP_ENV=production, in Kubernetes",
           lambda c, t, k: drop_env(k8s_container(k, "user-service"), "ADMIN_EMAIL"))
    expect("a JWT_SECRET of 31 bytes under APP_ENV=production, in Kubernetes",
           lambda c, t, k: set_secret(k, "JWT_SECRET", "x" * 31))
    expect("the development ADMIN_PASSWORD under APP_ENV=production, in Kubernetes",
           lambda c, t, k: set_secret(k, "ADMIN_PASSWORD", DEVELOPMENT_DEFAULTS["ADMIN_PASSWORD"]))
    expect("an ADMIN_PASSWORD without a special character under APP_ENV=production, in Kubernetes",
           lambda c, t, k: set_secret(k, "ADMIN_PASSWORD", "NoSpecial1234"))
    expect("SERVICE_API_KEY given to payment-service, which never reads it, in Kubernetes",
           lambda c, t, k: k8s_container(k, "payment-service").setdefault("env", []).append(
               {"name": "SERVICE_API_KEY", "valueFrom": {"secretKeyRef": {
                   "name": k8s_secret(k, "platform-auth")["metadata"]["name"], "key": "SERVICE_API_KEY"}}}))
    expect("one literal KAFKA_GROUP_INSTANCE_ID for every order-service pod, in Kubernetes",
           lambda c, t, k: (drop_env(k8s_container(k, "order-service"), "KAFKA_GROUP_INSTANCE_ID"),
                            k8s_container(k, "order-service")["env"].append(
                                {"name": "KAFKA_GROUP_INSTANCE_ID", "value": "order-service-0"})))
    expect("KAFKA_GROUP_INSTANCE_ID on user-service, which has no consumer, in Kubernetes",
           lambda c, t, k: k8s_container(k, "user-service").setdefault("env", []).append(
               {"name": "KAFKA_GROUP_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}))
    expect("order-service without KAFKA_GROUP_INSTANCE_ID, in compose",
           lambda c, t, k: c["services"]["order-service"]["environment"].pop(GROUP_INSTANCE_ID))
    expect("order- and payment-service with the same KAFKA_GROUP_INSTANCE_ID, in compose",
           lambda c, t, k: c["services"]["payment-service"]["environment"].__setitem__(
               GROUP_INSTANCE_ID, c["services"]["order-service"]["environment"][GROUP_INSTANCE_ID]))
    expect("payment-service without KAFKA_GROUP_INSTANCE_ID, in Kubernetes",
           lambda c, t, k: drop_env(k8s_container(k, "payment-service"), GROUP_INSTANCE_ID))
    expect("a SERVICE_API_KEY on order-service that differs from the gateway's, in compose",
           lambda c, t, k: c["services"]["order-service"]["environment"].__setitem__("SERVICE_API_KEY", "y" * 40))
    expect("APP_ENV=production with the development secrets, in compose",
           lambda c, t, k: c["services"]["api-gateway"]["environment"].__setitem__("APP_ENV", "production"))

    def set_env(container, var, value):
        drop_env(container, var)
        container.setdefault("env", []).append({"name": var, "value": value})

    expect("user- and order-service on one database, in Kubernetes",
           lambda c, t, k: set_env(k8s_container(k, "user-service"), "DATABASE_NAME",
                                   next(i["value"] for i in k8s_container(k, "order-service")["env"]
                                        if i["name"] == "DATABASE_NAME")))
    expect("order-service's DATABASE_URL as a literal value, in Kubernetes",
           lambda c, t, k: set_env(k8s_container(k, "order-service"), "DATABASE_URL", "postgres://u:p@db:5432"))
    expect("order-service without DATABASE_NAME, in Kubernetes",
           lambda c, t, k: drop_env(k8s_container(k, "order-service"), "DATABASE_NAME"))
    expect_native("order-service's database not created by databases.sh", "infra/scripts/databases.sh",
                  '"$ORDER_DATABASE_NAME" ', "")
    expect_native("order-service started without its DATABASE_NAME by services.sh", "infra/scripts/services.sh",
                  '      order-service) database=(DATABASE_NAME="$ORDER_DATABASE_NAME") ;;\n', "")
    expect_native("order-service's test database not dropped by with-platform.sh", "infra/scripts/with-platform.sh",
                  'for db in "$USER_DATABASE_NAME" "$ORDER_DATABASE_NAME"', 'for db in "$USER_DATABASE_NAME"')
    expect_native("order-service without a database of its own in the bench", "bench/harness.py",
                  '"order-service": "orders", ', "")
    expect("a test broker on another port",
           lambda c, t, k: t["services"]["kafka"]["environment"].__setitem__(
               "KAFKA_ADVERTISED_LISTENERS", "EXTERNAL://127.0.0.1:19092"))

    # Kafka principals, passwords and ACLs.
    def compose_env_of(c, name):
        return c["services"][name]["environment"]

    expect("order-service signing in with user-service's password, in compose",
           lambda c, t, k: compose_env_of(c, "order-service").__setitem__(
               "KAFKA_SASL_PASSWORD", password_variable("user-service")))
    expect("payment-service signing in as order-service, in compose",
           lambda c, t, k: compose_env_of(c, "payment-service").__setitem__("KAFKA_SASL_USERNAME", "order-service"))
    expect("Kafka UI given platform-operator's password, in compose",
           lambda c, t, k: compose_env_of(c, "kafka-ui").__setitem__(
               "KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG",
               compose_env_of(c, "kafka-ui")["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"].replace(
                   password_variable("kafka-ui"), password_variable(REPLAYER))))
    expect("user-service not waiting for kafka-init, in compose",
           lambda c, t, k: c["services"]["user-service"]["depends_on"].pop(KAFKA_INIT))
    expect("a PLAINTEXT listener on the broker, in compose",
           lambda c, t, k: compose_env_of(c, "kafka").__setitem__(
               "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
               compose_env_of(c, "kafka")["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace(
                   "EXTERNAL:SASL_PLAINTEXT", "EXTERNAL:PLAINTEXT")))
    expect("order-service's KAFKA_SASL_PASSWORD as a literal value, in Kubernetes",
           lambda c, t, k: set_env(k8s_container(k, "order-service"), "KAFKA_SASL_PASSWORD", "x" * 32))
    expect("order-service reading user-service's password key, in Kubernetes",
           lambda c, t, k: next(i for i in k8s_container(k, "order-service")["env"]
                                if i["name"] == "KAFKA_SASL_PASSWORD")["valueFrom"]["secretKeyRef"].__setitem__(
               "key", password_variable("user-service")))
    expect("a platform-kafka-users Secret generated from the tree, in Kubernetes",
           lambda c, t, k: k[0][1].append({"apiVersion": "v1", "kind": "Secret",
                                            "metadata": {"name": KAFKA_USERS_SECRET + "-abc123"},
                                            "data": {password_variable("user-service"): "eA=="}}))
    expect_text("Write on order.created for user-service, in the ACL table", ACL_SCRIPT,
                "allow user-service Write topic user.created user.deleted",
                "allow user-service Write topic user.created user.deleted order.created")
    expect_text("no Read on its consumer group for payment-service, in the ACL table", ACL_SCRIPT,
                "allow payment-service Read group payment-service-group payment-service.topic-keeper",
                "allow payment-service Read group payment-service.topic-keeper")
    expect_text("a Kafka password literal in compose", "infra/docker-compose.yml",
                "KAFKA_SASL_PASSWORD: ${KAFKA_PASSWORD_USER_SERVICE:?", "KAFKA_SASL_PASSWORD: hunter2hunter2 #${")
    expect_text("a Kafka password literal in a JAAS line of compose", "infra/docker-compose.yml",
                'username="kafka-ui" password="$', 'username="kafka-ui" password="hunter2hunter2$')
    expect_text("a Kafka password literal in the local overlay", "infra/k8s/overlays/local/kustomization.yaml",
                "      - KAFKA_REPLICATION_FACTOR=1\n", "      - KAFKA_REPLICATION_FACTOR=1\n      - KAFKA_PASSWORD_ADMIN=hunter2\n")
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
    for var in (GROUP_INSTANCE_ID,):
        if not any(var in spec.reads for spec in specs.values()):
            raise SystemExit(f"no service reads {var} any more: renamed? Update consistency.py")
    for var, (file, const) in DEVELOPMENT_VALUES.items():
        DEVELOPMENT_DEFAULTS[var] = rust_str_const(root, file, const)
    for spec in specs.values():
        print(f"  {spec.name:<16} port {spec.default_port}, reads {len(spec.reads)} variables "
              f"({', '.join(spec.structs)} + its own)")
    compose = yaml.safe_load(args.compose.read_text())
    compose_test = yaml.safe_load(args.compose_test.read_text())
    k8s = []
    for item in args.k8s:
        label, _, path = item.partition("=")
        k8s.append((label, [d for d in yaml.safe_load_all(Path(path).read_text()) if d]))

    native = read_native(root)
    texts = read_deploy_texts(root)
    report = run_all(root, specs, compose, compose_test, k8s, native, texts)
    if report.problems:
        print(f"consistency: {len(report.problems)} problem(s) in {report.checks} checks:", file=sys.stderr)
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    breaks, failures = self_test(root, specs, compose, compose_test, k8s, native, texts)
    if failures:
        for failure in failures:
            print(failure, file=sys.stderr)
        return 1
    print(f"  consistency: {report.checks} checks passed; all {breaks} deliberate breaks detected (self-test)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
