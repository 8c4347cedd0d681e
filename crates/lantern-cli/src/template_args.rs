//! Variables for the chat template, as llama.cpp's `--chat-template-kwargs` gives them.

use anyhow::{bail, Context, Result};
use clap::Args;
use lantern::TemplateValue;

/// What the chat template reads besides the messages.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// Variables for the chat template, as a JSON object: '{"enable_thinking": false}'
    /// answers Qwen3 without its reasoning; '{"tools": [...]}' lists functions
    #[arg(long, value_name = "JSON")]
    chat_template_kwargs: Option<String>,
}

impl TemplateArgs {
    /// The variables, by name; none by default.
    ///
    /// # Errors
    /// When the flag is not a JSON object.
    pub fn vars(&self) -> Result<Vec<(String, TemplateValue)>> {
        let Some(json) = &self.chat_template_kwargs else { return Ok(Vec::new()) };
        let value: serde_json::Value =
            serde_json::from_str(json).context("--chat-template-kwargs is not JSON")?;
        let serde_json::Value::Object(vars) = value else {
            bail!("--chat-template-kwargs must be a JSON object, such as '{{\"enable_thinking\": false}}'");
        };
        vars.into_iter()
            .map(|(name, v)| Ok((name, serde_json::from_value::<TemplateValue>(v)?)))
            .collect()
    }
}

/// `vars` as [`lantern::Session::chat_with`] takes them.
pub fn borrowed(vars: &[(String, TemplateValue)]) -> Vec<(&str, TemplateValue)> {
    vars.iter().map(|(name, value)| (name.as_str(), value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: &str) -> TemplateArgs {
        TemplateArgs { chat_template_kwargs: Some(json.into()) }
    }

    #[test]
    fn an_object_gives_its_variables_and_anything_else_an_error() {
        let vars = args(r#"{"enable_thinking": false, "n": 3}"#).vars().unwrap();
        assert_eq!(vars[0].0, "enable_thinking");
        assert!(!vars[0].1.is_true());
        assert_eq!(vars[1].1.as_i64(), Some(3));
        for bad in ["[1]", "false", "{", ""] {
            assert!(args(bad).vars().is_err(), "{bad}");
        }
    }
}
