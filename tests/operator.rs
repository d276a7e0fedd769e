//! End-to-end tests of the operator: controllers + HealthLake emulator over HTTP + in-memory
//! Kubernetes API.

mod operator {
    mod account_quotas;
    mod adoption;
    mod crash;
    mod datastore;
    pub mod harness;
    mod jobs;
    mod quota;
    mod readiness;
    mod recovery;
    mod region_pin;
    mod regions;
    mod stuck;
    mod watches;
}
