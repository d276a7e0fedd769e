//! The three processes of a benchmark (in-memory Kubernetes API, HealthLake emulator, operator),
//! what /proc says about the operator, and a minimal HTTP/1.1 client for their admin endpoints.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    /// Its process id.
    pub pid: u32,
}

impl Process {
    fn spawn(
        binary: &Path,
        arguments: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("failed to create {}", log.display()))?;
        let stdout = log_file.try_clone()?;
        let mut command = Command::new(binary);
        command
            .args(arguments)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log_file)
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let pid = child.id().context("the process exited at once")?;
        Ok(Self { child, pid })
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .context("failed to kill a benchmark process")
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(listener.local_addr()?)
}

/// Where the logs and the kubeconfig of a benchmark go.
pub struct Workspace {
    /// The operator binary (a release build with the `trial` feature): the in-memory API, the
    /// emulator, and the operator unless `run_binary` says otherwise.
    pub binary: PathBuf,
    /// The binary run as the operator (`healthlake-operator run`): `binary`, or a production
    /// build without the test features, to measure what a cluster runs.
    pub run_binary: PathBuf,
    /// `target/bench`.
    pub directory: PathBuf,
}

/// The in-memory Kubernetes API served by `healthlake-operator sandbox`.
pub struct Sandbox {
    _process: Process,
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
}

impl Sandbox {
    /// Starts it and waits until it answers.
    pub async fn start(workspace: &Workspace, name: &str) -> anyhow::Result<(Self, kube::Client)> {
        let address = free_address()?;
        let kubeconfig = workspace.directory.join(format!("{name}-kubeconfig"));
        let _ = std::fs::remove_file(&kubeconfig);
        let process = Process::spawn(
            &workspace.binary,
            &[
                "sandbox".into(),
                "--listen".into(),
                address.to_string(),
                "--kubeconfig".into(),
                kubeconfig.display().to_string(),
            ],
            &[],
            &workspace.directory.join(format!("{name}-sandbox.log")),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if kubeconfig.exists() {
                let client = client_for(&kubeconfig).await?;
                if client.apiserver_version().await.is_ok() {
                    return Ok((
                        Self {
                            _process: process,
                            kubeconfig,
                        },
                        client,
                    ));
                }
            }
            if Instant::now() > deadline {
                bail!("the sandbox on {address} did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("failed to read {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
    // Thousands of requests at once: the default timeouts would fail the slowest.
    let mut config = config;
    config.read_timeout = Some(Duration::from_secs(300));
    Ok(kube::Client::try_from(config)?)
}

/// The HealthLake emulator served by `healthlake-operator emulator`.
pub struct Emulator {
    _process: Process,
    /// Where it listens.
    pub address: SocketAddr,
}

impl Emulator {
    /// Starts it with `extra` flags (after `--listen`, `--profile fast`) and waits until it
    /// answers.
    pub async fn start(workspace: &Workspace, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_profile(workspace, name, "fast", extra).await
    }

    /// Like [`Emulator::start`], with `--profile profile` (`fast` or `realistic`).
    pub async fn start_with_profile(
        workspace: &Workspace,
        name: &str,
        profile: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let address = free_address()?;
        let mut arguments = vec![
            "emulator".to_owned(),
            "--listen".into(),
            address.to_string(),
            "--profile".into(),
            profile.to_owned(),
        ];
        arguments.extend(extra.iter().map(|flag| (*flag).to_owned()));
        let process = Process::spawn(
            &workspace.binary,
            &arguments,
            &[("RUST_LOG", "warn".to_owned())],
            &workspace.directory.join(format!("{name}-emulator.log")),
        )?;
        let emulator = Self {
            _process: process,
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(emulator.address, "GET", "/_emulator/clock", None)
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("the emulator on {address} did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(emulator)
    }

    /// Calls by operation, from `GET /_emulator/counters`.
    pub async fn counters(&self) -> anyhow::Result<Counters> {
        let body = http_ok(self.address, "GET", "/_emulator/counters", None).await?;
        let value: serde_json::Value = serde_json::from_str(&body)?;
        let mut counters = Counters::default();
        if let Some(operations) = value["counters"].as_object() {
            for (operation, counts) in operations {
                let calls = counts["calls"].as_u64().unwrap_or(0);
                let errors: u64 = counts["errors"]
                    .as_object()
                    .map(|errors| errors.values().filter_map(|count| count.as_u64()).sum())
                    .unwrap_or(0);
                let throttled = counts["errors"]["ThrottlingException"]
                    .as_u64()
                    .unwrap_or(0);
                counters.by_operation.insert(operation.clone(), calls);
                counters.errors += errors;
                counters.throttled += throttled;
            }
        }
        Ok(counters)
    }

    /// Moves the emulator's clock forward.
    pub async fn advance(&self, seconds: u64) -> anyhow::Result<()> {
        let body = format!("{{\"seconds\": {seconds}}}");
        http_ok(
            self.address,
            "POST",
            "/_emulator/clock/advance",
            Some(&body),
        )
        .await?;
        Ok(())
    }

    /// Everything the emulator holds (`GET /_emulator/state`): datastores and jobs by region.
    pub async fn state(&self) -> anyhow::Result<serde_json::Value> {
        let body = http_ok(self.address, "GET", "/_emulator/state", None).await?;
        Ok(serde_json::from_str(&body)?)
    }

    /// The logged calls of one operation (`GET /_emulator/calls?operation=`), oldest first.
    pub async fn calls(&self, operation: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let path = format!("/_emulator/calls?operation={operation}");
        let body = http_ok(self.address, "GET", &path, None).await?;
        let value: serde_json::Value = serde_json::from_str(&body)?;
        Ok(value["calls"].as_array().cloned().unwrap_or_default())
    }

    /// Adds an ACTIVE datastore named `name` as if made outside the operator; answers its id.
    pub async fn seed_datastore(&self, name: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({ "name": name }).to_string();
        let answer = http_ok(self.address, "POST", "/_emulator/datastores", Some(&body)).await?;
        let value: serde_json::Value = serde_json::from_str(&answer)?;
        value["id"]
            .as_str()
            .map(str::to_owned)
            .context("the seeded datastore has no id")
    }

    /// The emulator's clock (epoch milliseconds) and the system time it corresponds to, from
    /// the quickest of a few reads (the midpoint of the request).
    pub async fn clock_reading(&self) -> anyhow::Result<(f64, std::time::SystemTime)> {
        let mut best: Option<(Duration, f64, std::time::SystemTime)> = None;
        for _ in 0..20 {
            let before = std::time::SystemTime::now();
            let body = http_ok(self.address, "GET", "/_emulator/clock", None).await?;
            let after = std::time::SystemTime::now();
            let round_trip = after.duration_since(before).unwrap_or_default();
            let value: serde_json::Value = serde_json::from_str(&body)?;
            let millis = value["now_millis"]
                .as_f64()
                .context("the emulator's clock answer has no now_millis")?;
            if best.is_none_or(|(quickest, _, _)| round_trip < quickest) {
                best = Some((round_trip, millis, before + round_trip / 2));
            }
        }
        best.map(|(_, millis, at)| (millis, at))
            .context("the emulator's clock could not be read")
    }

    /// The endpoint the operator sends HealthLake calls to.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// The emulator's call counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Calls by operation name.
    pub by_operation: std::collections::BTreeMap<String, u64>,
    /// Calls answered with an error.
    pub errors: u64,
    /// Calls answered with `ThrottlingException`.
    pub throttled: u64,
}

impl Counters {
    /// Calls made since `earlier`, by operation (operations without calls left out).
    pub fn since(&self, earlier: &Counters) -> Counters {
        let by_operation = self
            .by_operation
            .iter()
            .map(|(operation, calls)| {
                let before = earlier.by_operation.get(operation).copied().unwrap_or(0);
                (operation.clone(), calls.saturating_sub(before))
            })
            .filter(|(_, calls)| *calls > 0)
            .collect();
        Counters {
            by_operation,
            errors: self.errors.saturating_sub(earlier.errors),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }

    /// Every call.
    pub fn total(&self) -> u64 {
        self.by_operation.values().sum()
    }

    /// Calls of the operations whose names contain `part`.
    pub fn matching(&self, part: &str) -> u64 {
        self.by_operation
            .iter()
            .filter(|(operation, _)| operation.contains(part))
            .map(|(_, calls)| calls)
            .sum()
    }
}

/// The operator, run as `healthlake-operator run` against the sandbox and the emulator.
pub struct Operator {
    process: Process,
    /// Its health and metrics endpoint.
    pub metrics: SocketAddr,
}

/// `run` flags that lift the operator's client-side rate limiter.
pub const LIMITER_LIFTED: [&str; 6] = [
    "--rate-limit-datastore-lifecycle",
    "100000/s,burst=100000",
    "--rate-limit-job-start",
    "100000/s,burst=100000",
    "--rate-limit-read",
    "100000/s,burst=100000",
];

impl Operator {
    /// Starts `run` with `extra` flags and waits until `/readyz` answers 200 (its caches hold
    /// the cluster's objects).
    pub async fn start(
        workspace: &Workspace,
        name: &str,
        sandbox: &Sandbox,
        emulator: &Emulator,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let metrics = free_address()?;
        let mut arguments = vec![
            "run".to_owned(),
            "--endpoint-url".into(),
            emulator.endpoint_url(),
            "--leader-election".into(),
            "false".into(),
            "--metrics-address".into(),
            metrics.to_string(),
        ];
        arguments.extend(extra.iter().map(|flag| (*flag).to_owned()));
        let env = [
            ("KUBECONFIG", sandbox.kubeconfig.display().to_string()),
            ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let process = Process::spawn(
            &workspace.run_binary,
            &arguments,
            &env,
            &workspace.directory.join(format!("{name}-operator.log")),
        )?;
        let operator = Self { process, metrics };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http(metrics, "GET", "/readyz", None).await {
                return Ok(operator);
            }
            if Instant::now() > deadline {
                bail!("the operator did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What /proc says about the operator now.
    pub fn sample(&self) -> anyhow::Result<ProcessSample> {
        ProcessSample::read(self.process.pid)
    }

    /// The sum of `healthlake_operator_reconciles_total` for `kind`.
    pub async fn reconciles(&self, kind: &str) -> anyhow::Result<f64> {
        let text = http_ok(self.metrics, "GET", "/metrics", None).await?;
        let prefix = format!("healthlake_operator_reconciles_total{{kind=\"{kind}\"");
        Ok(text
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Kills it with SIGKILL.
    pub async fn kill(self) -> anyhow::Result<()> {
        self.process.kill().await
    }
}

/// Memory and CPU time of a process, from /proc/<pid>/status and /proc/<pid>/stat.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSample {
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the peak RSS since the process started, in KiB.
    pub rss_peak_kib: u64,
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
}

impl ProcessSample {
    fn read(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("failed to read /proc/{pid}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("failed to read /proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces): state is field 3, utime 14,
        // stime 15, counted from 1.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| -> u64 {
            fields
                .get(index)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        let cpu_ticks = ticks(11) + ticks(12);
        Ok(Self {
            rss_kib: field("VmRSS:"),
            rss_peak_kib: field("VmHWM:"),
            cpu_seconds: cpu_ticks as f64 / clock_ticks_per_second(),
        })
    }
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One HTTP/1.1 request on a fresh connection: the status and the body.
pub async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{method} {path}: the answer has no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{method} {path}: the answer has no status"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

/// Like [`http`], failing on a status other than 200.
pub async fn http_ok(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<String> {
    match http(address, method, path, body).await? {
        (200, body) => Ok(body),
        (status, body) => bail!("{method} {path} answered {status}: {body}"),
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// Admin reads and faults of the emulator beyond the counters, for the quota and fault runs.
impl Emulator {
    /// The emulator's clock now, in epoch milliseconds (`GET /_emulator/clock`).
    pub async fn clock_millis(&self) -> anyhow::Result<i64> {
        let body = http_ok(self.address, "GET", "/_emulator/clock", None).await?;
        let value: serde_json::Value = serde_json::from_str(&body)?;
        value["now_millis"]
            .as_i64()
            .context("the emulator's clock answer has no now_millis")
    }

    /// The call log, oldest first (`GET /_emulator/calls`; the emulator keeps the last 100,000).
    pub async fn all_calls(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let body = http_ok(self.address, "GET", "/_emulator/calls", None).await?;
        let mut value: serde_json::Value = serde_json::from_str(&body)?;
        match value["calls"].take() {
            serde_json::Value::Array(calls) => Ok(calls),
            _ => bail!("the emulator's call log answer has no calls array"),
        }
    }

    /// The raw counters (`GET /_emulator/counters`): calls, successes and errors by type, by
    /// operation.
    pub async fn counters_json(&self) -> anyhow::Result<serde_json::Value> {
        let body = http_ok(self.address, "GET", "/_emulator/counters", None).await?;
        let mut value: serde_json::Value = serde_json::from_str(&body)?;
        Ok(value["counters"].take())
    }

    /// Arms a fault (`POST /_emulator/faults`, the JSON of the emulator's `Fault`).
    pub async fn inject(&self, fault: &serde_json::Value) -> anyhow::Result<()> {
        http_ok(
            self.address,
            "POST",
            "/_emulator/faults",
            Some(&fault.to_string()),
        )
        .await?;
        Ok(())
    }
}
