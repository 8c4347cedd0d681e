//! The facade crate's integration tests, one binary (see `autotests = false`).

mod bad_input;
mod chat_template;
mod chat_template_reference;
mod faults;
mod generation;
mod llama_vocab;
mod perplexity;
mod testutil;
mod tokenizer;
