//! The end-to-end rig: the operator's controllers, the HealthLake emulator over HTTP (through the
//! real aws-sdk-healthlake adapter), and the in-memory Kubernetes API with the CRDs' admission
//! rules. Time is the emulator's controlled clock, shared with the operator; tests advance it
//! instead of sleeping.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use healthlake_operator::apiserver::ApiServer;
use healthlake_operator::controller::metrics::Metrics;
use healthlake_operator::controller::{self, Context, Settings};
use healthlake_operator::emulator::{self, EmulatorConfig, Operation, RunningEmulator};
use healthlake_operator::healthlake::HealthLake;
use healthlake_operator::healthlake::limiter::{
    Quota, RateLimitConfig, RateLimited, RateLimiter, following,
};
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The namespace every test object lives in.
pub const NAMESPACE: &str = "clinical";

/// How long a test waits for the operator to converge before it fails.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// One operator, one emulator, one API server.
pub struct Rig {
    pub apiserver: ApiServer,
    pub client: Client,
    pub emulator: RunningEmulator,
    pub healthlake: Arc<dyn HealthLake>,
    operator: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// Settings with short intervals, so that tests converge in milliseconds of real time.
pub fn fast_settings(region: &str) -> Settings {
    Settings {
        default_region: region.to_owned(),
        allow_datastore_id_refs: false,
        poll_soon: Duration::from_millis(20),
        poll_long: Duration::from_millis(50),
        resync: Duration::from_millis(300),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        concurrency: 8,
        // On the emulator's clock, which the tests advance.
        stalled_retry_base: Duration::from_secs(60),
        stalled_retry_max: Duration::from_secs(600),
        datastore_stuck_after: Duration::from_secs(2 * 3600),
        job_stuck_after: Duration::from_secs(24 * 3600),
    }
}

/// Client-side limits far above anything a test does. The burst matters: the limiter runs on the
/// emulator's frozen clock, where budget only comes back when a test advances it.
pub fn unlimited() -> RateLimitConfig {
    RateLimitConfig {
        datastore_lifecycle: Quota::per_second(10_000).with_burst(1_000_000),
        job_start: Quota::per_second(10_000).with_burst(1_000_000),
        read: Quota::per_second(10_000).with_burst(1_000_000),
        ..RateLimitConfig::default()
    }
}

impl Rig {
    /// A rig with the emulator's test configuration (no quotas) and a limiter that never waits.
    pub async fn start() -> Self {
        Self::start_with(EmulatorConfig::for_tests(), unlimited(), |_| {}).await
    }

    /// A rig with a given emulator configuration, client-side limits, and settings adjusted by
    /// `adjust`.
    pub async fn start_with(
        config: EmulatorConfig,
        limits: RateLimitConfig,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        // Logs only when asked for (RUST_LOG=...), into the test's captured output.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let apiserver = ApiServer::new();
        apiserver
            .load_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
            .expect("the committed crds load");
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
        let emulator = emulator::start(config, "127.0.0.1:0")
            .await
            .expect("emulator starts");
        let sdk_settings =
            SdkSettings::new(emulator.region()).with_endpoint_url(emulator.endpoint_url());
        let sdk = SdkHealthLake::with_static_credentials(sdk_settings);
        // The limiter runs on the emulator's clock too, so that advancing it releases quota.
        let emulator_clock = emulator.emulator().clone();
        let limiter_clock = following(move || {
            jiff::Timestamp::try_from(emulator_clock.now())
                .unwrap_or_else(|_| jiff::Timestamp::now())
        });
        let limiter = Arc::new(RateLimiter::new(limits).expect("valid limits"));
        let healthlake: Arc<dyn HealthLake> = Arc::new(RateLimited::with_limiter(
            sdk,
            limiter,
            Arc::new(limiter_clock),
        ));
        let mut rig = Rig {
            apiserver,
            client,
            emulator,
            healthlake,
            operator: None,
        };
        let mut settings = fast_settings(rig.emulator.region());
        adjust(&mut settings);
        rig.start_operator(settings);
        rig
    }

    /// Starts the controllers with fresh, empty caches and memory.
    pub fn start_operator(&mut self, settings: Settings) {
        let emulator = self.emulator.emulator().clone();
        let clock: controller::Clock = Arc::new(move || {
            jiff::Timestamp::try_from(emulator.now()).unwrap_or_else(|_| jiff::Timestamp::now())
        });
        let context = Context::new(
            self.client.clone(),
            self.healthlake.clone(),
            settings,
            Arc::new(Metrics::default()),
        )
        .with_clock(clock);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            Arc::new(context),
            vec![NAMESPACE.to_owned()],
            async {
                let _ = stopped.await;
            },
        ));
        self.operator = Some((stop, task));
    }

    /// Stops the controllers and waits until they are gone.
    pub async fn stop_operator(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// The API of a kind in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Moves the emulator's clock (and so the operator's) forward.
    pub fn advance(&self, by: Duration) {
        self.emulator.advance_clock(by);
    }

    /// How many times the operator called `operation`.
    pub fn calls(&self, operation: Operation) -> usize {
        self.emulator.calls_of(operation).len()
    }
}

/// Waits until `name` satisfies `done`, failing with `what` and the last state seen after a
/// generous timeout. Polls the API: the operator's pace is set by its short test intervals.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, done: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut last = None;
    let outcome = tokio::time::timeout(CONVERGE_TIMEOUT, async {
        loop {
            if let Ok(Some(object)) = api.get_opt(name).await {
                if done(&object) {
                    return object;
                }
                last = Some(object);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    match outcome {
        Ok(object) => object,
        Err(_) => panic!("timed out waiting for {name} to be {what}; last seen: {last:#?}"),
    }
}

/// Waits until `name` no longer exists.
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let outcome = tokio::time::timeout(CONVERGE_TIMEOUT, async {
        while let Ok(Some(_)) = api.get_opt(name).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "timed out waiting for {name} to be deleted"
    );
}

/// Waits until `check` holds, for outcomes outside Kubernetes (the emulator's state).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let outcome = tokio::time::timeout(CONVERGE_TIMEOUT, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(outcome.is_ok(), "timed out waiting until {what}");
}

/// The status and reason of a condition, or ("absent", "").
pub fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> (String, String) {
    conditions
        .iter()
        .find(|condition| condition.type_ == type_)
        .map(|condition| (condition.status.clone(), condition.reason.clone()))
        .unwrap_or_else(|| ("absent".to_owned(), String::new()))
}

/// True when the condition `type_` has status "True".
pub fn is_true(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> bool {
    condition(conditions, type_).0 == "True"
}

/// The Events (`events.k8s.io/v1`) about the object `kind`/`name` in the test namespace, oldest
/// first.
pub async fn events_about(rig: &Rig, kind: &str, name: &str) -> Vec<Event> {
    rig.api::<Event>()
        .list(&Default::default())
        .await
        .expect("events listed")
        .items
        .into_iter()
        .filter(|event| {
            event.regarding.as_ref().is_some_and(|regarding| {
                regarding.kind.as_deref() == Some(kind) && regarding.name.as_deref() == Some(name)
            })
        })
        .collect()
}

/// The reasons of the Warning (`warning`) or Normal events about `kind`/`name`, oldest first.
pub async fn event_reasons(rig: &Rig, kind: &str, name: &str, warning: bool) -> Vec<String> {
    events_about(rig, kind, name)
        .await
        .into_iter()
        .filter(|event| (event.type_.as_deref() == Some("Warning")) == warning)
        .filter_map(|event| event.reason)
        .collect()
}
