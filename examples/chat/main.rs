//! A terminal chat over the facade: the conversation is kept in a session, so each turn
//! computes only its new tokens. `/reset` starts over, `/quit` leaves.
//!
//! Run with: `cargo run --release --example chat -- path/to/model.gguf`
//! (`cargo lantern fetch` downloads the default model and prints its path; `cargo chat`
//! runs the full-featured `lantern chat`, which fetches it by itself).

use std::io::{BufRead, Write};

use lantern::{Engine, GenerateConfig, Message, SamplerConfig, SessionConfig};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: chat MODEL.gguf"))?;
    let engine = Engine::load(&path)?;
    let mut session = engine.session(SessionConfig::default())?;
    let config = GenerateConfig::default().max_tokens(512).sampler(SamplerConfig::default());
    let mut messages = Vec::new();
    let mut stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        match line.trim() {
            "/quit" => break,
            "/reset" => {
                session.reset();
                messages.clear();
                continue;
            }
            "" => continue,
            text => messages.push(Message::user(text)),
        }
        let reply = session.chat(&messages, &config)?.for_each_text(|text| {
            let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
        })?;
        println!();
        messages.push(Message::assistant(reply.text));
    }
    Ok(())
}
