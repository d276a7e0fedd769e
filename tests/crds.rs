//! The committed `crds/` must be exactly what the Rust types generate, and so must its copies in
//! the Helm chart and the kustomize base (`make crds` writes all three).

use std::path::Path;

/// Every directory that holds the generated CRDs, relative to the repository.
const CRD_DIRECTORIES: [&str; 3] = [
    "crds",
    "charts/healthlake-operator/crds",
    "deploy/base/crds",
];

#[test]
fn committed_crds_match_the_generated_output() {
    let documents = healthlake_operator::api::crd_documents().expect("crds render");
    assert_eq!(documents.len(), 3, "one file per kind");
    for directory in CRD_DIRECTORIES {
        let crds_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(directory);
        for (file_name, generated) in &documents {
            let path = crds_dir.join(file_name);
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|error| {
                panic!("{} is missing ({error}): run `make crds`", path.display())
            });
            assert!(
                committed == *generated,
                "{} differs from the generated CRD: run `make crds` and commit the result",
                path.display()
            );
        }
        let committed_files = std::fs::read_dir(&crds_dir)
            .unwrap_or_else(|error| panic!("{} is missing ({error})", crds_dir.display()))
            .count();
        assert_eq!(
            committed_files,
            documents.len(),
            "{directory}/ holds a file that no type generates"
        );
    }
}
