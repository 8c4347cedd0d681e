//! The smallest host app: load a model, open a session, stream a completion.
//!
//! Run with: `cargo run --release --example host -- path/to/model.gguf`
//! (`cargo lantern fetch` downloads the default model and prints its path).

use std::io::Write;

use lantern::{Engine, GenerateConfig, Message, SessionConfig};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: host MODEL.gguf"))?;
    let engine = Engine::load(&path)?;
    let mut session = engine.session(SessionConfig::default())?;
    let question = [
        Message::system("You are a helpful assistant."),
        Message::user("What is the capital of France?"),
    ];
    for token in session.chat(&question, &GenerateConfig::greedy(64))? {
        print!("{}", token?.text);
        std::io::stdout().flush()?;
    }
    println!();
    Ok(())
}
