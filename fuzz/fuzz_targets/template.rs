//! Chat templates with arbitrary conversations: the real templates of the model families
//! (`LANTERN_TEMPLATES`, a directory of `.jinja` files such as llama.cpp's
//! `models/templates`), the default model's (`LANTERN_MODEL`), ChatML, and template sources
//! from the input itself, as a hostile model file could hold. Compiling and rendering must
//! give text or an error, never panic or hang.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use lantern::{ChatTemplate, Message, ModelSource, Tokenizer};
use lantern_io::GgufModel;
use lantern_test_support::models::CHATML;
use libfuzzer_sys::fuzz_target;

fn templates() -> &'static [ChatTemplate] {
    static TEMPLATES: OnceLock<Vec<ChatTemplate>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut sources = vec![CHATML.to_owned()];
        if let Some(path) = std::env::var_os("LANTERN_MODEL") {
            let source = ModelSource::read(path).expect("read LANTERN_MODEL");
            let model = GgufModel::open(source).expect("parse LANTERN_MODEL");
            let t = Tokenizer::from_gguf(model.metadata()).expect("build the tokenizer");
            sources.extend(t.chat_template().map(str::to_owned));
        }
        if let Some(dir) = std::env::var_os("LANTERN_TEMPLATES") {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .expect("read LANTERN_TEMPLATES")
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "jinja"))
                .collect();
            files.sort();
            sources.extend(files.iter().map(|f| std::fs::read_to_string(f).unwrap()));
        }
        // Templates the engine itself cannot compile are left out, as a model's would be.
        let compiled = sources.iter().filter_map(|s| ChatTemplate::new(s).ok());
        compiled.map(|t| t.with_bos_token("<s>").with_eos_token("</s>")).collect()
    })
}

#[derive(Arbitrary, Debug)]
enum Template {
    Known(u8),
    Source(String),
}

#[derive(Arbitrary, Debug)]
enum Role {
    System,
    User,
    Assistant,
    Tool,
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    template: Template,
    messages: Vec<(Role, String)>,
    add_generation_prompt: bool,
}

fuzz_target!(|input: Input| {
    let messages: Vec<Message> = input
        .messages
        .into_iter()
        .map(|(role, content)| {
            let role = match role {
                Role::System => "system".to_owned(),
                Role::User => "user".to_owned(),
                Role::Assistant => "assistant".to_owned(),
                Role::Tool => "tool".to_owned(),
                Role::Other(s) => s,
            };
            Message::new(role, content)
        })
        .collect();
    match input.template {
        Template::Known(i) => {
            let templates = templates();
            let template = &templates[usize::from(i) % templates.len()];
            let _ = template.render(&messages, input.add_generation_prompt);
        }
        Template::Source(source) => {
            if let Ok(template) = ChatTemplate::new(&source) {
                let _ = template.render(&messages, input.add_generation_prompt);
            }
        }
    }
});
