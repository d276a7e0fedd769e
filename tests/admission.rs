//! Admission of the three custom resources through the validator, as the API server admits them:
//! the corpus of invalid manifests and illegal updates, the examples users copy, the defaults,
//! and the updates that must stay possible. The CRDs come from the committed `crds/`, because
//! that is what users apply.

#[path = "admission/harness.rs"]
mod harness;

#[path = "admission/corpus.rs"]
mod corpus;

#[path = "admission/examples.rs"]
mod examples;

#[path = "admission/updates.rs"]
mod updates;
