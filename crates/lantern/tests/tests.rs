//! The facade crate's integration tests, one binary (see `autotests = false`).

mod chat_template;
mod testutil;
mod tokenizer;
