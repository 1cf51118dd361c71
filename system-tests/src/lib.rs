//! Platform-wide tests, kept out of the services so that no service's tests depend on
//! the others: `tests/api` (the four services through the gateway, in one process),
//! `tests/faults` (real processes, brokers of their own, faults injected; `make chaos`)
//! and `tests/telemetry` (the trace tree across the services, at an OTLP receiver).
//! This library is empty on purpose.
