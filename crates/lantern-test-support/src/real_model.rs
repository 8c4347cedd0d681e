//! Where the real default model is, for the tests that run it.

use std::path::PathBuf;

/// The file name `lantern fetch` saves the default model under.
const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Path of the real default model: `$LANTERN_MODEL`, else
/// `$HOME/.cache/lantern/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
///
/// # Panics
/// If the model is in neither place, with a message saying to run `lantern fetch`.
pub fn model_path() -> PathBuf {
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
