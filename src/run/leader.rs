//! Leader election through a coordination.k8s.io Lease, with an identity unique per process.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};

/// This process's leader-election identity: `POD_NAME` when set (the chart sets it from the
/// downward API), else the host name plus a random suffix. Never the process id alone: in
/// containers it is 1 in every replica, and two replicas sharing an identity would both act.
pub fn identity() -> String {
    identity_from(
        std::env::var("POD_NAME").ok(),
        hostname::get()
            .ok()
            .and_then(|name| name.into_string().ok()),
        rand::random::<u32>(),
    )
}

fn identity_from(pod_name: Option<String>, host: Option<String>, random: u32) -> String {
    match pod_name.filter(|name| !name.trim().is_empty()) {
        Some(pod_name) => pod_name,
        None => {
            let host = host
                .filter(|host| !host.trim().is_empty())
                .unwrap_or_else(|| "healthlake-operator".to_owned());
            format!("{host}-{random:08x}")
        }
    }
}

/// The lease timings for a lease of `duration_seconds`: (duration, grace), where the holder
/// renews `grace` seconds before the lease would expire.
pub fn timings(duration_seconds: u64) -> Option<(u64, u64)> {
    (duration_seconds >= 2).then(|| (duration_seconds, (duration_seconds / 3).max(1)))
}

/// Who holds `name` in `namespace` now, if anyone; `None` too when it cannot be read.
pub async fn holder(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

/// How often a replica that does not lead checks who does, until it knows.
pub fn recheck_interval(grace_seconds: u64) -> Duration {
    Duration::from_secs(grace_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_name_is_the_identity_when_set() {
        assert_eq!(
            identity_from(Some("operator-7d9f-abcde".into()), Some("host".into()), 7),
            "operator-7d9f-abcde"
        );
    }

    #[test]
    fn without_a_pod_name_two_processes_on_one_host_differ() {
        let first = identity_from(None, Some("operator".into()), 1);
        let second = identity_from(Some(String::new()), Some("operator".into()), 2);
        assert_eq!(first, "operator-00000001");
        assert_eq!(second, "operator-00000002");
        assert_eq!(
            identity_from(None, None, 255),
            "healthlake-operator-000000ff"
        );
    }

    #[test]
    fn the_holder_renews_a_third_of_the_lease_before_it_expires() {
        assert_eq!(timings(15), Some((15, 5)));
        assert_eq!(timings(2), Some((2, 1)));
        assert_eq!(timings(1), None);
    }
}
