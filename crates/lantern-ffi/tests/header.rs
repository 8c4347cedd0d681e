//! The checked-in C header is what cbindgen makes of this crate now, and it is valid C and
//! C++ that declares the API of /work/ffi-spec.h's contract.

use std::path::{Path, PathBuf};
use std::process::Command;

const REFRESH: &str = "cargo test --release -p lantern-ffi --test header -- --ignored write_header";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../../include/lantern.h")
}

/// The header cbindgen generates from the crate's source and cbindgen.toml.
fn generate() -> String {
    let dir = crate_dir();
    let config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut bytes = Vec::new();
    bindings.write(&mut bytes);
    String::from_utf8(bytes).expect("the header is UTF-8")
}

#[test]
fn checked_in_header_is_current() {
    let checked_in = std::fs::read_to_string(header_path()).unwrap_or_default();
    assert!(
        checked_in == generate(),
        "include/lantern.h is stale (or missing): refresh it with `{REFRESH}`"
    );
}

/// Writes include/lantern.h; run by hand (see REFRESH).
#[test]
#[ignore = "writes include/lantern.h; run by hand to refresh it"]
fn write_header() {
    std::fs::write(header_path(), generate()).expect("write include/lantern.h");
}

/// Compiles `source` with `compiler` and `args`, or says why not when the compiler is
/// missing.
fn compiles(compiler: &str, args: &[&str], source: &Path) {
    let include = crate_dir().join("../../include");
    let output = Command::new(compiler).args(args).arg("-I").arg(&include).arg(source).output();
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: `{compiler}` is not installed; the header was not compiled with it");
        }
        Err(e) => panic!("cannot run {compiler}: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "{compiler} {args:?} rejects lantern.h:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn header_is_valid_c_and_cpp_and_declares_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("uses_lantern.c");
    std::fs::write(&source, USES_THE_CONTRACT).unwrap();
    compiles(
        "cc",
        &["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"],
        &source,
    );
    compiles(
        "c++",
        &["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only", "-x", "c++"],
        &source,
    );
}

/// C written against the contract: every declaration with its exact type, every
/// enumerator with its value, every struct field in its order.
const USES_THE_CONTRACT: &str = r#"
#include "lantern.h"
#include "lantern.h" /* the include guard */

#if LANTERN_ABI_VERSION != 1
#error "LANTERN_ABI_VERSION"
#endif

#ifdef __cplusplus
#define CHECK(c, m) static_assert(c, m)
#else
#define CHECK(c, m) _Static_assert(c, m)
#endif

CHECK(LANTERN_OK == 0 && LANTERN_NULL_ARGUMENT == 1 && LANTERN_INVALID_UTF8 == 2, "status");
CHECK(LANTERN_INVALID_ARGUMENT == 3 && LANTERN_INVALID_HANDLE == 4 && LANTERN_IO == 5, "status");
CHECK(LANTERN_MODEL == 6 && LANTERN_BUDGET == 7 && LANTERN_PROMPT_TOO_LONG == 8, "status");
CHECK(LANTERN_TEMPLATE == 9 && LANTERN_BUFFER_TOO_SMALL == 10 && LANTERN_BUSY == 11, "status");
CHECK(LANTERN_INTERNAL == 12, "status");
CHECK(LANTERN_STOP_NONE == 0 && LANTERN_STOP_END_OF_TEXT == 1, "stop reason");
CHECK(LANTERN_STOP_MAX_TOKENS == 2 && LANTERN_STOP_STOP_STRING == 3, "stop reason");
CHECK(LANTERN_STOP_CANCELLED == 4 && LANTERN_STOP_CONTEXT_FULL == 5, "stop reason");

/* Field order, by positional initializers with each field's type. */
static const char *const stops[] = {"\n"};
static lantern_engine_options engine_options = {"64MB", "ufs", 2u};
static lantern_session_options session_options = {2u, 512u};
static lantern_generate_options generate_options = {
    64u, 0.0f, 0u, 1.0f, 0.0f, 1.0f, (uint64_t)42, stops, (size_t)1};
static lantern_message message = {"user", "What is the capital of France?"};
static lantern_stats stats = {0.5, 16u, 100.0, 7u, 50.0, (uint64_t)0, (uint64_t)0,
                              LANTERN_STOP_END_OF_TEXT, 24u, 512u};

/* Every field's exact type, in C (C++ has no _Generic), and the fields' order. */
#ifndef __cplusplus
#include <stddef.h>
#define FIELD(S, f, T) CHECK(_Generic(((S *)0)->f, T: 1, default: 0), #S "." #f " is " #T)
#define BEFORE(S, a, b) CHECK(offsetof(S, a) < offsetof(S, b), #S "." #a " before " #b)
FIELD(lantern_engine_options, budget, const char *);
FIELD(lantern_engine_options, storage, const char *);
FIELD(lantern_engine_options, depth, uint32_t);
BEFORE(lantern_engine_options, budget, storage);
BEFORE(lantern_engine_options, storage, depth);
FIELD(lantern_session_options, threads, uint32_t);
FIELD(lantern_session_options, ctx_len, uint32_t);
BEFORE(lantern_session_options, threads, ctx_len);
FIELD(lantern_generate_options, max_tokens, uint32_t);
FIELD(lantern_generate_options, temperature, float);
FIELD(lantern_generate_options, top_k, uint32_t);
FIELD(lantern_generate_options, top_p, float);
FIELD(lantern_generate_options, min_p, float);
FIELD(lantern_generate_options, repeat_penalty, float);
FIELD(lantern_generate_options, seed, uint64_t);
FIELD(lantern_generate_options, stop, const char *const *);
FIELD(lantern_generate_options, n_stop, size_t);
BEFORE(lantern_generate_options, max_tokens, temperature);
BEFORE(lantern_generate_options, temperature, top_k);
BEFORE(lantern_generate_options, top_k, top_p);
BEFORE(lantern_generate_options, top_p, min_p);
BEFORE(lantern_generate_options, min_p, repeat_penalty);
BEFORE(lantern_generate_options, repeat_penalty, seed);
BEFORE(lantern_generate_options, seed, stop);
BEFORE(lantern_generate_options, stop, n_stop);
FIELD(lantern_message, role, const char *);
FIELD(lantern_message, content, const char *);
BEFORE(lantern_message, role, content);
FIELD(lantern_stats, load_seconds, double);
FIELD(lantern_stats, prompt_tokens, uint32_t);
FIELD(lantern_stats, prompt_tokens_per_second, double);
FIELD(lantern_stats, generated_tokens, uint32_t);
FIELD(lantern_stats, generate_tokens_per_second, double);
FIELD(lantern_stats, bytes_streamed, uint64_t);
FIELD(lantern_stats, peak_resident_bytes, uint64_t);
FIELD(lantern_stats, stop_reason, lantern_stop_reason);
FIELD(lantern_stats, context_used, uint32_t);
FIELD(lantern_stats, context_size, uint32_t);
BEFORE(lantern_stats, load_seconds, prompt_tokens);
BEFORE(lantern_stats, prompt_tokens, prompt_tokens_per_second);
BEFORE(lantern_stats, prompt_tokens_per_second, generated_tokens);
BEFORE(lantern_stats, generated_tokens, generate_tokens_per_second);
BEFORE(lantern_stats, generate_tokens_per_second, bytes_streamed);
BEFORE(lantern_stats, bytes_streamed, peak_resident_bytes);
BEFORE(lantern_stats, peak_resident_bytes, stop_reason);
BEFORE(lantern_stats, stop_reason, context_used);
BEFORE(lantern_stats, context_used, context_size);
#endif

/* The contract's declarations, verbatim: a redeclaration of another type is an error. */
typedef struct lantern_engine lantern_engine;
typedef struct lantern_session lantern_session;
typedef int (*lantern_piece_fn)(const char *piece, size_t len, void *user_data);
#ifdef __cplusplus
extern "C" {
#endif
uint32_t lantern_abi_version(void);
const char *lantern_version(void);
const char *lantern_last_error(void);
const char *lantern_status_name(lantern_status s);
void lantern_engine_options_default(lantern_engine_options *out);
void lantern_session_options_default(lantern_session_options *out);
void lantern_generate_options_default(lantern_generate_options *out);
lantern_status lantern_engine_load(const char *path, const lantern_engine_options *options,
                                   lantern_engine **out);
void lantern_engine_free(lantern_engine *engine);
lantern_status lantern_tokenize(const lantern_engine *engine, const char *text, int add_special,
                                uint32_t *tokens, size_t capacity, size_t *n_tokens);
lantern_status lantern_detokenize(const lantern_engine *engine, const uint32_t *tokens,
                                  size_t n_tokens, char *out, size_t capacity, size_t *len);
lantern_status lantern_session_new(const lantern_engine *engine,
                                   const lantern_session_options *options,
                                   lantern_session **out);
void lantern_session_free(lantern_session *session);
lantern_status lantern_session_reset(lantern_session *session);
lantern_status lantern_session_cancel(const lantern_session *session);
lantern_status lantern_session_stats(const lantern_session *session, lantern_stats *out);
lantern_status lantern_chat(lantern_session *session, const lantern_message *messages,
                            size_t n_messages, const lantern_generate_options *options,
                            lantern_piece_fn on_piece, void *user_data);
lantern_status lantern_complete(lantern_session *session, const char *prompt,
                                const lantern_generate_options *options,
                                lantern_piece_fn on_piece, void *user_data);
#ifdef __cplusplus
}
#endif

/* Every function, through a pointer of its exact type. */
static uint32_t (*abi_version)(void) = lantern_abi_version;
static const char *(*version)(void) = lantern_version;
static const char *(*last_error)(void) = lantern_last_error;
static const char *(*status_name)(lantern_status) = lantern_status_name;
static void (*engine_options_default)(lantern_engine_options *) = lantern_engine_options_default;
static void (*session_options_default)(lantern_session_options *) = lantern_session_options_default;
static void (*generate_options_default)(lantern_generate_options *) = lantern_generate_options_default;
static lantern_status (*engine_load)(const char *, const lantern_engine_options *,
                                     lantern_engine **) = lantern_engine_load;
static void (*engine_free)(lantern_engine *) = lantern_engine_free;
static lantern_status (*tokenize)(const lantern_engine *, const char *, int, uint32_t *, size_t,
                                  size_t *) = lantern_tokenize;
static lantern_status (*detokenize)(const lantern_engine *, const uint32_t *, size_t, char *,
                                    size_t, size_t *) = lantern_detokenize;
static lantern_status (*session_new)(const lantern_engine *, const lantern_session_options *,
                                     lantern_session **) = lantern_session_new;
static void (*session_free)(lantern_session *) = lantern_session_free;
static lantern_status (*session_reset)(lantern_session *) = lantern_session_reset;
static lantern_status (*session_cancel)(const lantern_session *) = lantern_session_cancel;
static lantern_status (*session_stats)(const lantern_session *, lantern_stats *) =
    lantern_session_stats;
static lantern_status (*chat)(lantern_session *, const lantern_message *, size_t,
                              const lantern_generate_options *, lantern_piece_fn,
                              void *) = lantern_chat;
static lantern_status (*complete)(lantern_session *, const char *,
                                  const lantern_generate_options *, lantern_piece_fn,
                                  void *) = lantern_complete;

static int on_piece(const char *piece, size_t len, void *user_data) {
    (void)piece;
    (void)len;
    (void)user_data;
    return 0;
}

int uses_everything(void);
int uses_everything(void) {
    lantern_piece_fn callback = on_piece;
    lantern_stop_reason reason = stats.stop_reason;
    lantern_status status = status_name != NULL ? LANTERN_OK : LANTERN_INTERNAL;
    return (int)abi_version() + (version != NULL) + (last_error != NULL) +
           (engine_options_default != NULL) + (session_options_default != NULL) +
           (generate_options_default != NULL) + (engine_load != NULL) + (engine_free != NULL) +
           (tokenize != NULL) + (detokenize != NULL) + (session_new != NULL) +
           (session_free != NULL) + (session_reset != NULL) + (session_cancel != NULL) +
           (session_stats != NULL) + (chat != NULL) + (complete != NULL) + (callback != NULL) +
           (int)reason + (int)status + (int)engine_options.depth + (int)session_options.threads +
           (int)generate_options.max_tokens + (message.role != NULL);
}
"#;
