//! Chat templates: the default model's template, HuggingFace rendering rules, errors.

use std::time::{Duration, UNIX_EPOCH};

use lantern::{ChatTemplate, Error, Message, TemplateValue, Tokenizer};

use crate::testutil::model_metadata;

/// SmolLM2-135M-Instruct's `tokenizer.chat_template`.
const SMOLLM: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[test]
fn smollm_template_adds_default_system_prompt() {
    let t = ChatTemplate::new(SMOLLM).unwrap();
    let out = t.render(&[Message::user("Hi")], true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn smollm_template_keeps_given_system_prompt_and_history() {
    let t = ChatTemplate::new(SMOLLM).unwrap();
    let messages =
        [Message::system("Be brief."), Message::user("Hi"), Message::assistant("Hello!")];
    let out = t.render(&messages, false).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n"
    );
}

#[test]
fn template_from_model_matches_and_tokenizes_to_reference() {
    let tokenizer = Tokenizer::from_gguf(&model_metadata()).unwrap();
    assert_eq!(tokenizer.chat_template(), Some(SMOLLM));
    let t = ChatTemplate::from_tokenizer(&tokenizer).unwrap().expect("the model has a template");
    let prompt = t.render(&[Message::user("What is the capital of France?")], true).unwrap();
    let ids = tokenizer.encode(&prompt, false).unwrap();
    let tail = [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198];
    assert!(ids.ends_with(&tail), "{ids:?}");
}

#[test]
fn renders_like_transformers() {
    // trim_blocks + lstrip_blocks: block tags on their own lines leave no blank lines.
    let source = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content.strip() }}]\n    {% endif %}\n{% endfor %}";
    let t = ChatTemplate::new(source).unwrap();
    assert_eq!(
        t.render(&[Message::user("  a "), Message::user("b")], false).unwrap(),
        "[a]\n[b]\n"
    );
    // Python string methods, bos/eos strings, and tojson.
    let source =
        "{{ bos_token }}{{ messages[0].content.upper() }}{{ messages[0].role.startswith('us') }}\
                  {{ messages[0].content | tojson }}{{ eos_token }}";
    let t = ChatTemplate::new(source).unwrap().with_bos_token("<s>").with_eos_token("</s>");
    assert_eq!(t.render(&[Message::user("hi")], false).unwrap(), "<s>HITrue\"hi\"</s>");
}

#[test]
fn syntax_and_render_errors_carry_the_message() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }}").unwrap_err();
    assert!(matches!(err, Error::TemplateSyntax { .. }), "{err}");
    assert!(err.to_string().contains("unexpected end of input"), "{err}");

    let source = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}";
    let t = ChatTemplate::new(source).unwrap();
    let err = t.render(&[Message::assistant("x")], false).unwrap_err();
    assert!(matches!(err, Error::TemplateRender { .. }), "{err}");
    assert!(err.to_string().contains("Conversation must start with user"), "{err}");
    assert!(t.render(&[Message::user("x")], false).unwrap().is_empty());
}

#[test]
fn hostile_templates_fail_in_bounded_time_and_memory() {
    // A template is part of the model file: it may loop for ever or build a huge prompt.
    let cases = [
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
        "{% for i in range(1000) %}{{ 'x' * 10000000 }}{% endfor %}",
        // Dumping a large value over and over writes nothing, but costs fuel.
        "{% set s = 'x' * 1000000 %}{% for i in range(1000000) %}{% set j = s | tojson %}{% endfor %}",
        "{% set s = 'x' * 20000000 %}{{ s | tojson | length }}",
    ];
    for source in cases {
        let start = std::time::Instant::now();
        let err = ChatTemplate::new(source).unwrap().render(&[Message::user("Hi")], true);
        assert!(matches!(err, Err(Error::TemplateRender { .. })), "{source}: {err:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{source}");
    }
}

#[test]
fn a_reversed_slice_of_no_messages_renders() {
    // Qwen3's template walks `messages[::-1]`; with no messages, the template engine once
    // indexed past the end and panicked.
    let t = ChatTemplate::new("{% for m in messages[::-1] %}{{ m.role }}{% endfor %}|").unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "|");
    assert_eq!(
        t.render(&[Message::user("a"), Message::system("b")], false).unwrap(),
        "systemuser|"
    );
}

#[test]
fn long_conversations_render_within_the_fuel() {
    let t = ChatTemplate::new(SMOLLM).unwrap();
    let turn = [Message::user("How are you doing today?"), Message::assistant("Fine, thanks.")];
    let messages: Vec<Message> = turn.iter().cycle().take(4000).cloned().collect();
    let out = t.render(&messages, true).unwrap();
    assert_eq!(out.matches("<|im_start|>").count(), 4002);
}

#[test]
fn strftime_now_formats_the_pinned_moment_or_the_clock() {
    let source = "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}";
    // 26 July 2024, 13:05:09 UTC.
    let pinned = ChatTemplate::new(source)
        .unwrap()
        .with_time(UNIX_EPOCH + Duration::from_secs(1_721_999_109));
    assert_eq!(pinned.render(&[], false).unwrap(), "26 Jul 2024|2024-07-26 13:05");
    // Unpinned, it is today: a year of this century, not the pinned one's text.
    let today = ChatTemplate::new("{{ strftime_now('%Y') }}").unwrap().render(&[], false).unwrap();
    let year: u32 = today.parse().unwrap();
    assert!((2025..2100).contains(&year), "{today}");
    let err = ChatTemplate::new("{{ strftime_now('%Q') }}").unwrap().render(&[], false);
    assert!(err.unwrap_err().to_string().contains("%Q"));
}

#[test]
fn extra_variables_reach_the_template_and_replace_defaults() {
    let source = "{{ tools is none }} {{ documents is none }} {{ enable_thinking is defined }}\
                  {% if tools %} {{ tools | tojson }}{% endif %} {{ bos_token }}";
    let t = ChatTemplate::new(source).unwrap().with_bos_token("<s>");
    assert_eq!(t.render(&[], false).unwrap(), "True True False <s>");
    // JSON read into a TemplateValue keeps its keys in order, as Python's dicts do.
    let tools: TemplateValue =
        serde_json::from_str(r#"[{"name": "f", "args": {"z": 1.0, "a": [true, null]}}]"#).unwrap();
    let extra = [
        ("tools", tools),
        ("enable_thinking", TemplateValue::from(false)),
        ("bos_token", TemplateValue::from("<bos>")),
    ];
    assert_eq!(
        t.render_with(&[], false, &extra).unwrap(),
        r#"False True True [{"name": "f", "args": {"z": 1.0, "a": [true, null]}}] <bos>"#
    );
    for name in ["messages", "add_generation_prompt"] {
        let err = t.render_with(&[], false, &[(name, TemplateValue::from(1))]).unwrap_err();
        assert!(matches!(err, Error::TemplateRender { .. }) && err.to_string().contains(name));
    }
}

#[test]
fn tojson_writes_what_python_json_dumps_writes() {
    let source = "{{ messages[0] | tojson }}|{{ messages[0] | tojson(indent=2) }}|\
                  {{ messages[0] | tojson(sort_keys=true, separators=(',', ':')) }}|\
                  {{ messages[0].content | tojson(true) }}|{{ [1.5e-7, 1e16, 3] | tojson }}";
    let t = ChatTemplate::new(source).unwrap();
    let out = t.render(&[Message::user("<é\"\n>")], false).unwrap();
    assert_eq!(
        out,
        "{\"role\": \"user\", \"content\": \"<é\\\"\\n>\"}|\
         {\n  \"role\": \"user\",\n  \"content\": \"<é\\\"\\n>\"\n}|\
         {\"content\":\"<é\\\"\\n>\",\"role\":\"user\"}|\
         \"<\\u00e9\\\"\\n>\"|[1.5e-07, 1e+16, 3]"
    );
    let err = ChatTemplate::new("{{ undefined_thing | tojson }}").unwrap().render(&[], false);
    assert!(matches!(err, Err(Error::TemplateRender { .. })), "{err:?}");
}

#[test]
fn iterable_and_sequence_tests_answer_as_python_does() {
    // What jinja2 answers for each value (`tools is iterable and tools | length > 0` must be
    // false, not an error, for the tools=None transformers passes). A `namespace()` is a
    // map to the engine, and `map(...)` a list, so both are true for them; jinja2 says false
    // for the first and that the second (a generator) is no sequence.
    let cases = [
        ("'s'", "True True"),
        ("[1]", "True True"),
        ("{'a': 1}", "True True"),
        ("none", "False False"),
        ("tools", "False False"),
        ("1", "False False"),
        ("1.5", "False False"),
        ("true", "False False"),
        ("undefined_thing", "True True"),
    ];
    for (value, python) in cases {
        let source = format!("{{{{ ({value}) is iterable }}}} {{{{ ({value}) is sequence }}}}");
        let out = ChatTemplate::new(&source).unwrap().render(&[], false).unwrap();
        assert_eq!(out, python, "{value}");
    }
    let t = ChatTemplate::new("{% if tools is iterable and tools | length > 0 %}x{% endif %}.");
    assert_eq!(t.unwrap().render(&[], true).unwrap(), ".");
}
