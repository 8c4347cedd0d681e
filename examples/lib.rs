//! Nothing to link: this package only carries the examples (`cargo run --release --example
//! chat -- MODEL.gguf`, `cargo run --release --example host -- MODEL.gguf`), so that the
//! published `lantern` crate does not point outside its own folder.
