//! The log of every call the emulator answered, and per-operation counters.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One answered call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Position in the log, from 1.
    pub sequence: u64,
    /// The emulator's time of the call, in epoch milliseconds.
    pub time_millis: i64,
    /// The operation named by `X-Amz-Target` (as sent, even when unknown).
    pub operation: String,
    /// The region of the request's SigV4 credential scope; `None` when it had none.
    #[serde(default)]
    pub region: Option<String>,
    /// The request body (null when it was not JSON).
    pub parameters: Value,
    /// The HTTP status answered.
    pub status: u16,
    /// The `__type` of the error answered, or `None` on success.
    pub error_type: Option<String>,
    /// The `x-amzn-requestid` answered.
    pub request_id: String,
}

impl CallRecord {
    /// Whether the call succeeded.
    pub fn succeeded(&self) -> bool {
        self.error_type.is_none()
    }
}

/// Counts of the calls of one operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationCounters {
    /// Every call.
    pub calls: u64,
    /// Calls answered with success.
    pub succeeded: u64,
    /// Calls answered with an error, by `__type`.
    pub errors: BTreeMap<String, u64>,
}

/// The log and counters.
#[derive(Clone, Debug, Default)]
pub struct CallLog {
    records: VecDeque<CallRecord>,
    counters: BTreeMap<String, OperationCounters>,
}

/// Beyond this many records the oldest are dropped (counters keep counting).
const MAX_RECORDS: usize = 100_000;

impl CallLog {
    /// Appends a call; the record's sequence is assigned here.
    pub fn push(&mut self, mut record: CallRecord) {
        let counters = self.counters.entry(record.operation.clone()).or_default();
        counters.calls += 1;
        match &record.error_type {
            None => counters.succeeded += 1,
            Some(error) => *counters.errors.entry(error.clone()).or_default() += 1,
        }
        record.sequence = self.records.back().map_or(1, |last| last.sequence + 1);
        if self.records.len() >= MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// Every record kept, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &CallRecord> {
        self.records.iter()
    }

    /// Counters by operation name.
    pub fn counters(&self) -> &BTreeMap<String, OperationCounters> {
        &self.counters
    }
}
