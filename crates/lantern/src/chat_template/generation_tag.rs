//! `{% generation %}…{% endgeneration %}`, the block transformers adds for training (its
//! `AssistantTracker` records where the assistant's text lies and renders the body as it
//! is). Some templates wrap each assistant turn in it (LFM2.5, Laguna); the template engine
//! does not know the tag, so it is rewritten to the block that renders its body unchanged,
//! `{% if true %}…{% endif %}`, keeping the tag's whitespace control (`-`, `+`) so
//! `trim_blocks` and `lstrip_blocks` treat it as they treated the original.

use std::borrow::Cow;

/// `source` with every `generation` / `endgeneration` block tag made an `if true` / `endif`.
pub(super) fn rewrite(source: &str) -> Cow<'_, str> {
    if !source.contains("generation") {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let (before, tag) = rest.split_at(start);
        out.push_str(before);
        match generation_tag(tag) {
            Some((len, replacement)) => {
                out.push_str(&replacement);
                rest = &tag[len..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// If `text` starts with a `generation` or `endgeneration` tag: its length and the tag that
/// replaces it.
fn generation_tag(text: &str) -> Option<(usize, String)> {
    let inner = text.strip_prefix("{%")?;
    let (open, inner) = control(inner);
    let inner = inner.trim_start();
    let (keyword, inner) = if let Some(after) = inner.strip_prefix("endgeneration") {
        ("endif", after)
    } else {
        ("if true", inner.strip_prefix("generation")?)
    };
    let inner = inner.trim_start();
    let (close, inner) = control(inner);
    let inner = inner.strip_prefix("%}")?;
    let len = text.len() - inner.len();
    Some((len, format!("{{%{open} {keyword} {close}%}}")))
}

/// A leading whitespace-control sign (`-` or `+`), if any, and the text after it.
fn control(text: &str) -> (&str, &str) {
    match text.as_bytes().first() {
        Some(b'-') => ("-", &text[1..]),
        Some(b'+') => ("+", &text[1..]),
        _ => ("", text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_generation_tags() {
        assert_eq!(
            rewrite("a{%- generation -%}b{% endgeneration %}c{% if add_generation_prompt %}"),
            "a{%- if true -%}b{% endif %}c{% if add_generation_prompt %}"
        );
        assert_eq!(rewrite("{%+generation+%}{%endgeneration-%}"), "{%+ if true +%}{% endif -%}");
        assert_eq!(
            rewrite("{{ generation }}{% set generations = 1 %}{%"),
            "{{ generation }}{% set generations = 1 %}{%"
        );
        assert!(matches!(rewrite("{% if x %}"), Cow::Borrowed(_)));
    }
}
