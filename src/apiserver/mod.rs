//! The in-memory Kubernetes API server (to be written) for tests, benchmarks and the local sandbox.
