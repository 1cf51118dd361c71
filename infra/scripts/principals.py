"""Who a process started by the scripts is to the broker: each service signs in as its
own principal, with the password secrets.sh keeps for it on this machine; the gateway
speaks no Kafka and gets no credentials. Used by `make watch` and the benchmarks, as
services.sh does for `make up`.
"""

from __future__ import annotations

import os
from pathlib import Path

KAFKA_SERVICES = ("user-service", "order-service", "payment-service")


def secrets_file() -> Path:
    state = os.environ.get("PLATFORM_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "rust-event-platform")
    return Path(state) / "secrets.env"


def kafka_password(principal: str) -> str:
    """The principal's password (secrets.sh writes it on first use of any script)."""
    variable = "KAFKA_PASSWORD_" + principal.replace("-", "_").upper()
    for line in secrets_file().read_text().splitlines():
        name, _, value = line.partition("=")
        if name == variable:
            return value
    raise KeyError(f"{variable} is not in {secrets_file()} (any infra script adds it)")


def with_principal(env: dict[str, str], service: str) -> dict[str, str]:
    """`env` with the service's Kafka credentials, or with none for a service without Kafka."""
    env = {k: v for k, v in env.items() if k not in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")}
    if service in KAFKA_SERVICES:
        env.update(KAFKA_SASL_USERNAME=service, KAFKA_SASL_PASSWORD=kafka_password(service))
    return env


def operator_client(brokers: str) -> dict[str, str]:
    """The start of a librdkafka (confluent-kafka) configuration for the scripts' own
    clients: the brokers, signed in as the operator when common.sh exported credentials."""
    config = {"bootstrap.servers": brokers}
    username, password = os.environ.get("KAFKA_SASL_USERNAME"), os.environ.get("KAFKA_SASL_PASSWORD")
    if username and password:
        config.update({"security.protocol": "SASL_PLAINTEXT", "sasl.username": username, "sasl.password": password,
                       "sasl.mechanisms": os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")})
    return config
