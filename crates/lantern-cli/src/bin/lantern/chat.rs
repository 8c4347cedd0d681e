//! `lantern chat`: an interactive conversation in the terminal.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use lantern::{Error, GenerateConfig, Message};

use lantern_cli::model_args::{peak_rss, ModelArgs};
use lantern_cli::sampling_args::SamplingArgs;
use lantern_cli::template_args::{self, TemplateArgs};

/// Chat with a model; `/reset` starts over, `/quit` (or end of input) leaves, Ctrl-C stops
/// a reply.
#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    template: TemplateArgs,
    /// System prompt. By default, the template's own (if any).
    #[arg(long)]
    system: Option<String>,
    /// Most tokens per reply.
    #[arg(short = 'n', long = "n-predict", default_value_t = 1024)]
    n_predict: usize,
    /// Print speed and memory after each reply.
    #[arg(long)]
    stats: bool,
}

pub(crate) fn run(args: ChatArgs) -> Result<()> {
    let vars = args.template.vars()?;
    let template_vars = template_args::borrowed(&vars);
    let engine = args.model.engine()?;
    let mut session = engine.session(args.model.session_config()?)?;
    // Ctrl-C stops the reply being written (the conversation goes on), or leaves at the prompt.
    let replying = Arc::new(AtomicBool::new(false));
    let (cancel, busy) = (session.cancel_handle(), Arc::clone(&replying));
    ctrlc::set_handler(move || {
        if busy.load(Ordering::Relaxed) {
            cancel.cancel();
        } else {
            std::process::exit(130);
        }
    })
    .context("installing the Ctrl-C handler")?;
    let config =
        GenerateConfig::default().max_tokens(args.n_predict).sampler(args.sampling.config());
    let start: Vec<Message> = args.system.iter().map(Message::system).collect();
    let mut messages = start.clone();
    eprintln!(
        "lantern chat: {} ({} layers, loaded in {:.0} ms). /reset starts over, /quit leaves, \
         Ctrl-C stops a reply.",
        engine.info().path.as_deref().map_or("model".into(), |p| p.display().to_string()),
        engine.config().n_layers,
        engine.info().load_time.as_secs_f64() * 1e3
    );
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut line = Vec::new();
    loop {
        write!(stdout, "> ")?;
        stdout.flush()?;
        line.clear();
        if stdin.lock().read_until(b'\n', &mut line).context("reading input")? == 0 {
            break;
        }
        let Ok(input) = std::str::from_utf8(&line) else {
            eprintln!("error: the input is not valid UTF-8; please type it again");
            continue;
        };
        let input = input.trim();
        match input {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                session.reset();
                messages = start.clone();
                eprintln!("(conversation reset)");
                continue;
            }
            _ => {}
        }
        messages.push(Message::user(input));
        replying.store(true, Ordering::Relaxed);
        let mut left_out = 0;
        let reply = loop {
            match session.chat_with(&messages, &template_vars, &config) {
                // The conversation no longer fits: its oldest turn (a message and its reply)
                // is left out, as long as the new message has company.
                Err(Error::PromptTooLong { .. }) if messages.len() > start.len() + 1 => {
                    let turn = (messages.len() - start.len() - 1).min(2);
                    messages.drain(start.len()..start.len() + turn);
                    left_out += 1;
                }
                reply => {
                    break reply.and_then(|generation| {
                        generation.for_each_text(|text| {
                            let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
                        })
                    })
                }
            }
        };
        replying.store(false, Ordering::Relaxed);
        if left_out > 0 {
            let turns = if left_out == 1 { "turn".into() } else { format!("{left_out} turns") };
            eprintln!("\n(the context was full: the oldest {turns} left out)");
        }
        writeln!(stdout)?;
        match reply {
            Ok(completion) => {
                if args.stats {
                    let t = completion.timings;
                    eprintln!(
                        "[prompt {} tok, {:.1} tok/s | reply {} tok, {:.1} tok/s | peak RSS {:.1} MiB]",
                        t.prompt_tokens,
                        t.prompt_tokens_per_second(),
                        t.generated_tokens,
                        t.generate_tokens_per_second(),
                        peak_rss().unwrap_or(0) as f64 / (1024.0 * 1024.0)
                    );
                }
                messages.push(Message::assistant(completion.text));
            }
            Err(e) => {
                // The turn failed (for example a message longer than the context): drop it
                // and go on.
                messages.pop();
                eprintln!("error: {e}; /reset starts over");
            }
        }
    }
    Ok(())
}
