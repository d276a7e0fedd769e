//! End-to-end tests of the operator: controllers + HealthLake emulator over HTTP + in-memory
//! Kubernetes API.

mod operator {
    mod crash;
    mod datastore;
    pub mod harness;
    mod jobs;
    mod quota;
    mod recovery;
}
