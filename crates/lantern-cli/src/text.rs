//! Text files cut into chunks of a context's length in tokens: what `ppl`, `calibrate`,
//! `convert`'s calibration and `sparsity-sweep` run the model over. The chunks are the
//! facade's ([`lantern::context_chunks`]), the ones perplexity scores.
//!
//! Reading ([`TextFile::read`]) is apart from tokenizing ([`TextFile::chunk`]) so that a
//! missing or non-UTF-8 file is reported before a model is loaded.

use std::path::Path;

use anyhow::{bail, Context, Result};
use lantern::{context_chunks, Engine};

use crate::fetch;

/// A UTF-8 text read from a file.
#[derive(Debug)]
pub struct TextFile {
    /// The file's name, for reports.
    name: String,
    text: String,
}

/// A text's tokens and the whole chunks of `ctx` tokens that will be run.
#[derive(Debug)]
pub struct ChunkedText {
    /// The file's name, for reports.
    pub name: String,
    /// Every token of the text.
    pub tokens: Vec<u32>,
    /// Tokens per chunk.
    pub ctx: usize,
    /// Chunks that will be run: at most the number asked for, at least one.
    pub chunks: usize,
}

impl TextFile {
    /// Reads the text at `path`.
    ///
    /// # Errors
    /// When the file cannot be read or is not UTF-8.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
        let name = path.file_name().map_or("?".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self { name, text })
    }

    /// Tokenizes the text for `engine`'s model and keeps at most `max_chunks` chunks of
    /// `ctx` tokens (all of them when `None`).
    ///
    /// # Errors
    /// When `ctx` or `max_chunks` is 0, or the text holds less than one chunk.
    pub fn chunk(
        self,
        engine: &Engine,
        ctx: usize,
        max_chunks: Option<usize>,
    ) -> Result<ChunkedText> {
        if ctx == 0 || max_chunks == Some(0) {
            bail!("nothing to run: 0 chunks, or chunks of 0 tokens");
        }
        let tokens = engine.tokenizer().encode(&self.text, true)?;
        let chunks = context_chunks(&tokens, ctx, max_chunks).len();
        if chunks == 0 {
            bail!("{} has {} tokens, fewer than one chunk of {ctx}", self.name, tokens.len());
        }
        Ok(ChunkedText { name: self.name, tokens, ctx, chunks })
    }
}

impl ChunkedText {
    /// The chunks that will be run, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u32]> {
        context_chunks(&self.tokens, self.ctx, Some(self.chunks))
    }
}

/// The calibration text: the file at `path`, or by default the pinned calibration set
/// (fetched if missing), which shares no text with WikiText-2's test split.
///
/// # Errors
/// When the pinned set cannot be fetched, and as [`TextFile::read`].
pub fn calibration_text(path: Option<&Path>) -> Result<TextFile> {
    match path {
        Some(path) => TextFile::read(path),
        None => {
            let cache = fetch::default_cache_dir();
            TextFile::read(&fetch::ensure(&fetch::CALIBRATION_WIKI, &cache, false)?)
        }
    }
}
