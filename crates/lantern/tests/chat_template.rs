//! Chat templates: the default model's template, HuggingFace rendering rules, errors.

use lantern::{ChatTemplate, Error, Message, Tokenizer};

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
