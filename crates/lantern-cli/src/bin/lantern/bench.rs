//! `lantern bench`: prompt and generation speed, measured as `llama-bench` measures them.
//!
//! pp N: N random tokens as one prompt on a fresh cache. tg N: N tokens decoded one at a
//! time on a fresh cache. Each test is repeated and reported as mean ± standard deviation
//! of tokens per second, in the same table shape as llama-bench so the two line up.

use anyhow::{bail, Result};
use clap::Args;
use lantern_cli::measure::{generation_speed, prompt_speed};
use lantern_cli::model_args::{model_name, stream_summary, ModelArgs};
use rand::{Rng, SeedableRng};

/// Measure prompt (pp) and generation (tg) speed.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt lengths to test (comma-separated); 0 skips.
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',', default_value = "128,512")]
    n_prompt: Vec<usize>,
    /// Generation lengths to test (comma-separated); 0 skips.
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', default_value = "128")]
    n_gen: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short, long, default_value_t = 5)]
    repetitions: usize,
    /// Thread counts to test (comma-separated). By default, the one from --threads or all CPUs.
    #[arg(long = "thread-list", value_delimiter = ',')]
    thread_list: Vec<usize>,
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    let engine = args.model.engine()?;
    let vocab = engine.config().vocab_size as u32;
    let base = args.model.session_config()?;
    let threads =
        if args.thread_list.is_empty() { vec![base.threads] } else { args.thread_list.clone() };
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    println!("| model | threads | test | t/s |");
    println!("| --- | ---: | ---: | ---: |");
    let name = model_name(&engine);
    // The KV cache holds the longest test, or what --ctx-size gives if that holds it.
    let need =
        args.n_prompt.iter().chain(&args.n_gen).copied().max().unwrap_or(0).saturating_add(1);
    let ctx = match args.model.ctx_size {
        Some(ctx) if ctx < need => {
            bail!("the longest test needs {need} positions; --ctx-size {ctx} holds fewer")
        }
        Some(ctx) => ctx,
        None => need.max(16),
    };
    for &t in &threads {
        let mut session = engine.session(base.clone().threads(t).ctx_len(ctx))?;
        let tests = args
            .n_prompt
            .iter()
            .filter(|&&n| n > 0)
            .map(|&n| ("pp", n))
            .chain(args.n_gen.iter().filter(|&&n| n > 0).map(|&n| ("tg", n)));
        for (kind, n) in tests {
            let mut speeds = Vec::with_capacity(args.repetitions);
            let mut streamed = None;
            // One warm-up run, as llama-bench does.
            for rep in 0..=args.repetitions {
                let tokens: Vec<u32> = (0..n).map(|_| rng.random_range(0..vocab)).collect();
                let speed = if kind == "pp" {
                    prompt_speed(&mut session, &tokens)?
                } else {
                    generation_speed(&mut session, &[], &tokens)?
                };
                if rep == 0 {
                    streamed = engine.stream_stats();
                } else {
                    speeds.push(speed);
                }
            }
            let mean = speeds.iter().sum::<f64>() / speeds.len() as f64;
            let sd = (speeds.iter().map(|s| (s - mean).powi(2)).sum::<f64>()
                / (speeds.len().max(2) - 1) as f64)
                .sqrt();
            println!("| {name} | {t} | {kind}{n} | {mean:.2} ± {sd:.2} |");
            if let (Some(before), Some(after)) = (streamed, engine.stream_stats()) {
                // A prompt is one pass; a generation test is a pass per token.
                let passes = args.repetitions * if kind == "pp" { 1 } else { n };
                eprintln!("{kind}{n}: {}", stream_summary(&after.since(&before), passes));
            }
        }
    }
    Ok(())
}
