//! The platform as real processes: a private nisshi broker (its own port and
//! sqlite data) and the services' binaries, each with a database of its own,
//! so a fault test can stop, kill and starve them without touching anything else.
//! Shared by the fault tests and the telemetry test, which use different parts.
//!
//! The broker requires SASL/SCRAM as `make up`'s does: each service signs in as its own
//! principal and the tests' own clients as the operator, with passwords made for this
//! test run.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use testkit::eventually;

/// A free TCP port on loopback (released just before use; fine on a test machine).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Where `cargo build` put the service binaries (next to this test's `deps/`).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first (make chaos does)", path.display());
    path
}

/// A scratch directory for this test's broker data and logs.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(testkit::unique_name("faults"));
    std::fs::create_dir_all(&dir).expect("can create a scratch directory");
    dir
}

/// The broker's principals, as infra/scripts/secrets.sh names them.
const PRINCIPALS: [&str; 4] = ["user-service", "order-service", "payment-service", "platform-operator"];

/// This test run's password for `principal` (its brokers are private to it).
fn password(principal: &str) -> String {
    static RUN: LazyLock<String> = LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string());
    format!("{principal}-{}", *RUN)
}

/// The settings that make a client sign in as `principal`.
pub fn principal_env(principal: &str) -> Vec<(String, String)> {
    vec![
        ("KAFKA_SASL_USERNAME".to_owned(), principal.to_owned()),
        ("KAFKA_SASL_PASSWORD".to_owned(), password(principal)),
    ]
}

/// A client of the tests' own (probes, producers of poison), signed in as the operator.
pub fn operator_config(brokers: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-512");
    for (key, value) in principal_env("platform-operator") {
        config.set(if key == "KAFKA_SASL_USERNAME" { "sasl.username" } else { "sasl.password" }, value);
    }
    config
}

/// A nisshi broker with persistent sqlite storage that can be stopped and started again.
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    storage: String,
    child: Option<Child>,
}

impl Broker {
    pub async fn start(dir: &std::path::Path) -> Self {
        Self::start_on(dir, "sqlite://nisshi.db").await
    }

    /// A broker that runs its storage maintenance (deleting records past their topic's
    /// retention) every `interval` (`1s`) rather than every 10 minutes.
    pub async fn start_with_maintenance(dir: &std::path::Path, interval: &str) -> Self {
        Self::start_on(dir, &format!("sqlite://nisshi.db?maintenance_interval={interval}")).await
    }

    async fn start_on(dir: &std::path::Path, storage: &str) -> Self {
        let mut broker = Self { port: free_port(), dir: dir.join("nisshi"), storage: storage.to_owned(), child: None };
        std::fs::create_dir_all(&broker.dir).expect("broker data directory");
        broker.restart().await;
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// nisshi on its store, listening on `port`, requiring authentication or not.
    fn spawn(&self, port: u16, authentication: bool) -> Child {
        let listener = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("nisshi.log")).unwrap();
        let broker = std::env::var("BROKER_BIN").unwrap_or_else(|_| "/usr/local/bin/nisshi".to_owned());
        Command::new(broker)
            .current_dir(&self.dir) // sqlite paths are relative to the working directory
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", &self.storage])
            // As infra/scripts/broker.sh starts it: a group's first rebalance does not wait.
            .args(["--group-initial-rebalance-delay", "0s"])
            .args(authentication.then_some("--authentication"))
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nisshi is installed (make infra installs it)")
    }

    /// Gives the store every principal's credentials, as infra/scripts/broker.sh does: on a
    /// broker without authentication on a port of its own, stopped afterwards.
    fn enroll_principals(&self) {
        let port = free_port();
        let mut child = self.spawn(port, false);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !port_open(port) {
            assert!(Instant::now() < deadline, "the enrolling broker did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/scripts/kafka_users.py");
        let mut users = Command::new("python3")
            .args([script, "127.0.0.1", &port.to_string(), "upsert-users"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs kafka_users.py");
        let lines: String =
            PRINCIPALS.iter().map(|principal| format!("{principal}={}\n", password(principal))).collect();
        users.stdin.take().expect("piped stdin").write_all(lines.as_bytes()).expect("kafka_users.py reads stdin");
        assert!(users.wait().expect("kafka_users.py ends").success(), "kafka_users.py set the principals' credentials");
        let _ = child.kill();
        let _ = child.wait();
    }

    pub async fn restart(&mut self) {
        tokio::task::block_in_place(|| self.enroll_principals());
        self.child = Some(self.spawn(self.port, true));
        let port = self.port;
        eventually("the broker to listen", Duration::from_secs(20), || async move { port_open(port).then_some(()) })
            .await;
    }

    /// Stops the broker and starts it again on an empty store: every topic, message,
    /// committed offset and group is gone, as after a lost volume.
    pub async fn restart_empty(&mut self) {
        self.stop();
        for entry in std::fs::read_dir(&self.dir).expect("broker data directory").flatten() {
            if entry.file_name().to_string_lossy().starts_with("nisshi.db") {
                std::fs::remove_file(entry.path()).expect("can remove the broker's store");
            }
        }
        self.restart().await;
    }

    /// Whether the broker answers a metadata request (a wedged broker may accept connections
    /// and fail every request).
    pub fn answers(&self) -> bool {
        let Ok(client) = operator_config(&self.address()).create::<rdkafka::consumer::BaseConsumer>() else {
            return false;
        };
        rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(2)).is_ok()
    }

    /// What `make up` does for a broker of its own that stopped answering Kafka requests
    /// (infra/scripts/broker.sh): restarts it on its store. Returns whether it had to.
    pub async fn repair_if_wedged(&mut self) -> bool {
        for _ in 0..3 {
            if tokio::task::block_in_place(|| self.answers()) {
                return false;
            }
        }
        eprintln!("broker on {} accepts connections but fails Kafka requests: restarting it", self.address());
        self.stop();
        self.restart().await;
        true
    }

    /// Stops the broker the hard way, as a crash or a network cut would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One service binary with fixed settings; it can be killed and started again.
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    /// Where `/health/*` and `/metrics` answer: the gateway's admin listener has a port of
    /// its own, the other services use `port`.
    pub probe_port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    client: reqwest::Client,
}

impl Service {
    pub async fn start(name: &'static str, dir: &std::path::Path, env: Vec<(String, String)>) -> Self {
        let service = Self::start_unready(name, dir, env);
        service.wait_ready().await;
        service
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `/health/*` and `/metrics` of this service.
    pub fn probe_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.probe_port)
    }

    pub async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// Starts the process without waiting for it to be ready.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        // Each service signs in as itself; the gateway speaks no Kafka.
        let principal = if self.name == "api-gateway" { Vec::new() } else { principal_env(self.name) };
        let child = Command::new(binary(self.name))
            .env_remove("KAFKA_SASL_USERNAME")
            .env_remove("KAFKA_SASL_PASSWORD")
            // The machine's key (exported by `infra/scripts/common.sh`) is not the one the
            // tests' clients send: every service here uses the development key.
            .env("SERVICE_API_KEY", platform::auth::DEVELOPMENT_API_KEY)
            .envs(principal)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PORT", self.port.to_string())
            .env("ADMIN_PORT", self.probe_port.to_string())
            .env("HOST", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the service binary starts");
        self.child = Some(child);
    }

    /// A service started without waiting for readiness (it may not get ready).
    pub fn start_unready(name: &'static str, dir: &std::path::Path, env: Vec<(String, String)>) -> Self {
        let port = free_port();
        let mut service = Self {
            name,
            port,
            probe_port: if name == "api-gateway" { free_port() } else { port },
            env,
            log: dir.join(format!("{name}.log")),
            child: None,
            client: reqwest::Client::new(),
        };
        service.spawn();
        service
    }

    pub async fn wait_ready(&self) {
        eventually(
            &format!("{} to be ready (log: {})", self.name, self.log.display()),
            Duration::from_secs(60),
            || async {
                let response = self.client.get(self.probe_url("/health/ready")).send().await.ok()?;
                response.status().is_success().then_some(())
            },
        )
        .await;
    }

    /// How the process ended, if it ended by itself (a crash, as a supervisor would see it;
    /// a signal such as SIGSEGV shows here).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Everything the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The readiness answer's status and body.
    pub async fn readiness(&self) -> Option<(u16, String)> {
        let response = self.client.get(self.probe_url("/health/ready")).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    pub async fn ready_status(&self) -> Option<u16> {
        Some(self.client.get(self.probe_url("/health/ready")).send().await.ok()?.status().as_u16())
    }

    /// SIGTERM: the service finishes in-flight work, commits and leaves its consumer group.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process sleeps where it is, its connections open, its positions kept.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a frozen process goes on from where it was.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
        }
    }

    /// SIGKILL: no graceful shutdown, no final commit.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}
