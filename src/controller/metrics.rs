//! Prometheus metrics: reconciles, HealthLake calls, the rate limiter, objects by condition,
//! leadership and build information. Every name starts with `healthlake_operator_`.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::api::FHIRDatastore;

/// Labels of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `FHIRDatastore`, `FHIRImportJob` or `FHIRExportJob`.
    pub kind: String,
    /// `ok` or `error`.
    pub outcome: String,
}

/// Labels of a HealthLake error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The object kind.
    pub kind: String,
    /// The error class: `Throttled`, `Terminal`, `WaitingForQuota`, ...
    pub class: String,
}

/// Labels of a call that reached AWS.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The HealthLake operation, in AWS's spelling: `DescribeFHIRDatastore`, ...
    pub operation: String,
    /// `ok`, or the error class: `Throttled`, `NotFound`, `Conflict`, `Retryable`, `Terminal`.
    pub outcome: String,
}

/// Labels of one HealthLake operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The HealthLake operation, in AWS's spelling.
    pub operation: String,
}

/// Labels of the objects gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// The object kind.
    pub kind: String,
    /// [`summary`] of the object's conditions.
    pub condition: String,
}

/// Labels of the build information.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version.
    pub version: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Reconciles last from milliseconds (no AWS call) to seconds (calls waiting for quota).
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// AWS calls and limiter waits: milliseconds to tens of seconds.
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

/// The kinds whose objects the `objects` gauge counts: their conditions, if any.
pub trait HasConditions {
    /// The kstatus conditions of `.status`, empty before the first status write.
    fn conditions(&self) -> &[Condition];
}

impl HasConditions for FHIRDatastore {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map_or(&[], |status| status.conditions.as_slice())
    }
}

// The job kinds get theirs from `JobKind` (controller/mod.rs).

/// The one word an object's conditions come down to, for the `objects` gauge: `Stalled`,
/// `Ready` or `Reconciling` (the first of them that is `True`), else `Unknown` (no status yet).
pub fn summary(conditions: &[Condition]) -> &'static str {
    let is_true = |kind: &str| {
        conditions
            .iter()
            .any(|condition| condition.type_ == kind && condition.status == "True")
    };
    ["Stalled", "Ready", "Reconciling"]
        .into_iter()
        .find(|kind| is_true(kind))
        .unwrap_or("Unknown")
}

/// Every value of [`summary`], so that the gauge shows zeros instead of missing series.
const SUMMARIES: [&str; 4] = ["Ready", "Reconciling", "Stalled", "Unknown"];

/// Counts a cache's objects by [`summary`], at scrape time.
type ObjectCounter = Box<dyn Fn() -> Vec<&'static str> + Send + Sync>;

/// The caches the `objects` gauge is counted from.
#[derive(Default)]
struct ObjectSources(Mutex<Vec<(&'static str, ObjectCounter)>>);

impl std::fmt::Debug for ObjectSources {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ObjectSources")
    }
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// `reconciles_total`: reconciles, by kind and outcome.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `reconcile_duration_seconds`: how long reconciles took, by kind and outcome.
    pub reconcile_duration: Histograms<ReconcileLabels>,
    /// `healthlake_errors_total`: failed HealthLake calls as the reconciles saw them, by kind and
    /// error class (`WaitingForQuota` included).
    pub healthlake_errors: Family<ErrorLabels, Counter>,
    /// `aws_calls_total`: calls that reached AWS, by operation and outcome.
    pub aws_calls: Family<CallLabels, Counter>,
    /// `aws_call_duration_seconds`: their latency, by operation.
    pub aws_call_duration: Histograms<OperationLabels>,
    /// `rate_limit_wait_seconds`: time a call waited for client-side budget before it reached
    /// AWS or gave up, by operation.
    pub rate_limit_wait: Histograms<OperationLabels>,
    /// `rate_limit_deferred_total`: calls put off to a later reconcile for lack of budget.
    pub rate_limit_deferred: Family<OperationLabels, Counter>,
    /// `objects`: objects in the operator's caches, by kind and condition.
    pub objects: Family<ObjectLabels, Gauge>,
    /// `is_leader`: 1 while this replica holds the lease (or runs without leader election).
    pub is_leader: Gauge,
    object_sources: ObjectSources,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            healthlake_errors: Family::default(),
            aws_calls: Family::default(),
            aws_call_duration: Family::new_with_constructor(call_histogram),
            rate_limit_wait: Family::new_with_constructor(call_histogram),
            rate_limit_deferred: Family::default(),
            objects: Family::default(),
            is_leader: Gauge::default(),
            object_sources: ObjectSources::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric in `registry` under the `healthlake_operator` prefix, with the
    /// build information.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("healthlake_operator");
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome",
            self.reconciles.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "How long reconciles took, by kind and outcome",
            Unit::Seconds,
            self.reconcile_duration.clone(),
        );
        registry.register(
            "healthlake_errors",
            "Failed HealthLake calls by kind and error class",
            self.healthlake_errors.clone(),
        );
        registry.register(
            "aws_calls",
            "HealthLake calls that reached AWS, by operation and outcome (ok or the error class, Throttled included)",
            self.aws_calls.clone(),
        );
        registry.register_with_unit(
            "aws_call_duration",
            "Latency of HealthLake calls that reached AWS, by operation",
            Unit::Seconds,
            self.aws_call_duration.clone(),
        );
        registry.register_with_unit(
            "rate_limit_wait",
            "Time a HealthLake call waited for client-side rate-limit budget, by operation",
            Unit::Seconds,
            self.rate_limit_wait.clone(),
        );
        registry.register(
            "rate_limit_deferred",
            "HealthLake calls put off to a later reconcile for lack of rate-limit budget, by operation",
            self.rate_limit_deferred.clone(),
        );
        registry.register(
            "objects",
            "Objects in the operator's caches by kind and condition (Ready, Reconciling, Stalled, Unknown)",
            self.objects.clone(),
        );
        registry.register(
            "is_leader",
            "1 while this replica holds the leader-election lease, else 0",
            self.is_leader.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            }),
        );
    }

    /// Counts one reconcile.
    pub fn reconciled(&self, kind: &str, ok: bool) {
        self.reconciles
            .get_or_create(&reconcile_labels(kind, ok))
            .inc();
    }

    /// Counts one reconcile and records how long it took.
    pub fn reconciled_in(&self, kind: &str, ok: bool, elapsed: Duration) {
        let labels = reconcile_labels(kind, ok);
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one failed HealthLake call.
    pub fn healthlake_error(&self, kind: &str, class: &str) {
        self.healthlake_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
                class: class.to_owned(),
            })
            .inc();
    }

    /// Records one call that reached AWS: `outcome` is `ok` or the error class.
    pub fn aws_call(&self, operation: &str, outcome: &str, elapsed: Duration) {
        self.aws_calls
            .get_or_create(&CallLabels {
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.aws_call_duration
            .get_or_create(&operation_labels(operation))
            .observe(elapsed.as_secs_f64());
    }

    /// Records how long a call waited for rate-limit budget; `deferred` when it gave up.
    pub fn rate_limit_waited(&self, operation: &str, waited: Duration, deferred: bool) {
        let labels = operation_labels(operation);
        self.rate_limit_wait
            .get_or_create(&labels)
            .observe(waited.as_secs_f64());
        if deferred {
            self.rate_limit_deferred.get_or_create(&labels).inc();
        }
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.is_leader.set(i64::from(leading));
    }

    /// Counts `store`'s objects of `kind` in the `objects` gauge at every scrape. A kind watched
    /// in several namespaces adds one store per namespace.
    pub fn count_objects<K>(&self, kind: &'static str, store: Store<K>)
    where
        K: HasConditions + kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let counter: ObjectCounter = Box::new(move || {
            store
                .state()
                .iter()
                .map(|object| summary(object.conditions()))
                .collect()
        });
        self.object_sources
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((kind, counter));
    }

    /// Recounts the `objects` gauge from the caches; the endpoint calls it before each scrape.
    pub fn refresh_objects(&self) {
        let sources = self
            .object_sources
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut counts: std::collections::BTreeMap<(&str, &str), i64> = sources
            .iter()
            .flat_map(|(kind, _)| SUMMARIES.map(|summary| ((*kind, summary), 0)))
            .collect();
        for (kind, count) in sources.iter() {
            for summary in count() {
                *counts.entry((kind, summary)).or_default() += 1;
            }
        }
        for ((kind, condition), count) in counts {
            self.objects
                .get_or_create(&ObjectLabels {
                    kind: kind.to_owned(),
                    condition: condition.to_owned(),
                })
                .set(count);
        }
    }
}

fn reconcile_labels(kind: &str, ok: bool) -> ReconcileLabels {
    ReconcileLabels {
        kind: kind.to_owned(),
        outcome: if ok { "ok" } else { "error" }.to_owned(),
    }
}

fn operation_labels(operation: &str) -> OperationLabels {
    OperationLabels {
        operation: operation.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: "Test".to_owned(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn an_object_is_summed_up_by_its_first_true_condition() {
        for (conditions, expected) in [
            (vec![], "Unknown"),
            (vec![condition("Ready", "True")], "Ready"),
            (
                vec![
                    condition("Ready", "False"),
                    condition("Reconciling", "True"),
                ],
                "Reconciling",
            ),
            (
                vec![condition("Ready", "False"), condition("Stalled", "True")],
                "Stalled",
            ),
        ] {
            assert_eq!(summary(&conditions), expected, "{conditions:?}");
        }
    }

    #[test]
    fn the_exposition_names_every_metric_with_its_prefix_and_unit() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.reconciled_in("FHIRDatastore", true, Duration::from_millis(30));
        metrics.aws_call(
            "DescribeFHIRDatastore",
            "Throttled",
            Duration::from_millis(40),
        );
        metrics.rate_limit_waited("CreateFHIRDatastore", Duration::from_secs(2), true);
        metrics.set_leader(true);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            r#"healthlake_operator_reconciles_total{kind="FHIRDatastore",outcome="ok"} 1"#,
            r#"healthlake_operator_reconcile_duration_seconds_count{kind="FHIRDatastore",outcome="ok"} 1"#,
            r#"healthlake_operator_aws_calls_total{operation="DescribeFHIRDatastore",outcome="Throttled"} 1"#,
            r#"healthlake_operator_aws_call_duration_seconds_count{operation="DescribeFHIRDatastore"} 1"#,
            r#"healthlake_operator_rate_limit_wait_seconds_sum{operation="CreateFHIRDatastore"} 2.0"#,
            r#"healthlake_operator_rate_limit_deferred_total{operation="CreateFHIRDatastore"} 1"#,
            "healthlake_operator_is_leader 1",
            r#"healthlake_operator_build_info{version=""#,
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
