//! The rate limiter in front of the adapter: calls without budget never reach AWS.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use healthlake_operator::emulator::{EmulatorConfig, Operation, Quotas};
use healthlake_operator::healthlake::limiter::{
    ManualClock, RateLimitConfig, RateLimited, RateLimiter,
};
use healthlake_operator::healthlake::sdk::SdkHealthLake;
use healthlake_operator::healthlake::{HealthLake, HealthLakeError};

use crate::support::{REGION, active_datastore, fixture, fixture_with, import_request};

fn limited(healthlake: SdkHealthLake) -> (RateLimited<SdkHealthLake>, ManualClock) {
    let clock = ManualClock::new();
    let limiter = RateLimiter::new(RateLimitConfig::default()).expect("the defaults are valid");
    (
        RateLimited::with_limiter(healthlake, Arc::new(limiter), Arc::new(clock.clone())),
        clock,
    )
}

fn token(index: usize) -> String {
    format!("b0000000-0000-4000-8000-{index:012}")
}

#[tokio::test]
async fn job_starts_beyond_the_budget_never_reach_the_emulator() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "b0000000-0000-4000-8000-999999999999", "budget").await;
    let (healthlake, clock) = limited(fixture.healthlake.clone());

    let mut waits = Vec::new();
    for index in 0..5 {
        let result = healthlake
            .start_import_job(REGION, &import_request(&token(index), &datastore.id, "job"))
            .await;
        match result {
            Ok(_) => waits.push(Duration::ZERO),
            Err(HealthLakeError::WaitingForQuota { retry_after }) => waits.push(retry_after),
            Err(other) => panic!("job {index}: {other}"),
        }
    }
    assert_eq!(waits[0], Duration::ZERO);
    assert!(
        waits[1..]
            .iter()
            .all(|wait| *wait > Duration::from_secs(60)),
        "{waits:?}"
    );
    assert!(
        waits.windows(2).all(|pair| pair[0] < pair[1]),
        "first come, first served: {waits:?}"
    );
    assert_eq!(fixture.calls_of(Operation::StartFhirImportJob), 1);

    // Reads have a budget of their own: a describe goes through at once, a second waits.
    healthlake
        .describe_datastore(REGION, &datastore.id)
        .await
        .expect("a read has budget");
    let second = healthlake
        .describe_datastore(REGION, "0123456789abcdef0123456789abcdef")
        .await;
    assert!(
        matches!(second, Err(HealthLakeError::WaitingForQuota { .. })),
        "{second:?}"
    );

    clock.advance(waits[1]);
    healthlake
        .start_import_job(REGION, &import_request(&token(1), &datastore.id, "job"))
        .await
        .expect("the second job's turn has come");
    let early = healthlake
        .start_import_job(REGION, &import_request(&token(2), &datastore.id, "job"))
        .await;
    assert!(
        matches!(early, Err(HealthLakeError::WaitingForQuota { .. })),
        "{early:?}"
    );
    assert_eq!(fixture.calls_of(Operation::StartFhirImportJob), 2);
}

#[tokio::test]
async fn a_burst_of_job_starts_stays_under_the_quota_aws_enforces() {
    // The emulator enforces HealthLake's published quotas on its own clock, which the test moves
    // in step with the limiter's clock.
    let fixture = fixture_with(
        EmulatorConfig::for_tests().with_quotas(Quotas::Default),
        |settings| settings,
    )
    .await;
    let datastore =
        active_datastore(&fixture, "c0000000-0000-4000-8000-999999999999", "burst").await;
    let (healthlake, clock) = limited(fixture.healthlake.clone());
    // The controllers hold the port as a trait object.
    let healthlake: Arc<dyn HealthLake> = Arc::new(healthlake);

    const JOBS: usize = 12;
    let mut turns: BinaryHeap<Reverse<(Duration, usize)>> = (0..JOBS)
        .map(|index| Reverse((Duration::ZERO, index)))
        .collect();
    let mut now = Duration::ZERO;
    let mut started = Vec::new();
    let mut limiter_calls = 0;
    while let Some(Reverse((at, index))) = turns.pop() {
        limiter_calls += 1;
        assert!(limiter_calls < JOBS * 10, "the burst does not drain");
        if at > now {
            clock.advance(at - now);
            fixture.emulator.advance_clock(at - now);
            now = at;
        }
        let request = import_request(&token(index), &datastore.id, &format!("job-{index}"));
        match healthlake.start_import_job(REGION, &request).await {
            Ok(_) => started.push(index),
            Err(HealthLakeError::WaitingForQuota { retry_after }) => {
                turns.push(Reverse((now + retry_after, index)));
            }
            Err(other) => panic!("job {index} failed: {other}"),
        }
    }

    assert_eq!(
        started,
        (0..JOBS).collect::<Vec<_>>(),
        "all started, in arrival order"
    );
    let counters = fixture.emulator.counters();
    let starts = &counters["StartFHIRImportJob"];
    assert_eq!(starts.calls, JOBS as u64, "one call per job reached AWS");
    assert!(
        starts.errors.is_empty(),
        "AWS throttled nothing: {:?}",
        starts.errors
    );
    let times: Vec<i64> = fixture
        .emulator
        .calls_of(Operation::StartFhirImportJob)
        .iter()
        .map(|call| call.time_millis)
        .collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 60_000,
            "two starts within a minute: {times:?}"
        );
    }
}
