//! Reporting SIMD tests that skip an instruction set this CPU lacks.
//!
//! A test that compares a SIMD kernel with its scalar twin can only run the comparison where
//! the CPU has the instructions; elsewhere it returns early and passes. [`skip`] makes that
//! visible: it prints a note (shown with `--nocapture` or when the test fails) and, when the
//! environment variable [`LOG_VAR`] (`LANTERN_SKIP_LOG`) names a file, appends one line to
//! it:
//!
//! ```text
//! <isa>\t<test>
//! ```
//!
//! `<isa>` is the instruction set as `lantern_core::kernels::Isa` displays it (`avx2`,
//! `avx512vnni`, `neon`, `neon+dotprod`), and `<test>` the full path of the running test as
//! libtest names it (`kernels::f16_row_kernels_agree_with_their_scalar_twin`). Each pair is
//! reported once per test binary, however often a test's helpers skip it. The file is only
//! ever appended to, so one log can collect every test binary of a `cargo test` run; start
//! it empty. `scripts/check-skips.sh` lists the skipped tests from it and fails if this
//! machine has one of the skipped instruction sets.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// The environment variable naming the skip log.
pub const LOG_VAR: &str = "LANTERN_SKIP_LOG";

/// The (isa, test) pairs this test binary has reported.
static REPORTED: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

/// Reports that the running test skipped the `isa` path because this CPU cannot run it;
/// `what` says what went unchecked.
///
/// Prints `note: <test>: this CPU cannot run the <isa> path; <what>` to stderr and, if
/// `$LANTERN_SKIP_LOG` is set, appends `<isa>\t<test>\n` to that file (creating it). The test
/// is named by the current thread, which libtest names after the test, so call this from
/// the test's own thread (a helper is fine, a thread the test spawns is not: it would be
/// logged as `<unnamed thread>`). Only the first report of each (`isa`, test) pair is printed
/// and logged.
///
/// Pass `isa` as `lantern_core::kernels::Isa` (or its `Display` string): the skip check
/// knows only those names.
///
/// # Panics
/// If `$LANTERN_SKIP_LOG` is set and the file cannot be opened or appended to: a log that
/// silently misses skips would make the check pass for the wrong reason.
///
/// # Example
/// Not run here: run, it would log the skip of a path this machine may well have.
/// ```no_run
/// # let has_dotprod = false;
/// if !has_dotprod {
///     lantern_test_support::skip("neon+dotprod", "only the plain NEON path is checked");
/// }
/// ```
pub fn skip(isa: impl fmt::Display, what: &str) {
    let log = std::env::var_os(LOG_VAR);
    report(&isa.to_string(), what, log.as_deref().map(Path::new));
}

/// [`skip`] with the log given: prints and logs (`isa`, current test) unless already
/// reported, and says whether it did.
fn report(isa: &str, what: &str, log: Option<&Path>) -> bool {
    let test = std::thread::current().name().unwrap_or("<unnamed thread>").to_owned();
    let first = REPORTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((isa.to_owned(), test.clone()));
    if !first {
        return false;
    }
    eprintln!("note: {test}: this CPU cannot run the {isa} path; {what}");
    let Some(path) = log else { return true };
    // One `write_all` of one short line to a file opened for appending: lines from tests
    // running in parallel do not interleave.
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut log| log.write_all(format!("{isa}\t{test}\n").as_bytes()))
        .unwrap_or_else(|e| panic!("cannot append to {LOG_VAR}={}: {e}", path.display()));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through `report`, not `skip`: the log of a real run must not get this made-up skip.
    #[test]
    fn logs_each_isa_once_per_test_named_by_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skips.txt");
        assert!(report("made-up-isa", "nothing is compared", Some(&log)));
        assert!(!report("made-up-isa", "nothing is compared", Some(&log)));
        assert!(report("other-made-up-isa", "nothing is compared", Some(&log)));
        let test = "skips::tests::logs_each_isa_once_per_test_named_by_its_thread";
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!("made-up-isa\t{test}\nother-made-up-isa\t{test}\n")
        );
    }

    #[test]
    fn an_unwritable_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("missing-folder/skips.txt");
        let panic = std::panic::catch_unwind(|| report("made-up-isa", "", Some(&log)));
        assert!(panic.is_err());
    }
}
