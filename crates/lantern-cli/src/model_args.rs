//! Options shared by the commands that load a model, and the loading itself.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lantern::io::ModelSource;
use lantern::{Engine, SessionConfig};

use crate::fetch;

/// Which model to load and how to run it.
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// GGUF model file. By default, the default model (fetched and cached on first use).
    #[arg(short, long)]
    pub(crate) model: Option<PathBuf>,
    /// Worker threads. By default, all CPUs.
    #[arg(short, long)]
    pub(crate) threads: Option<usize>,
    /// Context length in tokens. By default, the model's, capped at 4096.
    #[arg(short = 'c', long = "ctx-size")]
    pub(crate) ctx_size: Option<usize>,
    /// Prompt tokens per batch.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub(crate) batch_size: usize,
    /// Read the file into memory instead of memory-mapping it.
    #[arg(long)]
    pub(crate) no_mmap: bool,
}

impl ModelArgs {
    /// The model file: the one given, or the cached default model (fetched if missing).
    pub(crate) fn path(&self) -> Result<PathBuf> {
        match &self.model {
            Some(path) => Ok(path.clone()),
            None => fetch::ensure(&fetch::DEFAULT_MODEL, &fetch::default_cache_dir(), false),
        }
    }

    /// Loads the engine.
    pub(crate) fn engine(&self) -> Result<Engine> {
        let path = self.path()?;
        let source = if self.no_mmap {
            ModelSource::read(&path)
        } else {
            // SAFETY: the mapping is read-only and lives as long as the engine; the CLI
            // never writes model files, and a model file changed by another process
            // while it runs is outside what the command supports (as with llama.cpp).
            unsafe { ModelSource::mmap(&path) }
        }
        .with_context(|| format!("opening {}", path.display()))?;
        Engine::builder_from_source(source)
            .build()
            .with_context(|| format!("loading {}", path.display()))
    }

    /// Session settings from the options.
    pub(crate) fn session_config(&self) -> SessionConfig {
        let mut config = SessionConfig::default().batch_size(self.batch_size);
        if let Some(threads) = self.threads {
            config = config.threads(threads);
        }
        if let Some(ctx) = self.ctx_size {
            config = config.ctx_len(ctx);
        }
        config
    }
}

/// Peak resident set size of this process in bytes (Linux; `None` elsewhere).
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
