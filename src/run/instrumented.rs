//! [`Measured`]: the HealthLake port with metrics, on both sides of the rate limiter.
//!
//! The operator's port is `Measured(limiter) → RateLimited → Measured(aws) → SDK`. The outer one
//! notes when a call starts; the inner one, reached only when the limiter let the call through,
//! records the wait since then and the AWS call's outcome and latency. A call the limiter puts
//! off (`WaitingForQuota`) is recorded by the outer one as deferred, with its wait.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;

use crate::controller::metrics::Metrics;
use crate::healthlake::{
    CreateDatastore, Datastore, DatastoreSummary, HealthLake, HealthLakeError, Job, Result,
    StartExportJob, StartImportJob, StartedJob,
};

tokio::task_local! {
    /// When the call being made entered the limiter.
    static CALL_STARTED: Instant;
}

/// Which side of the rate limiter a [`Measured`] sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// In front of the limiter: notes the start and records deferred calls.
    Limiter,
    /// Behind the limiter, in front of AWS: records waits, outcomes and latency.
    Aws,
}

/// A [`HealthLake`] that records metrics about the calls it passes on to `inner`.
#[derive(Debug)]
pub struct Measured<H> {
    inner: H,
    side: Side,
    metrics: Arc<Metrics>,
}

impl<H: HealthLake> Measured<H> {
    /// Wraps `inner` on `side` of the limiter.
    pub fn new(inner: H, side: Side, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            side,
            metrics,
        }
    }

    fn measured<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        call: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        let metrics = &self.metrics;
        match self.side {
            Side::Limiter => Box::pin(async move {
                let started = Instant::now();
                let result = CALL_STARTED.scope(started, call).await;
                if let Err(HealthLakeError::WaitingForQuota { .. }) = &result {
                    metrics.rate_limit_waited(operation, started.elapsed(), true);
                }
                result
            }),
            Side::Aws => Box::pin(async move {
                let started = Instant::now();
                if let Ok(entered) = CALL_STARTED.try_with(|entered| *entered) {
                    metrics.rate_limit_waited(
                        operation,
                        started.saturating_duration_since(entered),
                        false,
                    );
                }
                let result = call.await;
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(error) => error.class(),
                };
                metrics.aws_call(operation, outcome, started.elapsed());
                result
            }),
        }
    }
}

impl<H: HealthLake> HealthLake for Measured<H> {
    fn create_datastore<'a>(
        &'a self,
        region: &'a str,
        request: &'a CreateDatastore,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        self.measured(
            "CreateFHIRDatastore",
            self.inner.create_datastore(region, request),
        )
    }

    fn describe_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<Datastore>> {
        self.measured(
            "DescribeFHIRDatastore",
            self.inner.describe_datastore(region, datastore_id),
        )
    }

    fn list_datastores<'a>(
        &'a self,
        region: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Datastore>>> {
        self.measured(
            "ListFHIRDatastores",
            self.inner.list_datastores(region, name),
        )
    }

    fn delete_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        self.measured(
            "DeleteFHIRDatastore",
            self.inner.delete_datastore(region, datastore_id),
        )
    }

    fn list_tags<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        self.measured("ListTagsForResource", self.inner.list_tags(region, arn))
    }

    fn tag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        self.measured("TagResource", self.inner.tag_resource(region, arn, tags))
    }

    fn untag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        self.measured(
            "UntagResource",
            self.inner.untag_resource(region, arn, keys),
        )
    }

    fn start_import_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartImportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        self.measured(
            "StartFHIRImportJob",
            self.inner.start_import_job(region, request),
        )
    }

    fn describe_import_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        self.measured(
            "DescribeFHIRImportJob",
            self.inner.describe_import_job(region, datastore_id, job_id),
        )
    }

    fn start_export_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartExportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        self.measured(
            "StartFHIRExportJob",
            self.inner.start_export_job(region, request),
        )
    }

    fn describe_export_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        self.measured(
            "DescribeFHIRExportJob",
            self.inner.describe_export_job(region, datastore_id, job_id),
        )
    }
}
