//! The real chat templates of the model families render to the same text as HuggingFace
//! transformers' `apply_chat_template` (Python jinja2 with transformers' settings).
//!
//! The expected texts are pinned in `data/chat_templates.json`, made by
//!
//! ```sh
//! LANTERN_LLAMA_MODELS=path/to/llama.cpp/models \
//!     python3 scripts/render_chat_templates.py > crates/lantern/tests/data/chat_templates.json
//! ```
//!
//! The template sources are read from `$LANTERN_LLAMA_MODELS/templates/` (llama.cpp's copies
//! of each family's `chat_template`), the default model's from the model itself.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use lantern::{ChatTemplate, Message, TemplateValue, Tokenizer};

use crate::testutil::model_metadata;

/// What `scripts/render_chat_templates.py` printed.
const REFERENCE: &str = include_str!("data/chat_templates.json");

/// 26 July 2024, 00:00 UTC: the moment the reference's `strftime_now` formats.
const REFERENCE_TIME: Duration = Duration::from_secs(1_721_952_000);

/// `value[key]` as a string; `None` if it is missing or not a string.
fn text(value: &TemplateValue, key: &str) -> Option<String> {
    value.get_attr(key).ok()?.as_str().map(str::to_owned)
}

fn items(value: &TemplateValue) -> Vec<TemplateValue> {
    value.try_iter().expect("a list or a map").collect()
}

/// `$LANTERN_LLAMA_MODELS/templates`, or `None` (with a note) where it is not set and this is
/// not CI.
fn templates_dir() -> Option<PathBuf> {
    match std::env::var_os("LANTERN_LLAMA_MODELS").filter(|dir| !dir.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("templates")),
        None if std::env::var_os("CI").is_some() => {
            panic!("LANTERN_LLAMA_MODELS is not set: point it at llama.cpp's models/ directory")
        }
        None => {
            eprintln!(
                "skipped: the real chat templates were not checked, because LANTERN_LLAMA_MODELS \
                 (llama.cpp's models/ directory) is not set"
            );
            None
        }
    }
}

/// A conversation of the reference: its messages, whether it asks for the generation
/// prompt, and the extra variables.
struct Conversation {
    name: String,
    messages: Vec<Message>,
    add_generation_prompt: bool,
    extra: Vec<(String, TemplateValue)>,
}

fn conversations(reference: &TemplateValue) -> Vec<Conversation> {
    let all = reference.get_attr("conversations").unwrap();
    items(&all)
        .into_iter()
        .map(|name| {
            let c = all.get_item(&name).unwrap();
            let messages = items(&c.get_attr("messages").unwrap())
                .iter()
                .map(|m| Message::new(text(m, "role").unwrap(), text(m, "content").unwrap()))
                .collect();
            let extra = c.get_attr("extra").unwrap();
            let extra = items(&extra)
                .into_iter()
                .map(|key| (key.as_str().unwrap().to_owned(), extra.get_item(&key).unwrap()))
                .collect();
            Conversation {
                name: name.as_str().unwrap().to_owned(),
                messages,
                add_generation_prompt: c.get_attr("add_generation_prompt").unwrap().is_true(),
                extra,
            }
        })
        .collect()
}

/// One family's template, with its BOS/EOS strings and the reference's clock.
fn template_of(family: &TemplateValue, dir: &std::path::Path) -> ChatTemplate {
    let source = match text(family, "file") {
        Some(file) => std::fs::read_to_string(dir.join(&file))
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.join(file).display())),
        None => {
            let tokenizer = Tokenizer::from_gguf(&model_metadata()).unwrap();
            tokenizer.chat_template().expect("the default model has a template").to_owned()
        }
    };
    let name = text(family, "family").unwrap();
    ChatTemplate::new(&source)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .with_bos_token(text(family, "bos_token").unwrap())
        .with_eos_token(text(family, "eos_token").unwrap())
        .with_time(UNIX_EPOCH + REFERENCE_TIME)
}

/// Whether lantern's render agrees with the reference's: the same text (or its sha256), an
/// error carrying the message where the template raised one, or an error where Python
/// failed otherwise (its messages are Python's own, so only the failure is compared).
fn agrees(
    expected: &TemplateValue,
    got: &lantern::Result<String>,
) -> std::result::Result<(), String> {
    if let Some(digest) = text(expected, "sha256") {
        return match got {
            Ok(text) if sha256(text) == digest => Ok(()),
            Ok(text) => Err(format!("a different text:\n{text:?}")),
            Err(e) => Err(format!("expected a text, got the error {e}")),
        };
    }
    if let Some(failure) = text(expected, "failure") {
        return match got {
            Err(_) => Ok(()),
            Ok(text) => Err(format!("Python failed ({failure}), lantern rendered {text:?}")),
        };
    }
    match (text(expected, "text"), text(expected, "error"), got) {
        (Some(want), _, Ok(text)) if *text == want => Ok(()),
        (Some(want), _, Ok(text)) => Err(format!("expected\n{want:?}\ngot\n{text:?}")),
        (Some(_), _, Err(e)) => Err(format!("expected a text, got the error {e}")),
        (_, Some(want), Err(e)) if e.to_string().contains(&want) => Ok(()),
        (_, Some(want), got) => Err(format!("expected the error {want:?}, got {got:?}")),
        _ => Err("the reference holds no text, digest, error or failure".to_owned()),
    }
}

fn sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn render(template: &ChatTemplate, c: &Conversation) -> lantern::Result<String> {
    let extra: Vec<(&str, TemplateValue)> =
        c.extra.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    template.render_with(&c.messages, c.add_generation_prompt, &extra)
}

#[test]
fn real_templates_render_as_transformers_does() {
    let Some(dir) = templates_dir() else { return };
    let reference: TemplateValue = serde_json::from_str(REFERENCE).unwrap();
    let conversations = conversations(&reference);
    let mut table = format!(
        "| family | {} |\n|---|{}\n",
        conversations.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" | "),
        "---|".repeat(conversations.len())
    );
    let mut failures = Vec::new();
    let families = items(&reference.get_attr("families").unwrap());
    for family in &families {
        let name = text(family, "family").unwrap();
        let template = template_of(family, &dir);
        let renders = family.get_attr("renders").unwrap();
        table.push_str(&format!("| {name} |"));
        for c in &conversations {
            let got = render(&template, c);
            let expected = renders.get_attr(&c.name).unwrap();
            let cell = match (agrees(&expected, &got), got.is_err()) {
                (Ok(()), false) => "same text",
                (Ok(()), true) => "same error",
                (Err(why), _) => {
                    failures.push(format!("{name} / {}: {why}", c.name));
                    "DIFFERS"
                }
            };
            table.push_str(&format!(" {cell} |"));
        }
        table.push('\n');
    }
    println!("{table}");
    assert_eq!(families.len(), 13, "the reference covers 13 templates");
    assert!(failures.is_empty(), "{}\n\n{}", table, failures.join("\n\n"));
}

/// Where lantern and transformers part on llama.cpp's other templates, and why; the test
/// fails if any other render differs, or if one of these stops differing.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    // Floats print through the template engine's own formatting, `0.00001` and `1e-5`
    // where Python writes `1e-05` (only below 1e-4 and from 1e16 up).
    ("Apriel-1.6-15b-Thinker-fixed.jinja", "tools_prompt", "float 1e-05 in a dict's text"),
    ("GigaChat3-10B-A1.8B.jinja", "tools_prompt", "float 1e-05 printed"),
    ("GigaChat3.1-10B-A1.8B.jinja", "tools_prompt", "float 1e-05 printed"),
    ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja", "tools_prompt", "float 1e-05 printed"),
    ("Qwen3-Coder.jinja", "tools_prompt", "float 1e-05 printed"),
    ("meetkai-functionary-medium-v3.2.jinja", "tools_prompt", "float 1e-05 printed"),
    ("unsloth-Apriel-1.5.jinja", "tools_prompt", "float 1e-05 in a dict's text"),
    // Iterating none is an empty loop for the engine, Python's TypeError: these templates
    // render where transformers refuses a conversation without tools.
    ("CohereForAI-c4ai-command-r-plus-tool_use.jinja", "*", "iterates tools=None"),
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", "*", "iterates tools=None"),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "*", "iterates tools=None"),
    // `tojson` of a generator (`map` without `list`): Python cannot, the engine writes a list.
    ("llama-cpp-deepseek-r1.jinja", "tools_prompt", "tojson of a generator"),
    // `"…"|safe + text`: jinja2's Markup escapes the plain operand (`"` as `&#34;`), the
    // engine concatenates the two as they are.
    ("meetkai-functionary-medium-v3.1.jinja", "tools_prompt", "Markup concatenation escapes"),
];

#[test]
fn every_real_template_renders_as_transformers_does_or_a_known_difference() {
    let Some(dir) = templates_dir() else { return };
    let reference: TemplateValue = serde_json::from_str(REFERENCE).unwrap();
    let conversations = conversations(&reference);
    let all = reference.get_attr("all_templates").unwrap();
    let bos = text(&all, "bos_token").unwrap();
    let eos = text(&all, "eos_token").unwrap();
    let renders = all.get_attr("renders").unwrap();
    let (mut same, mut total, mut differences) = (0, 0, Vec::new());
    for file in items(&renders) {
        let file = file.as_str().unwrap().to_owned();
        let expected = renders.get_attr(&file).unwrap();
        let source = std::fs::read_to_string(dir.join(&file)).unwrap();
        let template = match (ChatTemplate::new(&source), text(&expected, "compile_failure")) {
            (Ok(t), None) => t.with_bos_token(&bos).with_eos_token(&eos),
            (Err(_), Some(_)) => continue,
            (got, want) => panic!("{file}: compiled {:?}, Python: {want:?}", got.err()),
        };
        let template = template.with_time(UNIX_EPOCH + REFERENCE_TIME);
        for c in &conversations {
            total += 1;
            match agrees(&expected.get_attr(&c.name).unwrap(), &render(&template, c)) {
                Ok(()) => same += 1,
                Err(why) => differences.push((file.clone(), c.name.clone(), why)),
            }
        }
    }
    println!("{same} of {total} renders of {} templates identical", items(&renders).len());
    let known = |file: &str, name: &str| {
        KNOWN_DIFFERENCES.iter().any(|(f, n, _)| *f == file && (*n == "*" || *n == name))
    };
    let unknown: Vec<String> = differences
        .iter()
        .filter(|(file, name, _)| !known(file, name))
        .map(|(file, name, why)| format!("{file} / {name}: {why}"))
        .collect();
    assert!(unknown.is_empty(), "{}", unknown.join("\n\n"));
    for (file, name, why) in KNOWN_DIFFERENCES {
        assert!(
            differences.iter().any(|(f, n, _)| f == file && (*name == "*" || n == name)),
            "{file} / {name} ({why}) now renders as transformers does: drop it from the list"
        );
    }
}
