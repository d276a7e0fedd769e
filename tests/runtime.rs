//! The `run` command's runtime, in-process: leader election between replicas, the health and
//! metrics endpoint over HTTP, and shutdown. The operator runs as `run` would run it (flags,
//! limiter, metrics), against the in-memory Kubernetes API and the HealthLake emulator; and the
//! `trial` command as a process.

mod runtime {
    mod leader;
    mod probes;
    pub mod support;
    mod trial;
}
