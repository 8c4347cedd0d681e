//! `lantern-lab trace`: greedy decoding with the top candidates of every step, to compare
//! token by token with another implementation and to see how close each choice was.

use anyhow::Result;
use clap::Args;

use lantern_cli::model_args::ModelArgs;

/// Greedy-decode a prompt, printing each step's top logits.
#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt; special tokens are recognised.
    #[arg(short, long)]
    prompt: String,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 64)]
    n_predict: usize,
    /// Candidates shown per step.
    #[arg(long, default_value_t = 3)]
    top: usize,
}

pub(crate) fn run(args: TraceArgs) -> Result<()> {
    let engine = args.model.engine()?;
    let tokenizer = engine.tokenizer();
    let mut session = engine.session(args.model.session_config()?)?;
    let prompt = tokenizer.encode(&args.prompt, true)?;
    println!("prompt {prompt:?}");
    let mut logits = session.eval(&prompt, prompt.len() - 1)?.to_vec();
    for step in 0..args.n_predict {
        let mut ranked: Vec<(u32, f32)> =
            logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<String> =
            ranked.iter().take(args.top).map(|(id, l)| format!("{id}:{l:.4}")).collect();
        let best = ranked[0].0;
        let text = tokenizer.decode(&[best], false)?;
        println!(
            "{step:3} {best:6} {text:?} | {} | margin {:.4}",
            top.join(" "),
            ranked[0].1 - ranked[1].1
        );
        if tokenizer.is_stop_token(best) || step + 1 == args.n_predict {
            break;
        }
        logits = session.eval(&[best], 0)?.to_vec();
    }
    Ok(())
}
