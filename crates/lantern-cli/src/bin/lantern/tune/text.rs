//! The training data of `lantern tune`: a plain text, or conversations rendered with the
//! model's chat template, as one stream of tokens.
//!
//! Files are read and checked before the model loads, so that a missing file or a bad line
//! is reported at once.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use lantern::{ChatTemplate, Message, Tokenizer};
use lantern_io::Metadata;
use serde_json::Value;

/// Training data, read but not yet tokenized.
#[derive(Debug)]
pub(super) struct Data {
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Text(String),
    /// The conversations, and the file's modification time, which the template's date
    /// (`strftime_now`) is pinned to so that the tokens do not change from day to day: a
    /// checkpoint is resumed only on the same tokens.
    Chat(Vec<Vec<Message>>, SystemTime),
}

impl Data {
    /// A plain UTF-8 text.
    pub(super) fn read_text(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
        Ok(Self { name: name(path), kind: Kind::Text(text) })
    }

    /// Conversations, one JSON object `{"messages":[{"role":…,"content":…},…]}` a line
    /// (blank lines skipped).
    pub(super) fn read_chat(path: &Path) -> Result<Self> {
        let read = |e| format!("reading {}: {e}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!(read(e)))?;
        let modified = std::fs::metadata(path).and_then(|m| m.modified());
        let mut conversations = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = || format!("{} line {}", path.display(), i + 1);
            let value: Value = serde_json::from_str(line).with_context(at)?;
            conversations.push(messages(&value).with_context(at)?);
        }
        if conversations.is_empty() {
            bail!("{} holds no conversation", path.display());
        }
        let time = modified.unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Self { name: name(path), kind: Kind::Chat(conversations, time) })
    }

    /// The file's name, for reports.
    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

/// The tokens of `data` for the model whose metadata is `meta`: a text with the BOS the
/// model asks for, conversations each rendered whole by the chat template, one after another.
pub(super) fn training_tokens(meta: &Metadata, data: &Data) -> Result<Vec<u32>> {
    let tokenizer = Tokenizer::from_gguf(meta).context("reading the vocabulary")?;
    match &data.kind {
        Kind::Text(text) => Ok(tokenizer.encode(text, true)?),
        Kind::Chat(conversations, time) => {
            let template = ChatTemplate::from_tokenizer(&tokenizer)
                .context("reading the chat template")?
                .context("the model has no chat template: train on --text instead")?
                .with_time(*time);
            let mut tokens = Vec::new();
            for (i, messages) in conversations.iter().enumerate() {
                let rendered = template
                    .render(messages, false)
                    .with_context(|| format!("rendering conversation {}", i + 1))?;
                // The template writes any BOS itself.
                tokens.extend(tokenizer.encode(&rendered, false)?);
            }
            Ok(tokens)
        }
    }
}

/// The messages of one line's conversation.
fn messages(value: &Value) -> Result<Vec<Message>> {
    let Some(list) = value.get("messages").and_then(Value::as_array) else {
        bail!(r#"expected {{"messages":[{{"role":…,"content":…}},…]}}"#);
    };
    if list.is_empty() {
        bail!("a conversation with no messages");
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |key: &str| m.get(key).and_then(Value::as_str);
            match (field("role"), field("content")) {
                (Some(role), Some(content)) => Ok(Message::new(role, content)),
                _ => bail!("message {} needs a string role and a string content", i + 1),
            }
        })
        .collect()
}

fn name(path: &Path) -> String {
    path.file_name().map_or("?".into(), |n| n.to_string_lossy().into_owned())
}
