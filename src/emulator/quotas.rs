//! Per-operation request-rate quotas: a token bucket per operation on the emulator's clock.

use std::collections::BTreeMap;

use super::clock::{EpochMillis, duration_millis};
use super::config::{Quotas, Rate};
use super::operation::Operation;

struct Bucket {
    rate: Rate,
    tokens: f64,
    refilled_at: EpochMillis,
}

/// The buckets of every limited operation.
pub struct QuotaBuckets {
    buckets: BTreeMap<Operation, Bucket>,
}

impl QuotaBuckets {
    /// Full buckets for these quotas.
    pub fn new(quotas: &Quotas, now: EpochMillis) -> Self {
        let buckets = quotas
            .rates()
            .into_iter()
            .map(|(operation, rate)| {
                let bucket = Bucket {
                    rate,
                    tokens: f64::from(rate.requests),
                    refilled_at: now,
                };
                (operation, bucket)
            })
            .collect();
        QuotaBuckets { buckets }
    }

    /// Takes one call's worth of quota; false when the operation is over its rate.
    pub fn try_acquire(&mut self, operation: Operation, now: EpochMillis) -> bool {
        let Some(bucket) = self.buckets.get_mut(&operation) else {
            return true;
        };
        let capacity = f64::from(bucket.rate.requests);
        let window = duration_millis(bucket.rate.per).max(1) as f64;
        let elapsed = now.saturating_sub(bucket.refilled_at).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * capacity / window).min(capacity);
        bucket.refilled_at = now.max(bucket.refilled_at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_minute_refills_after_a_minute() {
        let mut rates = BTreeMap::new();
        rates.insert(Operation::CreateFhirDatastore, Rate::per_minute(1));
        let mut buckets = QuotaBuckets::new(&Quotas::Custom(rates), 0);
        assert!(buckets.try_acquire(Operation::CreateFhirDatastore, 0));
        assert!(!buckets.try_acquire(Operation::CreateFhirDatastore, 59_000));
        assert!(buckets.try_acquire(Operation::CreateFhirDatastore, 60_000));
        assert!(buckets.try_acquire(Operation::DescribeFhirDatastore, 60_000));
    }
}
