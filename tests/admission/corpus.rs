//! The corpus of invalid manifests and illegal updates under `tests/admission/corpus/`: every
//! case must be refused with exactly the one error it names, as a real API server prints it.

use std::path::PathBuf;

use healthlake_operator::admission::{FieldError, NO_FIELD, RULES_NOT_CHECKED};
use serde_json::Value;

use super::harness::{Cluster, documents, lines, repository};

/// One invalid manifest or illegal update.
struct Case {
    file: String,
    name: String,
    field: String,
    error: String,
    object: Value,
    old: Option<Value>,
}

fn corpus() -> Vec<Case> {
    let directory = repository().join("tests/admission/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/admission/corpus exists")
        .map(|entry| entry.expect("corpus entry is readable").path())
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for document in documents(&path) {
            let text = |key: &str| {
                document[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("a case in {file} has no {key}"))
                    .to_owned()
            };
            cases.push(Case {
                name: text("case"),
                field: text("field"),
                error: text("error"),
                object: document["object"].clone(),
                old: document.get("old").cloned(),
                file: file.clone(),
            });
        }
    }
    cases
}

#[test]
fn the_corpus_has_at_least_forty_cases_with_distinct_names() {
    let cases = corpus();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|case| case.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "two cases share a name");
    let updates = cases.iter().filter(|case| case.old.is_some()).count();
    assert!(updates >= 10, "only {updates} illegal updates");
}

#[test]
fn every_invalid_manifest_and_illegal_update_is_refused_with_its_error() {
    let cluster = Cluster::from_committed_crds();
    let mut failures = Vec::new();
    for case in corpus() {
        if let Some(old) = &case.old {
            let mut stored = old.clone();
            if let Err(errors) = cluster.admit(&mut stored, None) {
                failures.push(format!(
                    "{}: {}: the old object is itself invalid: {:?}",
                    case.file,
                    case.name,
                    lines(&errors)
                ));
                continue;
            }
        }
        let mut object = case.object.clone();
        let errors = match cluster.admit(&mut object, case.old.as_ref()) {
            Ok(()) => {
                failures.push(format!("{}: {}: accepted", case.file, case.name));
                continue;
            }
            Err(errors) => errors,
        };
        let (notices, field_errors): (Vec<&FieldError>, Vec<&FieldError>) =
            errors.iter().partition(|error| error.field == NO_FIELD);
        let expected_notice = field_errors.iter().any(|error| error.kind.blocks_rules());
        let matches = field_errors.len() == 1
            && field_errors[0].field == case.field
            && field_errors[0].to_string() == case.error
            && notices.len() == usize::from(expected_notice)
            && notices
                .iter()
                .all(|notice| notice.message == RULES_NOT_CHECKED);
        if !matches {
            failures.push(format!(
                "{}: {}:\n    expected {}\n    got      {:?}",
                case.file,
                case.name,
                case.error,
                lines(&errors)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
