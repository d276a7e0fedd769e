use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::api::{DatastoreStatus, FhirVersion, JobStatus};
use crate::healthlake::S3Output;
use crate::healthlake::limiter::{ManualClock, Quota};

/// Records which operations reached it and answers each with `answer`.
#[derive(Default)]
struct RecordingHealthLake {
    calls: Mutex<Vec<&'static str>>,
    throttle: bool,
}

impl RecordingHealthLake {
    fn calls(&self) -> Vec<&'static str> {
        self.calls
            .lock()
            .map(|calls| calls.clone())
            .unwrap_or_default()
    }

    fn answer<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        value: T,
    ) -> BoxFuture<'a, Result<T>> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(operation);
        }
        let result = if self.throttle {
            Err(HealthLakeError::Throttled {
                message: "rate exceeded".into(),
            })
        } else {
            Ok(value)
        };
        Box::pin(async move { result })
    }
}

fn summary() -> DatastoreSummary {
    DatastoreSummary {
        id: "ds1".into(),
        arn: "arn".into(),
        endpoint: "https://endpoint".into(),
        status: DatastoreStatus::Creating,
    }
}

fn job() -> Job {
    Job {
        job_id: "job1".into(),
        datastore_id: "ds1".into(),
        job_name: None,
        status: JobStatus::Submitted,
        submit_time: None,
        end_time: None,
        message: None,
        progress: None,
    }
}

fn started() -> StartedJob {
    StartedJob {
        job_id: "job1".into(),
        status: JobStatus::Submitted,
        datastore_id: None,
    }
}

impl HealthLake for RecordingHealthLake {
    fn create_datastore<'a>(
        &'a self,
        _: &'a str,
        _: &'a CreateDatastore,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        self.answer("create", summary())
    }
    fn describe_datastore<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Datastore>> {
        self.answer(
            "describe",
            Datastore {
                id: "ds1".into(),
                arn: "arn".into(),
                endpoint: "https://endpoint".into(),
                name: None,
                status: DatastoreStatus::Active,
                type_version: "R4".into(),
                created_at: None,
                error_cause: None,
                encryption: None,
                preload: None,
                identity_provider: None,
            },
        )
    }
    fn list_datastores<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Datastore>>> {
        self.answer("list", Vec::new())
    }
    fn delete_datastore<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        self.answer("delete", summary())
    }
    fn list_tags<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        self.answer("list-tags", BTreeMap::new())
    }
    fn tag_resource<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        self.answer("tag", ())
    }
    fn untag_resource<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        self.answer("untag", ())
    }
    fn start_import_job<'a>(
        &'a self,
        _: &'a str,
        _: &'a StartImportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        self.answer("start-import", started())
    }
    fn describe_import_job<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        self.answer("describe-import", job())
    }
    fn start_export_job<'a>(
        &'a self,
        _: &'a str,
        _: &'a StartExportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        self.answer("start-export", started())
    }
    fn describe_export_job<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        self.answer("describe-export", job())
    }
}

fn limited(inner: RecordingHealthLake) -> (RateLimited<RecordingHealthLake>, ManualClock) {
    let clock = ManualClock::new();
    let config = RateLimitConfig {
        read: Quota::per_second(1),
        safety_margin: 0.0,
        ..RateLimitConfig::default()
    };
    let limiter = Arc::new(RateLimiter::new(config).unwrap_or_else(|error| panic!("{error}")));
    (
        RateLimited::with_limiter(inner, limiter, Arc::new(clock.clone())),
        clock,
    )
}

fn import(client_token: &str) -> StartImportJob {
    StartImportJob {
        client_token: client_token.into(),
        datastore_id: "ds1".into(),
        job_name: "nightly".into(),
        input_s3_uri: "s3://in/".into(),
        output: S3Output {
            s3_uri: "s3://out/".into(),
            kms_key_id: "key".into(),
        },
        data_access_role_arn: "arn:aws:iam::123456789012:role/r".into(),
        validation_level: None,
    }
}

fn export(client_token: &str) -> StartExportJob {
    StartExportJob {
        client_token: client_token.into(),
        datastore_id: "ds1".into(),
        job_name: "weekly".into(),
        output: S3Output {
            s3_uri: "s3://out/".into(),
            kms_key_id: "key".into(),
        },
        data_access_role_arn: "arn:aws:iam::123456789012:role/r".into(),
    }
}

fn waiting<T: fmt::Debug>(result: Result<T>) -> Duration {
    match result {
        Err(HealthLakeError::WaitingForQuota { retry_after }) => retry_after,
        other => panic!("expected WaitingForQuota, got {other:?}"),
    }
}

#[tokio::test]
async fn calls_beyond_the_budget_never_reach_the_port() {
    let (healthlake, clock) = limited(RecordingHealthLake::default());
    let region = "us-east-1";

    assert!(
        healthlake
            .start_import_job(region, &import("uid-1"))
            .await
            .is_ok()
    );
    // Imports and exports share the job-start budget of one a minute.
    let wait = waiting(healthlake.start_export_job(region, &export("uid-2")).await);
    assert_eq!(wait, Duration::from_secs(60));
    // Reads and other regions have budgets of their own.
    assert!(
        healthlake
            .describe_import_job(region, "ds1", "job1")
            .await
            .is_ok()
    );
    assert!(
        healthlake
            .start_import_job("eu-west-1", &import("uid-3"))
            .await
            .is_ok()
    );
    assert_eq!(
        healthlake.inner().calls(),
        ["start-import", "describe-import", "start-import"]
    );

    clock.advance(wait);
    assert!(
        healthlake
            .start_export_job(region, &export("uid-2"))
            .await
            .is_ok()
    );
    assert_eq!(healthlake.inner().calls().len(), 4);
}

#[tokio::test]
async fn every_operation_spends_the_budget_of_its_class() {
    let (healthlake, _clock) = limited(RecordingHealthLake::default());
    let region = "us-east-1";
    let tags = BTreeMap::new();
    let create = CreateDatastore {
        client_token: "uid".into(),
        name: "patients".into(),
        type_version: FhirVersion::R4,
        encryption: None,
        preload: None,
        identity_provider: None,
        tags: BTreeMap::new(),
    };
    // The clock stands still: each class admits one call, then makes callers wait.
    let outcomes = vec![
        (
            "create",
            healthlake.create_datastore(region, &create).await.is_ok(),
        ),
        (
            "delete",
            healthlake.delete_datastore(region, "ds1").await.is_ok(),
        ),
        (
            "describe",
            healthlake.describe_datastore(region, "ds1").await.is_ok(),
        ),
        (
            "list",
            healthlake.list_datastores(region, None).await.is_ok(),
        ),
        (
            "list-tags",
            healthlake.list_tags(region, "arn").await.is_ok(),
        ),
        (
            "tag",
            healthlake.tag_resource(region, "arn", &tags).await.is_ok(),
        ),
        (
            "untag",
            healthlake.untag_resource(region, "arn", &[]).await.is_ok(),
        ),
        (
            "describe-export",
            healthlake
                .describe_export_job(region, "d", "j")
                .await
                .is_ok(),
        ),
        (
            "start-export",
            healthlake
                .start_export_job(region, &export("u"))
                .await
                .is_ok(),
        ),
        (
            "start-import",
            healthlake
                .start_import_job(region, &import("v"))
                .await
                .is_ok(),
        ),
    ];
    let expected = [
        ("create", true),
        ("delete", false),
        ("describe", true),
        ("list", false),
        ("list-tags", false),
        ("tag", false),
        ("untag", false),
        ("describe-export", false),
        ("start-export", true),
        ("start-import", false),
    ];
    assert_eq!(outcomes, expected);
    assert_eq!(
        healthlake.inner().calls(),
        ["create", "describe", "start-export"]
    );
}

#[tokio::test]
async fn throttling_by_aws_slows_the_bucket_down() {
    let (healthlake, clock) = limited(RecordingHealthLake {
        throttle: true,
        ..RecordingHealthLake::default()
    });
    let result = healthlake.describe_datastore("us-east-1", "ds1").await;
    assert!(matches!(result, Err(HealthLakeError::Throttled { .. })));
    clock.advance(Duration::from_secs(1));
    // Without the throttle the budget would be back after one second.
    let wait = waiting(healthlake.describe_datastore("us-east-1", "ds2").await);
    assert_eq!(wait, Duration::from_secs(1));
    assert_eq!(healthlake.inner().calls(), ["describe"]);
}

#[tokio::test]
async fn two_reads_in_a_row_both_get_through_by_waiting_inside_the_call() {
    // Two reads, 50 ms apart at most, on the real clock: what one datastore reconcile needs.
    let config = RateLimitConfig {
        read: Quota::per_second(20),
        safety_margin: 0.0,
        ..RateLimitConfig::default()
    };
    let fresh =
        || Arc::new(RateLimiter::new(config.clone()).unwrap_or_else(|error| panic!("{error}")));
    let healthlake = RateLimited::with_limiter(
        RecordingHealthLake::default(),
        fresh(),
        Arc::new(SystemClock),
    )
    .with_inline_wait(Duration::from_secs(1));
    assert!(
        healthlake
            .describe_datastore("us-east-1", "ds1")
            .await
            .is_ok()
    );
    assert!(healthlake.list_tags("us-east-1", "arn").await.is_ok());
    assert_eq!(healthlake.inner().calls(), ["describe", "list-tags"]);

    // Without the inline wait the second read is refused: the livelock this prevents.
    let impatient = RateLimited::with_limiter(
        RecordingHealthLake::default(),
        fresh(),
        Arc::new(SystemClock),
    );
    assert!(
        impatient
            .describe_datastore("us-east-1", "ds1")
            .await
            .is_ok()
    );
    let refused = impatient.list_tags("us-east-1", "arn").await;
    assert!(
        matches!(refused, Err(HealthLakeError::WaitingForQuota { .. })),
        "{refused:?}"
    );
}
