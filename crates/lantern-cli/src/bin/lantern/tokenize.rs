//! `lantern tokenize`: the token ids of a text. Only the vocabulary is read, so a
//! vocabulary-only GGUF (llama.cpp's `ggml-vocab-*.gguf`) works as well as a model.

use anyhow::{Context, Result};
use clap::Args;

use lantern::Tokenizer;
use lantern_cli::model_args::ModelArgs;
use lantern_io::{open_model_file, ModelSource};

/// Print the token ids of a prompt.
#[derive(Debug, Args)]
pub(crate) struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text; special tokens such as `<|im_start|>` are recognised.
    #[arg(short, long)]
    prompt: String,
    /// Do not add BOS (or EOS) even if the model asks for it (llama-tokenize's `--no-bos`).
    #[arg(long)]
    no_bos: bool,
    /// Treat special tokens written in the text as text (llama-tokenize's
    /// `--no-parse-special`).
    #[arg(long)]
    no_parse_special: bool,
}

pub(crate) fn run(args: TokenizeArgs) -> Result<()> {
    let path = args.model.path()?;
    let source = if args.model.no_mmap {
        ModelSource::read(&path)
    } else {
        lantern_cli::mapped::explain_faults();
        // SAFETY: the mapping is read-only and lives until the vocabulary is copied out of
        // it; the CLI never writes model files. A file cut short by another process while
        // it is read faults; the process then ends with a message saying so.
        unsafe { ModelSource::mmap(&path) }
    }
    .with_context(|| format!("opening {}", path.display()))?;
    let file = open_model_file(source).with_context(|| format!("reading {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(file.metadata())
        .with_context(|| format!("the vocabulary of {}", path.display()))?;
    let ids = tokenizer.tokenize(&args.prompt, !args.no_bos, !args.no_parse_special)?;
    println!("{ids:?}");
    Ok(())
}
