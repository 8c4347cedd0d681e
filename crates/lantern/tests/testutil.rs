//! Helpers shared by the integration tests: where the real model and the evaluation text are.

use std::path::PathBuf;

/// The file name `lantern fetch` saves the default model under.
const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Path of the real default model: `$LANTERN_MODEL`, else
/// `$HOME/.cache/lantern/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
///
/// # Panics
/// If the model is in neither place, with a message saying to run `lantern fetch`.
pub(crate) fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("LANTERN_MODEL") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "LANTERN_MODEL={} is not a file: point it at a .gguf model, or unset it and run \
             `lantern fetch` to download the default model",
            path.display()
        );
        return path;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let path = home.join(".cache/lantern/models").join(DEFAULT_MODEL);
    assert!(
        path.is_file(),
        "the default model is not at {} and LANTERN_MODEL is not set: run `lantern fetch` \
         (or set LANTERN_MODEL to a .gguf path)",
        path.display()
    );
    path
}

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
