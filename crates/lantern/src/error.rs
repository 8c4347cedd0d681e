//! Errors of the facade crate.

use std::path::PathBuf;

/// What can go wrong while loading a model or generating with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error reading or validating the model file.
    #[error(transparent)]
    Io(#[from] lantern_io::Error),
    /// An error in a tensor operation.
    #[error(transparent)]
    Core(#[from] lantern_core::Error),
    /// An error in the forward pass or sampler.
    #[error(transparent)]
    Runtime(#[from] lantern_runtime::Error),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A tokenizer key in the model's metadata holds a value the tokenizer cannot use
    /// (a missing or mistyped key is reported by [`Error::Io`], naming the key).
    #[error("tokenizer metadata key {key:?} is invalid: {reason}")]
    InvalidTokenizer {
        /// The metadata key.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The model's tokenizer kind or pre-tokenizer is not supported.
    #[error("unsupported tokenizer: {key} = {value:?}")]
    UnsupportedTokenizer {
        /// The metadata key that selects it (`tokenizer.ggml.model` or `tokenizer.ggml.pre`).
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// A `tokenizer.json` is not valid UTF-8.
    #[error("tokenizer JSON{} is not valid UTF-8: {source}", at_path(.path.as_deref()))]
    TokenizerUtf8 {
        /// The file, when the JSON came from one.
        path: Option<PathBuf>,
        /// Where the first invalid byte is.
        source: std::str::Utf8Error,
    },
    /// A `tokenizer.json` is not valid JSON or not a tokenizer description.
    #[error("tokenizer JSON{} is invalid: {source}", at_path(.path.as_deref()))]
    TokenizerJson {
        /// The file, when the JSON came from one.
        path: Option<PathBuf>,
        /// What the `tokenizers` crate reported.
        source: tokenizers::Error,
    },
    /// Encoding or decoding failed inside the `tokenizers` crate.
    #[error("tokenizer: {source}")]
    Tokenizer {
        /// What the `tokenizers` crate reported.
        source: tokenizers::Error,
    },
    /// A pre-tokenizer pattern gave up on a text (the regex engine's backtracking limit).
    #[error("cannot split the text into words: {reason}")]
    TextSplit {
        /// What the regex engine reported.
        reason: String,
    },
    /// A token id not in the tokenizer's vocabulary.
    #[error("token id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size, added tokens included.
        vocab_size: usize,
    },
    /// A chat template does not compile (syntax error).
    #[error("chat template does not compile: {source}")]
    TemplateSyntax {
        /// The template engine's message, with line number.
        source: minijinja::Error,
    },
    /// A chat template failed while rendering (including its own `raise_exception`).
    #[error("chat template failed to render: {source}")]
    TemplateRender {
        /// The template engine's message, with line number.
        source: minijinja::Error,
    },
    /// The prompt does not fit in the session's context.
    #[error("prompt of {tokens} tokens does not fit in a context of {ctx_len} (one position is kept for the reply)")]
    PromptTooLong {
        /// Tokens in the prompt (with the conversation so far).
        tokens: usize,
        /// The session's context length.
        ctx_len: usize,
    },
    /// A generation asked for with no prompt tokens at all.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// Chat asked of a model without a chat template.
    #[error("the model has no chat template, so it cannot chat; plain completion works")]
    NoChatTemplate,
    /// Chat asked of a model whose own chat template does not compile.
    #[error("the model's chat template cannot be used ({reason}), so it cannot chat; plain completion works")]
    BrokenChatTemplate {
        /// The template error.
        reason: String,
    },
    /// A tokenizer with more tokens than the model has embedding rows.
    #[error("tokenizer has {tokenizer} tokens but the model only {model}")]
    VocabMismatch {
        /// Tokens in the tokenizer.
        tokenizer: usize,
        /// Rows of the model's embedding.
        model: usize,
    },
}

/// `" at PATH"` for error messages, or nothing.
fn at_path(path: Option<&std::path::Path>) -> String {
    path.map(|p| format!(" at {}", p.display())).unwrap_or_default()
}

/// Result with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
