//! Progress bars on stderr, shared by the subcommands.
//!
//! indicatif draws nothing when stderr is not a terminal, so piping the CLI's output stays clean
//! without callers having to check.

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-counting bar of `len` bytes labelled `msg`; hidden when `quiet`.
pub fn bytes(len: u64, msg: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .expect("constant template is valid")
    .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(msg.to_owned())
}

/// A bar of `len` steps labelled `msg`; hidden when `quiet`.
pub fn count(len: u64, msg: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} eta {eta}")
        .expect("constant template is valid")
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(msg.to_owned())
}
