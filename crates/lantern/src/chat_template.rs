//! [`ChatTemplate`] and [`Message`]: a conversation to the prompt text a chat model was
//! trained on, through the Jinja template the model ships.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use minijinja::syntax::SyntaxConfig;
use minijinja::{context, Environment, ErrorKind};

use crate::{Error, Result, Tokenizer};

/// The name the template is stored under; it appears in error messages.
const NAME: &str = "chat_template";

/// Template instructions a render may run: the model file's template may loop for ever.
/// The most demanding real template measured (Gemma 4's, quadratic in the messages) needs
/// 4.4 M for 1,000 messages and 69 M for 4,000; this bounds a render to a few seconds.
const RENDER_FUEL: u64 = 100_000_000;

/// Bytes a rendered prompt may have: far more than any context holds (16 MiB is millions of
/// tokens), and far less than a hostile template could build.
const RENDER_BYTES: usize = 16 << 20;

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// Who speaks: `"system"`, `"user"` or `"assistant"` for most templates.
    pub role: String,
    /// What they say.
    pub content: String,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template. Compile once, render per prompt.
///
/// Turns a conversation ([`Message`]s) into the prompt text a chat model was trained on, by
/// running the Jinja template the model ships (`tokenizer.chat_template`). Templates see what
/// HuggingFace's `apply_chat_template` passes them: `messages` (a list of `{role, content}`
/// maps), `add_generation_prompt`, `bos_token` and `eos_token`. They are rendered as
/// `transformers` does, with `trim_blocks` and `lstrip_blocks` on, Python string methods
/// (`.strip()`, `.startswith()`, …) and `tojson` available, and a `raise_exception(msg)`
/// function.
///
/// # Example
///
/// ```
/// use lantern::{ChatTemplate, Message};
/// let template = ChatTemplate::new(
///     "{% for m in messages %}<|{{ m.role }}|>{{ m.content.strip() }}\n{% endfor %}\
///      {% if add_generation_prompt %}<|assistant|>{% endif %}",
/// )?;
/// let prompt = template.render(&[Message::user("  Hi ")], true)?;
/// assert_eq!(prompt, "<|user|>Hi\n<|assistant|>");
/// # Ok::<(), lantern::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles a Jinja chat template.
    ///
    /// By default, `bos_token` and `eos_token` render as empty strings; set them with
    /// [`ChatTemplate::with_bos_token`] / [`ChatTemplate::with_eos_token`], or use
    /// [`ChatTemplate::from_tokenizer`].
    ///
    /// # Errors
    /// [`Error::TemplateSyntax`] with the template engine's message and line.
    pub fn new(source: &str) -> Result<Self> {
        let mut env = Environment::new();
        // transformers renders with these two on; without them, templates written as one
        // block per line leave stray newlines and indentation in the prompt.
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.map_err(|source| Error::TemplateSyntax { source })?);
        // A template comes from the model file, which may loop for ever.
        env.set_fuel(Some(RENDER_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|source| Error::TemplateSyntax { source })?;
        Ok(Self { env, bos_token: String::new(), eos_token: String::new() })
    }

    /// The template stored in the tokenizer's model, with its BOS/EOS token strings; `None`
    /// if the model has no template.
    ///
    /// # Errors
    /// As [`ChatTemplate::new`].
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Option<Self>> {
        let Some(source) = tokenizer.chat_template() else { return Ok(None) };
        Ok(Some(Self::new(source)?.with_tokens_of(tokenizer)))
    }

    /// Sets `bos_token` and `eos_token` to the tokenizer's BOS and EOS token strings.
    #[must_use]
    pub fn with_tokens_of(self, tokenizer: &Tokenizer) -> Self {
        let token =
            |id: Option<u32>| id.and_then(|id| tokenizer.id_to_token(id)).unwrap_or_default();
        self.with_bos_token(token(tokenizer.bos())).with_eos_token(token(tokenizer.eos()))
    }

    /// Sets the text of `bos_token` in the template.
    ///
    /// By default, it is empty.
    #[must_use]
    pub fn with_bos_token(mut self, token: impl Into<String>) -> Self {
        self.bos_token = token.into();
        self
    }

    /// Sets the text of `eos_token` in the template.
    ///
    /// By default, it is empty.
    #[must_use]
    pub fn with_eos_token(mut self, token: impl Into<String>) -> Self {
        self.eos_token = token.into();
        self
    }

    /// Renders the conversation to prompt text. With `add_generation_prompt`, the template
    /// appends the header of the assistant's reply (`<|im_start|>assistant\n`), so the model
    /// answers rather than continuing the last message.
    ///
    /// The result may already start with the BOS token: encode it with
    /// `add_special = false` (see [`Tokenizer::encode`]).
    ///
    /// # Errors
    /// [`Error::TemplateRender`] if the template fails, including when it calls
    /// `raise_exception` (for example, on roles it does not accept).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<_> = messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let ctx = context! {
            messages,
            add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        let mut out = Capped { bytes: Vec::new(), limit: RENDER_BYTES };
        let render = || self.env.get_template(NAME)?.render_captured_to(ctx, &mut out).map(drop);
        // The template engine must not take the host down with it on a hostile template.
        let rendered = catch_unwind(AssertUnwindSafe(render)).unwrap_or_else(|panic| {
            let text = panic.downcast_ref::<String>().map(String::as_str);
            let what = text.or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("a panic");
            Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("the template engine failed: {what}"),
            ))
        });
        rendered.map_err(|source| Error::TemplateRender { source })?;
        // Every piece written was a str.
        String::from_utf8(out.bytes).map_err(|e| Error::TemplateRender {
            source: minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()),
        })
    }
}

/// The rendered text, refused past `limit` bytes.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            let limit = self.limit;
            return Err(io::Error::other(format!("the prompt would exceed {limit} bytes")));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `raise_exception(message)`, which HuggingFace templates call to reject a conversation.
fn raise_exception(message: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}
