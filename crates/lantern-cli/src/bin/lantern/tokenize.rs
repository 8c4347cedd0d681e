//! `lantern tokenize`: the token ids of a text.

use anyhow::Result;
use clap::Args;

use lantern_cli::model_args::ModelArgs;

/// Print the token ids of a prompt.
#[derive(Debug, Args)]
pub(crate) struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text; special tokens such as `<|im_start|>` are recognised.
    #[arg(short, long)]
    prompt: String,
}

pub(crate) fn run(args: TokenizeArgs) -> Result<()> {
    let engine = args.model.engine()?;
    let ids = engine.tokenizer().encode(&args.prompt, true)?;
    println!("{ids:?}");
    Ok(())
}
