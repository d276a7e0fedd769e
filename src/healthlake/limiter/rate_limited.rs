//! [`RateLimited`]: the port behind the limiter.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{Clock, RateLimitConfig, RateLimitConfigError, RateLimiter, SystemClock};
use crate::healthlake::{
    CreateDatastore, Datastore, DatastoreSummary, HealthLake, HealthLakeError, Job, OperationClass,
    Result, StartExportJob, StartImportJob, StartedJob,
};

/// A [`HealthLake`] that spends rate-limit budget before each call of the one it wraps.
///
/// Regions are bucketed by the string the caller passes; pass the resolved region (a
/// datastore's `spec.region`, else the operator's default), never an empty string, so that calls
/// for the same region share one budget.
///
/// A wait up to [`RateLimited::with_inline_wait`] long is spent inside the call: a reconcile
/// that needs two reads in a row (describe, then list tags) would otherwise give up the second
/// read every time the first spent the budget, and never finish. Longer waits (creates, deletes
/// and job starts at one a minute) come back as [`HealthLakeError::WaitingForQuota`].
#[derive(Clone)]
pub struct RateLimited<H> {
    inner: H,
    limiter: Arc<RateLimiter>,
    clock: Arc<dyn Clock>,
    inline_wait: Duration,
}

/// How long a call may wait for budget inside the call by default: a few read intervals.
pub const DEFAULT_INLINE_WAIT: Duration = Duration::from_secs(2);

/// How many times a call waits inside the call before it reports `WaitingForQuota`.
const INLINE_ATTEMPTS: u32 = 3;

impl<H> fmt::Debug for RateLimited<H> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RateLimited")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<H: HealthLake> RateLimited<H> {
    /// Wraps `inner` with a new limiter on the system clock.
    pub fn new(
        inner: H,
        config: RateLimitConfig,
    ) -> std::result::Result<Self, RateLimitConfigError> {
        Ok(Self::with_limiter(
            inner,
            Arc::new(RateLimiter::new(config)?),
            Arc::new(SystemClock),
        )
        .with_inline_wait(DEFAULT_INLINE_WAIT))
    }

    /// The same wrapper, waiting inside the call when budget comes back within `wait` (zero, the
    /// default of [`RateLimited::with_limiter`], never waits).
    pub fn with_inline_wait(mut self, wait: Duration) -> Self {
        self.inline_wait = wait;
        self
    }

    /// Wraps `inner` with a shared limiter and a clock of the caller's choosing.
    pub fn with_limiter(inner: H, limiter: Arc<RateLimiter>, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            limiter,
            clock,
            inline_wait: Duration::ZERO,
        }
    }

    /// The wrapped port.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// Runs `call` if there is budget, and learns from AWS throttling it anyway.
    fn limited<'a, T: Send + 'a>(
        &'a self,
        region: &'a str,
        class: OperationClass,
        key: String,
        call: impl FnOnce() -> BoxFuture<'a, Result<T>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            let mut attempts = 0;
            loop {
                match self
                    .limiter
                    .try_acquire(region, class, &key, self.clock.now())
                {
                    Ok(()) => break,
                    Err(retry_after)
                        if retry_after <= self.inline_wait && attempts < INLINE_ATTEMPTS =>
                    {
                        attempts += 1;
                        tokio::time::sleep(retry_after).await;
                    }
                    Err(retry_after) => {
                        return Err(HealthLakeError::WaitingForQuota { retry_after });
                    }
                }
            }
            let result = call().await;
            if let Err(HealthLakeError::Throttled { .. }) = &result {
                self.limiter.penalize(region, class, self.clock.now());
            }
            result
        })
    }
}

impl<H: HealthLake> HealthLake for RateLimited<H> {
    fn create_datastore<'a>(
        &'a self,
        region: &'a str,
        request: &'a CreateDatastore,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        self.limited(
            region,
            OperationClass::DatastoreLifecycle,
            format!("create:{}", request.client_token),
            move || self.inner.create_datastore(region, request),
        )
    }

    fn describe_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<Datastore>> {
        self.limited(
            region,
            OperationClass::Read,
            format!("describe:{datastore_id}"),
            move || self.inner.describe_datastore(region, datastore_id),
        )
    }

    fn list_datastores<'a>(
        &'a self,
        region: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Datastore>>> {
        // One budget for the whole listing, however many pages it has: listings by name are
        // one page in practice, and a page-by-page budget would need the port to yield pages.
        self.limited(
            region,
            OperationClass::Read,
            format!("list:{}", name.unwrap_or_default()),
            move || self.inner.list_datastores(region, name),
        )
    }

    fn delete_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        self.limited(
            region,
            OperationClass::DatastoreLifecycle,
            format!("delete:{datastore_id}"),
            move || self.inner.delete_datastore(region, datastore_id),
        )
    }

    fn list_tags<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        self.limited(
            region,
            OperationClass::Read,
            format!("list-tags:{arn}"),
            move || self.inner.list_tags(region, arn),
        )
    }

    fn tag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        self.limited(
            region,
            OperationClass::Read,
            format!("tag:{arn}"),
            move || self.inner.tag_resource(region, arn, tags),
        )
    }

    fn untag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        self.limited(
            region,
            OperationClass::Read,
            format!("untag:{arn}"),
            move || self.inner.untag_resource(region, arn, keys),
        )
    }

    fn start_import_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartImportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        self.limited(
            region,
            OperationClass::JobStart,
            format!("start-import:{}", request.client_token),
            move || self.inner.start_import_job(region, request),
        )
    }

    fn describe_import_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        self.limited(
            region,
            OperationClass::Read,
            format!("describe-import:{datastore_id}/{job_id}"),
            move || self.inner.describe_import_job(region, datastore_id, job_id),
        )
    }

    fn start_export_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartExportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        self.limited(
            region,
            OperationClass::JobStart,
            format!("start-export:{}", request.client_token),
            move || self.inner.start_export_job(region, request),
        )
    }

    fn describe_export_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        self.limited(
            region,
            OperationClass::Read,
            format!("describe-export:{datastore_id}/{job_id}"),
            move || self.inner.describe_export_job(region, datastore_id, job_id),
        )
    }
}

#[cfg(test)]
mod tests;
