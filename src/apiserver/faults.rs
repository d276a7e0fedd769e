//! Fault hooks for tests: failing requests, dropped watches, latency.

use std::fmt;
use std::time::Duration;

/// The verb of a request, as RBAC names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Any verb.
    Any,
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (apply included).
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

impl fmt::Display for Verb {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Any => "*",
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::DeleteCollection => "deletecollection",
        };
        formatter.write_str(name)
    }
}

/// A rule: fail the next `remaining` requests that match with `status`.
#[derive(Clone, Debug)]
pub struct FailureRule {
    verb: Verb,
    resource: String,
    status: u16,
    remaining: u32,
}

/// The fault hooks' state.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FailureRule>,
    latency: Duration,
    watch_lag: Duration,
}

impl Faults {
    /// Adds a rule; `resource` is a plural (`fhirdatastores`), `plural/status`, or `*`.
    pub fn fail_next(&mut self, verb: Verb, resource: &str, status: u16, count: u32) {
        self.rules.push(FailureRule {
            verb,
            resource: resource.to_string(),
            status,
            remaining: count,
        });
    }

    /// The status to fail this request with, consuming one use of the first matching rule.
    pub fn take_failure(&mut self, verb: Verb, resource: &str) -> Option<u16> {
        let rule = self.rules.iter_mut().find(|rule| {
            rule.remaining > 0
                && (rule.verb == Verb::Any || rule.verb == verb)
                && (rule.resource == "*" || rule.resource == resource)
        })?;
        rule.remaining -= 1;
        let status = rule.status;
        self.rules.retain(|rule| rule.remaining > 0);
        Some(status)
    }

    /// Sets the latency added before every request.
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// The latency added before every request.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Sets how late every watch event of a watch started from now on reaches its client.
    pub fn set_watch_lag(&mut self, lag: Duration) {
        self.watch_lag = lag;
    }

    /// How late every watch event reaches its client.
    pub fn watch_lag(&self) -> Duration {
        self.watch_lag
    }

    /// Removes every rule, the latency and the watch lag.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.latency = Duration::ZERO;
        self.watch_lag = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_fails_exactly_the_matching_requests_it_counts() {
        let mut faults = Faults::default();
        faults.fail_next(Verb::Create, "widgets", 503, 2);
        assert_eq!(faults.take_failure(Verb::Get, "widgets"), None);
        assert_eq!(faults.take_failure(Verb::Create, "gadgets"), None);
        assert_eq!(faults.take_failure(Verb::Create, "widgets"), Some(503));
        assert_eq!(faults.take_failure(Verb::Create, "widgets"), Some(503));
        assert_eq!(faults.take_failure(Verb::Create, "widgets"), None);
    }
}
