//! What `lantern tune` shows while it trains (a progress bar with the loss, tokens per second
//! and the process's peak memory) and when it is done (a summary line, and on request the
//! figures as JSON for scripts).

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use lantern_cli::model_args::peak_rss;
use lantern_quant::{StepReport, Tuner};

/// Losses the final loss is the mean of: one step's loss is noisy.
const FINAL_LOSS_STEPS: usize = 10;

/// The progress bar of a run.
pub(super) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over the run's steps, after a line on what it trains; nothing when `quiet`.
    pub(super) fn new(tuner: &Tuner<'_>, data: &str, quiet: bool) -> Result<Self> {
        let config = tuner.config();
        if quiet {
            return Ok(Self { bar: ProgressBar::hidden() });
        }
        let plan = tuner.plan();
        let exits: Vec<String> = plan.exits().iter().map(usize::to_string).collect();
        eprintln!(
            "tuning on {data}: window {} blocks, exits {}; rank {}, {} trained values; \
             about {} of memory at the peak",
            plan.window(),
            exits.join(","),
            config.rank,
            tuner.trained_values(),
            mib(tuner.memory_estimate()?.total())
        );
        let style = ProgressStyle::with_template("tuning [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .expect("constant template is valid")
            .progress_chars("=> ");
        let bar = ProgressBar::new(config.steps as u64).with_style(style);
        bar.set_position(tuner.steps_done() as u64);
        Ok(Self { bar })
    }

    /// Shows step `step`.
    pub(super) fn show(&self, step: &StepReport, report: &Report) {
        self.bar.set_position(step.step as u64);
        let rss = peak_rss().map_or(String::new(), |b| format!(" | peak RSS {}", mib(b)));
        self.bar.set_message(format!(
            "loss {:.3} (exit {}) | {:.0} tok/s{rss}",
            step.loss,
            step.exit,
            report.tokens_per_second()
        ));
    }

    /// Clears the bar.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The figures of the steps run.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// Steps done before this run (a resumed one).
    resumed_at: usize,
    losses: Vec<f64>,
    tokens: usize,
    seconds: f64,
    steps: usize,
}

impl Report {
    /// A report of a run that starts after `resumed_at` steps.
    pub(super) fn new(resumed_at: usize) -> Self {
        Self { resumed_at, steps: resumed_at, ..Self::default() }
    }

    /// Counts step `step`.
    pub(super) fn add(&mut self, step: &StepReport) {
        self.losses.push(step.loss);
        self.tokens += step.tokens;
        self.seconds += step.elapsed.as_secs_f64();
        self.steps = step.step;
    }

    fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }

    fn seconds_per_step(&self) -> f64 {
        self.seconds / self.losses.len().max(1) as f64
    }

    /// Mean loss of the last steps; `None` before any step.
    fn final_loss(&self) -> Option<f64> {
        let last = &self.losses[self.losses.len().saturating_sub(FINAL_LOSS_STEPS)..];
        (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64)
    }

    /// One line: steps, final loss, seconds per step, peak memory.
    pub(super) fn summary(&self) -> String {
        let resumed = if self.resumed_at > 0 {
            format!(" ({} after resuming)", self.losses.len())
        } else {
            String::new()
        };
        let loss = self.final_loss().map_or("none".into(), |l| format!("{l:.4}"));
        format!(
            "{} steps{resumed}: final loss {loss} (mean of the last {}), {:.3} s/step, \
             {:.0} tok/s, peak RSS {}",
            self.steps,
            self.losses.len().min(FINAL_LOSS_STEPS),
            self.seconds_per_step(),
            self.tokens_per_second(),
            peak_rss().map_or("unknown".into(), mib)
        )
    }

    /// The figures as one JSON object.
    pub(super) fn json(&self, tuner: &Tuner<'_>) -> Result<String> {
        let plan = tuner.plan();
        let value = serde_json::json!({
            "steps": self.steps,
            "steps_run": self.losses.len(),
            "sec_per_step": self.seconds_per_step(),
            "tokens_per_sec": self.tokens_per_second(),
            "peak_rss_bytes": peak_rss(),
            "estimated_peak_bytes": tuner.memory_estimate()?.total(),
            "final_loss": self.final_loss(),
            "first_loss": self.losses.first(),
            "window": plan.window(),
            "exits": plan.exits(),
            "trained_values": tuner.trained_values(),
        });
        Ok(value.to_string())
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
