//! Text files cut into chunks of a context's length in tokens: what `ppl`, `calibrate` and
//! `sparsity-sweep` run the model over.
//!
//! Reading ([`TextFile::read`]) is apart from tokenizing ([`TextFile::chunk`]) so that a
//! missing or non-UTF-8 file is reported before a model is loaded.

use std::path::Path;

use anyhow::{bail, Context, Result};
use lantern::Engine;

/// A UTF-8 text read from a file.
#[derive(Debug)]
pub(crate) struct TextFile {
    /// The file's name, for reports.
    name: String,
    text: String,
}

/// A text's tokens and the whole chunks of `ctx` tokens that will be run.
#[derive(Debug)]
pub(crate) struct ChunkedText {
    /// The file's name, for reports.
    pub(crate) name: String,
    /// Every token of the text.
    pub(crate) tokens: Vec<u32>,
    /// Tokens per chunk.
    pub(crate) ctx: usize,
    /// Chunks that will be run: at most the number asked for, at least one.
    pub(crate) chunks: usize,
}

impl TextFile {
    /// Reads the text at `path`.
    ///
    /// # Errors
    /// When the file cannot be read or is not UTF-8.
    pub(crate) fn read(path: &Path) -> Result<Self> {
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
    pub(crate) fn chunk(
        self,
        engine: &Engine,
        ctx: usize,
        max_chunks: Option<usize>,
    ) -> Result<ChunkedText> {
        if ctx == 0 || max_chunks == Some(0) {
            bail!("nothing to run: 0 chunks, or chunks of 0 tokens");
        }
        let tokens = engine.tokenizer().encode(&self.text, true)?;
        let available = tokens.len() / ctx;
        let chunks = max_chunks.map_or(available, |c| c.min(available));
        if chunks == 0 {
            bail!("{} has {} tokens, fewer than one chunk of {ctx}", self.name, tokens.len());
        }
        Ok(ChunkedText { name: self.name, tokens, ctx, chunks })
    }
}

impl ChunkedText {
    /// The chunks that will be run, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u32]> {
        self.tokens.chunks_exact(self.ctx).take(self.chunks)
    }
}
