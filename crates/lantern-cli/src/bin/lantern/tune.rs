//! `lantern tune`: trains a LoRA adapter on a text, on the device, with Edge-LLM's adaptive
//! layer tuning (each step backpropagates through a window of blocks to an exit right above
//! it) or at full depth, and writes it in llama.cpp's adapter format for `--lora`.
//!
//! Training needs automatic differentiation (candle, through `lantern-quant`), which the
//! default build of `lantern` leaves out to stay light: the command is there only with the
//! `tune` feature (`cargo install lantern-cli --features tune`); without it, it says so.

#[cfg(feature = "tune")]
mod report;
#[cfg(feature = "tune")]
mod text;

#[cfg(feature = "tune")]
pub(crate) use with_feature::{run, TuneArgs};
#[cfg(not(feature = "tune"))]
pub(crate) use without_feature::{run, TuneArgs};

#[cfg(feature = "tune")]
mod with_feature {
    use std::ops::ControlFlow;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use anyhow::{bail, Context, Result};
    use clap::{ArgGroup, Args, ValueEnum};
    use lantern::{BlockMatrix, Budget};
    use lantern_io::{open_model_file, AtomicFile, ModelFile, ModelSource};
    use lantern_quant::{Checkpoints, Depth, Schedule, TuneConfig, Tuner};
    use lantern_runtime::Model;

    use super::report::{Progress, Report};
    use super::text::training_tokens;

    /// Train a LoRA adapter on a text (Edge-LLM's adaptive layer tuning, or full depth).
    #[derive(Debug, Args)]
    #[command(group(ArgGroup::new("data").required(true).args(["text", "chat"])))]
    pub(crate) struct TuneArgs {
        /// Model to adapt (llama-style blocks): a GGUF file, or a `.lantern` container such as
        /// a compressed one.
        model: PathBuf,
        /// Training text (UTF-8), one stream of tokens.
        #[arg(long, value_name = "FILE")]
        text: Option<PathBuf>,
        /// Training conversations, one JSON object per line:
        /// {"messages":[{"role":"user","content":"…"},…]}, rendered with the model's chat
        /// template.
        #[arg(long, value_name = "FILE.jsonl")]
        chat: Option<PathBuf>,
        /// Where to write the adapter (llama.cpp's GGUF LoRA format), atomically.
        #[arg(short, long)]
        output: PathBuf,
        /// Rank of each low-rank update.
        #[arg(long, default_value_t = 8)]
        rank: usize,
        /// LoRA alpha: updates are scaled by alpha / rank.
        #[arg(long, default_value_t = 16.0)]
        alpha: f32,
        /// Matrices to adapt: any of q,k,v,o,gate,up,down.
        #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
        targets: Vec<String>,
        /// Blocks each step trains, below its exit. By default, a fifth of the blocks.
        #[arg(long, conflicts_with = "full_depth")]
        window: Option<usize>,
        /// Block counts after which the exits sit, rising, the last the model's top (e.g.
        /// 6,12,18,24,30). By default, every --window blocks from the top.
        #[arg(long, value_delimiter = ',', conflicts_with = "full_depth")]
        exits: Option<Vec<usize>>,
        /// Train every block in every step, with one exit at the top (plain LoRA).
        #[arg(long)]
        full_depth: bool,
        /// Which exit each step trains at.
        #[arg(long, value_enum, default_value_t = ScheduleArg::Cyclic)]
        schedule: ScheduleArg,
        /// Optimizer steps.
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// Tokens of each training sequence.
        #[arg(long, default_value_t = 128)]
        seq_len: usize,
        /// Sequences per step.
        #[arg(long, default_value_t = 1)]
        sequences: usize,
        /// AdamW's learning rate.
        #[arg(long, default_value_t = 2e-4)]
        lr: f64,
        /// AdamW's weight decay.
        #[arg(long, default_value_t = 0.0)]
        weight_decay: f64,
        /// Seed of the initial factors, the order of the sequences and a random schedule.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write a checkpoint (factors and optimizer state) here, atomically.
        #[arg(long, value_name = "PATH")]
        checkpoint: Option<PathBuf>,
        /// Steps between checkpoints (one is also written at the end and on Ctrl-C).
        #[arg(long, default_value_t = 50, requires = "checkpoint")]
        checkpoint_every: usize,
        /// Go on from --checkpoint, which a run with the same model, text and settings wrote.
        #[arg(long, requires = "checkpoint")]
        resume: bool,
        /// Refuse to start when the run's estimated peak memory, the model included, exceeds
        /// this size (64MB, 1.5GiB).
        #[arg(long, value_name = "SIZE")]
        memory_budget: Option<Budget>,
        /// Threads of the tensor products. By default, one per CPU.
        #[arg(short, long)]
        threads: Option<usize>,
        /// Read the model into memory instead of memory-mapping it.
        #[arg(long)]
        no_mmap: bool,
        /// No progress bar or summary line.
        #[arg(short, long)]
        quiet: bool,
        /// Also print the run's figures on stdout: `json` for one JSON object.
        #[arg(long, value_enum)]
        report: Option<ReportFormat>,
    }

    /// How steps choose their exit.
    #[derive(Clone, Copy, Debug, ValueEnum)]
    enum ScheduleArg {
        /// The exits in turn, lowest first.
        Cyclic,
        /// An exit drawn at random (seeded) each step.
        Random,
    }

    /// Machine-readable reports.
    #[derive(Clone, Copy, Debug, ValueEnum)]
    enum ReportFormat {
        /// `{"steps":…,"sec_per_step":…,"peak_rss_bytes":…,"final_loss":…,…}`.
        Json,
    }

    pub(crate) fn run(args: TuneArgs) -> Result<()> {
        let config = tune_config(&args)?;
        // Destinations that cannot be written (a directory, a device) fail before any work.
        let output = AtomicFile::create(&args.output)?;
        let checkpoints = checkpoints(&args)?;
        let data = match (&args.text, &args.chat) {
            (Some(path), _) => super::text::Data::read_text(path)?,
            (None, Some(path)) => super::text::Data::read_chat(path)?,
            (None, None) => bail!("give the training data with --text or --chat"),
        };
        let file = open(&args)?;
        let tokens = training_tokens(file.metadata(), &data)?;
        let model = Model::load(file.as_ref())
            .with_context(|| format!("loading {}", args.model.display()))?;
        let mut tuner = Tuner::new(&model, config, tokens)?;
        if args.resume {
            let path = &checkpoints.as_ref().map(|c| c.path.clone()).unwrap_or_default();
            tuner.resume(path).with_context(|| format!("resuming from {}", path.display()))?;
        }
        let progress = Progress::new(&tuner, data.name(), args.quiet)?;
        let stop = Arc::new(AtomicBool::new(false));
        let on_signal = Arc::clone(&stop);
        // A second Ctrl-C while the first is being handled ends the process as usual.
        let _ = ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst));
        let mut report = Report::new(tuner.steps_done());
        let result = tuner.run(checkpoints.as_ref(), |step| {
            report.add(step);
            progress.show(step, &report);
            if stop.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        progress.finish();
        result?;
        if !tuner.is_done() {
            let resume = match &args.checkpoint {
                Some(path) => {
                    format!("; a checkpoint is in {}, go on with --resume", path.display())
                }
                None => String::new(),
            };
            bail!("interrupted after {} steps, no adapter written{resume}", tuner.steps_done());
        }
        let mut output = output;
        tuner.adapter()?.to_gguf()?.write_to(&mut output)?;
        output.commit()?;
        if !args.quiet {
            eprintln!("{}; wrote {}", report.summary(), args.output.display());
        }
        if args.report.is_some() {
            println!("{}", report.json(&tuner)?);
        }
        Ok(())
    }

    /// The library's settings from the flags.
    fn tune_config(args: &TuneArgs) -> Result<TuneConfig> {
        let targets = args
            .targets
            .iter()
            .map(|t| {
                BlockMatrix::named(t.trim()).with_context(|| {
                    format!("--targets takes q,k,v,o,gate,up,down (any of them), not {t:?}")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let memory_budget = match args.memory_budget {
            None => None,
            Some(Budget::Bytes(bytes)) => Some(bytes),
            Some(Budget::OfWeights(_)) => {
                bail!("--memory-budget takes a size such as 300MB or 1.5GiB, not a share")
            }
        };
        let depth = if args.full_depth {
            Depth::Full
        } else {
            Depth::Windows { window: args.window, exits: args.exits.clone() }
        };
        let schedule = match args.schedule {
            ScheduleArg::Cyclic => Schedule::Cyclic,
            ScheduleArg::Random => Schedule::Random,
        };
        Ok(TuneConfig {
            rank: args.rank,
            alpha: args.alpha,
            targets,
            depth,
            schedule,
            seq_len: args.seq_len,
            sequences: args.sequences,
            learning_rate: args.lr,
            weight_decay: args.weight_decay,
            steps: args.steps,
            seed: args.seed,
            memory_budget,
            threads: args.threads,
        })
    }

    /// Where checkpoints go, checked: writable, and present when resuming.
    fn checkpoints(args: &TuneArgs) -> Result<Option<Checkpoints>> {
        let Some(path) = &args.checkpoint else { return Ok(None) };
        if args.checkpoint_every == 0 {
            bail!("--checkpoint-every takes a number of steps, at least 1");
        }
        if args.resume && !path.is_file() {
            bail!("--resume: there is no checkpoint at {}", path.display());
        }
        // Dropped uncommitted: only the check that a file can be written there.
        drop(AtomicFile::create(path)?);
        Ok(Some(Checkpoints { path: path.clone(), every: args.checkpoint_every }))
    }

    /// The model file: GGUF, or a `.lantern` container such as a compressed one
    /// (`lantern-lab convert --budget-bytes`), Edge-LLM's full setting.
    fn open(args: &TuneArgs) -> Result<Box<dyn ModelFile>> {
        let path = &args.model;
        let source = if args.no_mmap {
            ModelSource::read(path)
        } else {
            lantern_cli::mapped::explain_faults();
            // SAFETY: the mapping is read-only and lives as long as the model; the CLI never
            // writes model files. A file cut short by another process while it runs faults;
            // the process then ends with a message saying so.
            unsafe { ModelSource::mmap(path) }
        }
        .with_context(|| format!("opening {}", path.display()))?;
        open_model_file(source).with_context(|| format!("reading {}", path.display()))
    }
}

#[cfg(not(feature = "tune"))]
mod without_feature {
    use anyhow::{bail, Result};
    use clap::Args;

    /// Train a LoRA adapter on a text (needs a build with the `tune` feature).
    #[derive(Debug, Args)]
    pub(crate) struct TuneArgs {
        /// The command's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    }

    pub(crate) fn run(_: TuneArgs) -> Result<()> {
        bail!(
            "this lantern was built without training, which needs the `tune` feature; install \
             it with `cargo install lantern-cli --features tune`"
        )
    }
}
