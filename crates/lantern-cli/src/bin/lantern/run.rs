//! `lantern run`: complete one prompt, streaming the text.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use lantern::{GenerateConfig, Message};

use lantern_cli::model_args::{peak_rss, stream_summary, ModelArgs};
use lantern_cli::sampling_args::SamplingArgs;
use lantern_cli::template_args::{self, TemplateArgs};

/// Complete a prompt.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    template: TemplateArgs,
    /// The prompt.
    #[arg(short, long)]
    prompt: String,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    n_predict: usize,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Stop when this string appears (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print the generated token ids after the text.
    #[arg(long)]
    ids: bool,
}

pub(crate) fn run(args: RunArgs) -> Result<()> {
    let vars = args.template.vars()?;
    let template_vars = template_args::borrowed(&vars);
    let engine = args.model.engine()?;
    let streamed_before = engine.stream_stats();
    let mut session = engine.session(args.model.session_config()?)?;
    let mut config =
        GenerateConfig::default().max_tokens(args.n_predict).sampler(args.sampling.config());
    for stop in &args.stop {
        config = config.stop(stop.clone());
    }
    let generation = if args.chat {
        session.chat_with(&[Message::user(args.prompt.as_str())], &template_vars, &config)?
    } else {
        session.generate(&args.prompt, &config)?
    };
    let mut stdout = std::io::stdout().lock();
    let completion = generation.for_each_text(|text| {
        // A closed pipe only ends the output early.
        let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    })?;
    writeln!(stdout)?;
    if args.ids {
        writeln!(stdout, "{:?}", completion.tokens)?;
    }
    let t = completion.timings;
    eprintln!(
        "load {:.0} ms | prompt {} tokens, {:.1} tok/s | generated {} tokens, {:.1} tok/s | stop: {:?} | peak RSS {:.1} MiB",
        engine.info().load_time.as_secs_f64() * 1e3,
        t.prompt_tokens,
        t.prompt_tokens_per_second(),
        t.generated_tokens,
        t.generate_tokens_per_second(),
        completion.stop_reason,
        peak_rss().unwrap_or(0) as f64 / (1024.0 * 1024.0),
    );
    if let (Some(before), Some(after)) = (streamed_before, engine.stream_stats()) {
        // A pass for the prompt, then one per generated token but the last.
        let passes = t.prompt_tokens.min(1) + t.generated_tokens.saturating_sub(1);
        eprintln!("{}", stream_summary(&after.since(&before), passes));
    }
    Ok(())
}
