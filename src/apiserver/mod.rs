//! An in-memory Kubernetes API server for tests, benchmarks and the local sandbox.
//!
//! It serves the Kubernetes REST API for CustomResourceDefinitions and the custom resources they
//! define, core v1 Namespaces, Events (core v1 and events.k8s.io/v1) and coordination.k8s.io/v1
//! Leases, with the semantics kube-runtime and kubectl rely on: resourceVersions from one
//! counter, generation, the status subresource, finalizers, merge / JSON / apply patches, label
//! and field selectors, paging, watches with bookmarks and streaming lists, admission through
//! [`crate::admission::Validator`], owner-reference garbage collection, discovery, Tables and a
//! small OpenAPI v3 document. It knows nothing of HealthLake: CRDs are loaded from YAML or
//! created through the API.
//!
//! Two ways in: [`ApiServer`] is a `tower::Service` for `kube::Client::new` (see
//! [`ApiServer::client`]); [`ApiServer::serve`] listens on a loopback port over plain HTTP and
//! writes a kubeconfig for other processes (the operator binary, kubectl).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use healthlake_operator::apiserver::{ApiServer, Verb};
//! let server = ApiServer::new();
//! server.load_crds_from_dir("crds")?;
//! let client = server.client();
//! server.fail_next(Verb::Create, "fhirdatastores", 500, 1);
//! let served = server.serve("127.0.0.1:0").await?;
//! println!("KUBECONFIG={}", served.kubeconfig_path().display());
//! # Ok(()) }
//! ```
//!
//! What differs from a real API server:
//! - no authentication, authorization, admission webhooks, or API priority and fairness; plain
//!   HTTP only; JSON and YAML only, except the protobuf Namespace `kubectl create namespace`
//!   sends (other protobuf or CBOR bodies get 415); answers are JSON; no `/openapi/v2`;
//!   the OpenAPI v3 documents carry the CRD schemas but built-in kinds get an open schema;
//! - no conversion between versions of a CRD: every version serves the stored object with its
//!   `apiVersion` rewritten (the `None` conversion strategy);
//! - lists always read the latest state: `resourceVersion` and `resourceVersionMatch` on a list
//!   are accepted but not used to serve older snapshots, and a `continue` token resumes after the
//!   last name returned, against the current state, and never expires;
//! - watch history is the last 10 000 changes (or less after [`ApiServer::compact_history`]);
//!   older resourceVersions get an `ERROR` event with 410 Expired, as a compacted etcd gives;
//!   a watch without `timeoutSeconds` never times out; bookmarks come every 10 seconds;
//! - server-side apply keeps simplified field ownership: leaf fields per manager, lists atomic
//!   (no `k:`/`v:` list keys), and only `labels`, `annotations`, `finalizers` and
//!   `ownerReferences` of metadata are tracked; a write that is not an apply (an Update) takes
//!   the fields it changes, under its `fieldManager` or the first word of its user agent;
//! - strategic merge patch is treated as JSON merge patch (lists replaced) on the built-in kinds;
//!   custom resources refuse it with 415 UnsupportedMediaType, as a real server does;
//! - built-in resources (Namespaces, Events, Leases) are stored without schema validation,
//!   defaulting or pruning; for custom resources, unknown fields are pruned, refused under
//!   `fieldValidation=Strict` and reported in a `Warning` header otherwise;
//! - `events.k8s.io/v1` Events are stored as core v1 Events, renaming the fields that differ,
//!   and field selectors on them see the core v1 names; both views show the time, source and
//!   reference fields a real server always writes (`lastTimestamp: null`, `source: {}`, ...);
//! - deletion: no grace periods; garbage collection runs synchronously after each delete;
//!   `Foreground` keeps the owner (finalizer `foregroundDeletion`) until every dependent is gone,
//!   whether or not it sets `blockOwnerDeletion`; a deleted namespace deletes its contents and
//!   disappears once they are gone;
//! - a PUT without `metadata.resourceVersion` is an unconditional update, as for custom
//!   resources; PUT never creates;
//! - field selectors accept any dotted field path with `=`, `==` or `!=` (a real server allows
//!   only `metadata.name`, `metadata.namespace` and declared selectable fields on custom
//!   resources);
//! - metadata checks are the name (a DNS subdomain) and the namespace (it must exist and not be
//!   terminating); label and annotation syntax is not checked; a CRD is checked by parsing it,
//!   its name, and the admission validator compiling its schemas and rules;
//! - only CRDs and custom resources carry `metadata.generation`; Namespaces have no `finalize`
//!   subresource and their `spec.finalizers` do not hold them;
//! - Tables honour printer columns with simple JSONPaths (fields, indexes, `[*]`, equality
//!   filters); built-in kinds get Name and Age (plus Status for namespaces, Holder for leases);
//!   Events get a real server's event columns (Last Seen, Type, Reason, Object, Message, and
//!   Subobject, Source, First Seen, Count, Name under `-o wide`);
//! - discovery is the legacy (unaggregated) form; kubectl falls back to it.

mod apply;
mod conversion;
mod discovery;
mod faults;
mod protobuf;
mod resources;
mod rest;
mod routing;
mod selectors;
mod server;
mod status;
mod store;
mod table;
mod watch;

pub use faults::Verb;
pub use server::{ApiServer, ApiServerError, ServedApi};
