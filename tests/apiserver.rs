//! The in-memory Kubernetes API server: a conformance suite through kube::Api and kube-runtime
//! (also runnable against a real cluster), fault hooks, and kubectl against the served API.

#[path = "apiserver/mod.rs"]
mod suite;
