//! A cluster (the in-memory API with the CRDs), an emulator, and operators started as `run` starts
//! them, each with its own health and metrics endpoint on a free loopback port.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use healthlake_operator::apiserver::ApiServer;
use healthlake_operator::emulator::{self, EmulatorConfig, RunningEmulator};
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use healthlake_operator::run::{Operator, RunArgs, RunError};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The namespace the test objects live in.
pub const NAMESPACE: &str = "clinical";

/// The lease the test operators compete for, in `default`.
pub const LEASE: &str = "healthlake-operator";

/// How long a test waits for something to happen before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The in-memory API and the emulator.
pub struct Cluster {
    _apiserver: ApiServer,
    pub client: Client,
    pub emulator: RunningEmulator,
}

impl Cluster {
    /// A cluster with the CRDs installed (or not) and the test namespace.
    pub async fn start(with_crds: bool) -> Self {
        let apiserver = ApiServer::new();
        if with_crds {
            apiserver
                .load_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
                .expect("the committed crds load");
        }
        let client = apiserver.client();
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(NAMESPACE.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace created");
        let emulator = emulator::start(EmulatorConfig::for_tests(), "127.0.0.1:0")
            .await
            .expect("emulator starts");
        Self {
            _apiserver: apiserver,
            client,
            emulator,
        }
    }

    /// Starts an operator with `run`'s flags plus `flags`.
    pub async fn operator(&self, flags: &[&str]) -> RunningOperator {
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            run: RunArgs,
        }
        let mut arguments = vec![
            "healthlake-operator",
            "--namespaces",
            NAMESPACE,
            "--region",
            self.emulator.region(),
            "--poll-soon-seconds",
            "0.05",
            "--poll-long-seconds",
            "0.1",
            "--lease-duration-seconds",
            "2",
            "--metrics-address",
            "127.0.0.1:0",
        ];
        arguments.extend_from_slice(flags);
        let args = Command::try_parse_from(arguments).expect("flags parse").run;
        let sdk = SdkHealthLake::with_static_credentials(
            SdkSettings::new(self.emulator.region())
                .with_endpoint_url(self.emulator.endpoint_url()),
        );
        let operator = Operator::bind(
            args,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            self.client.clone(),
            sdk,
        )
        .await
        .expect("the operator binds its endpoint");
        let address = operator.address();
        let identity = operator.identity().to_owned();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(operator.run(async {
            let _ = stopped.await;
        }));
        RunningOperator {
            address,
            identity,
            stop: Some(stop),
            task,
        }
    }

    /// Who holds the test lease now.
    pub async fn lease_holder(&self) -> Option<String> {
        Api::<Lease>::namespaced(self.client.clone(), "default")
            .get_opt(LEASE)
            .await
            .expect("lease read")
            .and_then(|lease| lease.spec)
            .and_then(|spec| spec.holder_identity)
    }
}

/// An operator running in a task of the test.
pub struct RunningOperator {
    pub address: SocketAddr,
    pub identity: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RunError>>,
}

impl RunningOperator {
    /// Sends the shutdown signal (what SIGTERM does) and waits until `run` returns.
    pub async fn shut_down(mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.finished().await
    }

    /// Waits until `run` returns on its own.
    pub async fn finished(self) -> Result<(), RunError> {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the operator stops in time")
            .expect("the operator task does not panic")
    }

    /// `GET path` on the operator's endpoint: (status code, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        get(self.address, path).await
    }

    /// The value of the sample `series` (name and labels, as exposed) in `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        text.lines().find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
    }
}

/// A plain HTTP/1.1 GET, as a kubelet probe or Prometheus sends it.
pub async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the endpoint accepts connections");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits until `check` holds, failing with `what` after a generous timeout.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let outcome = tokio::time::timeout(PATIENCE, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(outcome.is_ok(), "timed out waiting until {what}");
}
