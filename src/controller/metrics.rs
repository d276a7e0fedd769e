//! Prometheus metrics: reconciles, HealthLake errors and events, per kind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `FHIRDatastore`, `FHIRImportJob` or `FHIRExportJob`.
    pub kind: String,
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of a HealthLake error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The object kind.
    pub kind: String,
    /// The error class: `Throttled`, `Terminal`, `WaitingForQuota`, ...
    pub class: String,
}

/// The operator's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconciles, by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// HealthLake call failures, by kind and class.
    pub healthlake_errors: Family<ErrorLabels, Counter>,
}

impl Metrics {
    /// Registers every metric in `registry` under the `healthlake_operator` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("healthlake_operator");
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            self.reconciles.clone(),
        );
        registry.register(
            "healthlake_errors",
            "Failed HealthLake calls by kind and error class",
            self.healthlake_errors.clone(),
        );
    }

    /// Counts one reconcile.
    pub fn reconciled(&self, kind: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
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
}
