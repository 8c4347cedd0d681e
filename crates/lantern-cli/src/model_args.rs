//! Options shared by the commands that load a model, and the loading itself.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lantern::{
    Budget, Engine, ExitRule, LoraAdapter, Pin, ReadPath, SessionConfig, Sparsity, StorageModel,
    StreamOptions, StreamStats,
};
use lantern_io::ModelSource;

use crate::fetch;

/// Which model to load and how to run it.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// GGUF model file. By default, the default model (fetched and cached on first use).
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// Worker threads. By default, all CPUs.
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Context length in tokens. By default, the model's, capped at 4096.
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Prompt tokens per batch.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// Read the file into memory instead of memory-mapping it.
    #[arg(long)]
    pub no_mmap: bool,
    /// Zero FFN neurons below these thresholds (a file from `lantern calibrate`). By
    /// default, the thresholds stored in a .lantern container, if any.
    #[arg(long, value_name = "FILE", conflicts_with = "dense")]
    pub thresholds: Option<PathBuf>,
    /// Compute every FFN neuron, even if the model carries thresholds.
    #[arg(long)]
    pub dense: bool,
    /// Skip the zeroed FFN neurons' weights when decoding with thresholds: read only the
    /// active neurons' up rows (thresholds on the gate) and their down columns, from a
    /// column-major copy of the down matrices (see docs/SPARSITY.md for when it pays).
    #[arg(long, conflicts_with = "dense")]
    pub ffn_columns: bool,
    /// Stream the model (a .lantern container) from storage within this memory budget for
    /// weights: bytes (64MB, 1.5GiB) or a share of the weights (25%).
    #[arg(long, value_name = "SIZE", help_heading = "Streaming")]
    pub budget: Option<Budget>,
    /// Blocks read ahead of the one computing, when streaming (the budget may allow fewer).
    #[arg(long, default_value_t = 2, help_heading = "Streaming")]
    pub depth: usize,
    /// Simulated storage speed when streaming: sd, emmc, ufs, nvme, none, or a bandwidth
    /// with an optional latency, such as 250MB/s or 250MB/s,200us.
    #[arg(long, default_value = "none", help_heading = "Streaming")]
    pub storage: StorageModel,
    /// Read past the page cache (O_DIRECT) under a storage model too. By default only
    /// unthrottled streaming does; throttled reads already take the model's time.
    #[arg(long, help_heading = "Streaming")]
    pub direct_io: bool,
    /// Weights kept resident when streaming, besides the norms: any of embedding, output,
    /// first=N, last=N (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "LIST", help_heading = "Streaming")]
    pub pin: Vec<String>,
    /// A LoRA adapter (llama.cpp's GGUF adapter format) applied at scale 1; repeatable.
    #[arg(long, value_name = "FILE", help_heading = "Adapters")]
    pub lora: Vec<PathBuf>,
    /// A LoRA adapter applied at a scale, as FILE:SCALE; repeatable.
    #[arg(long, value_name = "FILE:SCALE", help_heading = "Adapters")]
    pub lora_scaled: Vec<String>,
    /// Merge the adapters into the weights at load (each adapted matrix quantized again)
    /// instead of adding their low-rank products beside the base's.
    #[arg(long, help_heading = "Adapters")]
    pub lora_merge: bool,
    /// Combine the predictions of early exits: `adapter` for those the (first) adapter was
    /// tuned with, or block counts such as 10,20 (the last block's exit is always one).
    #[arg(long, value_name = "LIST", help_heading = "Adapters")]
    pub exits: Option<String>,
    /// How exits combine: `vote` (each exit's softmax, their maximum, renormalised) or
    /// `first=P` (the first exit whose top token has probability P or more).
    #[arg(long, default_value = "vote", value_parser = parse_exit_rule, help_heading = "Adapters")]
    pub exit_rule: ExitRule,
}

impl ModelArgs {
    /// The model file: the one given, or the cached default model (fetched if missing).
    pub fn path(&self) -> Result<PathBuf> {
        match &self.model {
            Some(path) => Ok(path.clone()),
            None => fetch::ensure(&fetch::DEFAULT_MODEL, &fetch::default_cache_dir(), false),
        }
    }

    /// Loads the engine.
    pub fn engine(&self) -> Result<Engine> {
        self.engine_with(self.ffn_columns)
    }

    /// Loads the engine, with column-major copies of the FFN down matrices or without.
    pub fn engine_with(&self, ffn_columns: bool) -> Result<Engine> {
        let path = self.path()?;
        anyhow::ensure!(
            !(self.lora_merge && self.budget.is_some()),
            "a streamed model cannot merge adapters: drop --lora-merge to apply them unmerged"
        );
        if let Some(budget) = self.budget {
            let options = StreamOptions { budget, depth: self.depth, pin: self.pin()? };
            let mut builder = Engine::builder(&path).stream(options, self.storage);
            if self.direct_io {
                builder = builder.read_path(ReadPath::Direct);
            }
            return builder.build().with_context(|| {
                let path = path.display();
                format!("streaming {path} (a .lantern container; `lantern convert` makes one)")
            });
        }
        let source = if self.no_mmap {
            ModelSource::read(&path)
        } else {
            crate::mapped::explain_faults();
            // SAFETY: the mapping is read-only and lives as long as the engine; the CLI
            // never writes model files. A model file cut short by another process while it
            // runs faults; the process then ends with a message saying so.
            unsafe { ModelSource::mmap(&path) }
        }
        .with_context(|| format!("opening {}", path.display()))?;
        let mut builder = Engine::builder_from_source(source).sparse_ffn(ffn_columns);
        if self.lora_merge {
            for (adapter, scale) in self.adapters()? {
                builder = builder.merge_adapter(adapter, scale);
            }
        }
        builder.build().with_context(|| format!("loading {}", path.display()))
    }

    /// The adapters the options name, each with its scale, read from their files.
    pub fn adapters(&self) -> Result<Vec<(Arc<LoraAdapter>, f32)>> {
        let scaled = self.lora_scaled.iter().map(|arg| {
            let (path, scale) = arg.rsplit_once(':').unwrap_or((arg, ""));
            let scale = scale.parse::<f32>().ok().filter(|s| s.is_finite());
            let scale =
                scale.with_context(|| format!("--lora-scaled takes FILE:SCALE, not {arg:?}"));
            (PathBuf::from(path), scale)
        });
        let plain = self.lora.iter().map(|path| (path.clone(), Ok(1.0)));
        plain
            .chain(scaled)
            .map(|(path, scale)| {
                let adapter = LoraAdapter::read(&path)
                    .with_context(|| format!("reading the adapter {}", path.display()))?;
                Ok((Arc::new(adapter), scale?))
            })
            .collect()
    }

    /// Session settings from the options.
    pub fn session_config(&self) -> Result<SessionConfig> {
        let mut config = SessionConfig::default().batch_size(self.batch_size);
        if let Some(path) = &self.thresholds {
            config = config.sparsity(Sparsity::Thresholds(crate::thresholds::read(path)?));
        } else if self.dense {
            config = config.sparsity(Sparsity::Dense);
        }
        if let Some(threads) = self.threads {
            config = config.threads(threads);
        }
        if let Some(ctx) = self.ctx_size {
            config = config.ctx_len(ctx);
        }
        let adapters = if self.lora_merge { Vec::new() } else { self.adapters()? };
        if let Some(exits) = &self.exits {
            let layers = if exits == "adapter" {
                let first = adapters.first().context("--exits adapter needs an unmerged --lora")?;
                anyhow::ensure!(
                    !first.0.exits().is_empty(),
                    "the adapter records no exits (it was tuned at the last block only)"
                );
                first.0.exits().to_vec()
            } else {
                let parse = |e: &str| e.trim().parse::<usize>().ok();
                let layers: Option<Vec<usize>> = exits.split(',').map(parse).collect();
                layers.with_context(|| {
                    format!("--exits takes `adapter` or block counts, not {exits:?}")
                })?
            };
            config = config.exits(layers, self.exit_rule);
        }
        for (adapter, scale) in adapters {
            config = config.adapter(adapter, scale);
        }
        Ok(config)
    }
}

impl ModelArgs {
    fn pin(&self) -> Result<Pin> {
        let mut pin = Pin::default();
        for item in &self.pin {
            match item.split_once('=') {
                None if item == "embedding" => pin.embedding = true,
                None if item == "output" => pin.output = true,
                Some(("first", n)) => pin.first_layers = n.parse().context("--pin first=N")?,
                Some(("last", n)) => pin.last_layers = n.parse().context("--pin last=N")?,
                _ => {
                    anyhow::bail!("--pin takes embedding, output, first=N or last=N, not {item:?}")
                }
            }
        }
        Ok(pin)
    }
}

/// `vote` or `first=P`.
fn parse_exit_rule(s: &str) -> Result<ExitRule, String> {
    match s.split_once('=') {
        None if s == "vote" => Ok(ExitRule::Vote),
        Some(("first", p)) => match p.parse::<f32>() {
            Ok(threshold) if threshold > 0.0 && threshold <= 1.0 => {
                Ok(ExitRule::FirstConfident { threshold })
            }
            _ => Err(format!("first=P takes a probability in (0, 1], not {p:?}")),
        },
        _ => Err(format!("expected vote or first=P, not {s:?}")),
    }
}

/// One line on what streaming cost over `passes` forward passes (one per decoded token),
/// from `stats` (since a snapshot).
pub fn stream_summary(stats: &StreamStats, passes: usize) -> String {
    let per_pass = |x: f64| x / passes.max(1) as f64;
    format!(
        "streamed {:.2} MB/pass | prefetch stall {:.1} ms/pass | decode {:.1} ms/pass | \
         device wait {:.1} ms/pass | peak resident weights {} bytes ({:.1} MiB)",
        per_pass(stats.bytes_read as f64) / 1e6,
        per_pass(stats.prefetch_stall.as_secs_f64()) * 1e3,
        per_pass(stats.decode_time.as_secs_f64()) * 1e3,
        per_pass(stats.device_wait.as_secs_f64()) * 1e3,
        stats.peak_resident_bytes,
        stats.peak_resident_bytes as f64 / (1024.0 * 1024.0),
    )
}

/// The model file's name, for reports.
pub fn model_name(engine: &Engine) -> String {
    engine
        .info()
        .path
        .as_deref()
        .and_then(|p| p.file_name())
        .map_or("model".into(), |n| n.to_string_lossy().into_owned())
}

/// Peak resident set size of this process in bytes (Linux; `None` elsewhere).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
