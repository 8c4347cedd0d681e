//! Helpers shared by the integration tests: where the real model and the evaluation text are.

use std::path::PathBuf;

pub(crate) use lantern_test_support::real_model::model_path;

/// The metadata of the real default model (see [`model_path`]).
pub(crate) fn model_metadata() -> lantern_io::Metadata {
    let source = lantern_io::ModelSource::read(model_path()).expect("read the model");
    let model = lantern_io::GgufModel::open(source).expect("parse the model");
    model.metadata().clone()
}

/// WikiText-2's test split: `$LANTERN_EVALDATA/wiki.test.raw`, else
/// `../shared/evaldata/wiki.test.raw` beside the repository.
///
/// # Panics
/// If the file is in neither place.
pub(crate) fn wiki_text() -> String {
    let dir = std::env::var_os("LANTERN_EVALDATA").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/evaldata")
    });
    let path = dir.join("wiki.test.raw");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; set LANTERN_EVALDATA to the folder holding wiki.test.raw",
            path.display()
        )
    })
}
