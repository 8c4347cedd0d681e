//! Engines: loading a model, resident or streamed, and freeing it.

use std::ffi::c_char;

use lantern::{Budget, Engine, ModelSource, StorageModel, StreamOptions};

use crate::handles::Registry;
use crate::status::{call, call_infallible, lantern_status, Failure, FfiResult};
use crate::strings::{optional_utf8_arg, options_or, out_arg, utf8_arg};

/// A loaded model (opaque). Shared by any number of threads and sessions.
#[derive(Debug)]
pub struct lantern_engine {
    pub(crate) engine: Engine,
}

pub(crate) static ENGINES: Registry<lantern_engine> = Registry::new("lantern_engine");

/// How `lantern_engine_load` loads a model.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lantern_engine_options {
    /// NULL: resident (mmap). Else stream a .lantern container within this budget:
    /// "64MB", "1.5GiB", "25%" (as the CLI's --budget).
    pub budget: *const c_char,
    /// NULL or "none": unthrottled; "sd", "emmc", "ufs", "nvme", "250MB/s",
    /// "250MB/s,200us" (as the CLI's --storage). Used only when streaming.
    pub storage: *const c_char,
    /// Blocks read ahead when streaming; 0: the default (2).
    pub depth: u32,
}

impl Default for lantern_engine_options {
    fn default() -> Self {
        Self { budget: std::ptr::null(), storage: std::ptr::null(), depth: 0 }
    }
}

/// Writes the default engine options (also what a NULL options pointer means): resident.
/// NULL `out`: nothing.
///
/// # Safety
/// `out` is NULL or points to writable options.
#[no_mangle]
pub unsafe extern "C" fn lantern_engine_options_default(out: *mut lantern_engine_options) {
    call_infallible((), || {
        if !out.is_null() {
            // SAFETY: not NULL; the caller passes a pointer to writable options.
            unsafe { out.write(lantern_engine_options::default()) };
        }
    });
}

/// Loads a model: a GGUF file or a .lantern container. `*out` is set only on LANTERN_OK.
/// `options` may be NULL (resident). A resident model is memory-mapped: the file must not
/// be modified or truncated while the engine and its sessions live.
///
/// # Safety
/// `path` and the option strings are NULL or NUL-terminated; `options` is NULL or
/// valid; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lantern_engine_load(
    path: *const c_char,
    options: *const lantern_engine_options,
    out: *mut *mut lantern_engine,
) -> lantern_status {
    call("lantern_engine_load", || {
        // SAFETY: the caller passes NULL or a NUL-terminated string valid for the call.
        let path = unsafe { utf8_arg(path, "path") }?;
        // SAFETY: the caller passes NULL or valid options.
        let options = unsafe { options_or(options, lantern_engine_options::default()) };
        // SAFETY: as `path`, for the option strings.
        let budget = unsafe { optional_utf8_arg(options.budget, "options->budget") }?;
        // SAFETY: as `path`.
        let storage = unsafe { optional_utf8_arg(options.storage, "options->storage") }?;
        let out = out_arg(out, "out")?;
        // Checked even for a resident model, so that a mistyped setting is never ignored.
        let storage: StorageModel = match storage {
            None => StorageModel::UNTHROTTLED,
            Some(storage) => storage.parse().map_err(|e: lantern_io::Error| {
                Failure::from_error("options->storage", &e.into())
            })?,
        };
        let engine = match budget {
            None => load_resident(path)?,
            Some(budget) => load_streamed(path, budget, storage, options.depth)?,
        };
        let handle = ENGINES.insert(lantern_engine { engine });
        // SAFETY: `out` is not NULL and the caller passes a writable pointer.
        unsafe { out.write(handle) };
        Ok(())
    })
}

fn load_resident(path: &str) -> FfiResult<Engine> {
    let context = format!("loading {path}");
    // SAFETY: the mapping is read-only and owned by the engine; the header tells the host
    // not to modify or truncate a model file while it is loaded, which would fault.
    let source =
        unsafe { ModelSource::mmap(path) }.map_err(|e| Failure::from_error(&context, &e.into()))?;
    Engine::builder_from_source(source).build().map_err(|e| Failure::from_error(&context, &e))
}

fn load_streamed(path: &str, budget: &str, storage: StorageModel, depth: u32) -> FfiResult<Engine> {
    let budget: Budget = budget
        .parse()
        .map_err(|e: lantern_runtime::Error| Failure::from_error("options->budget", &e.into()))?;
    let mut options = StreamOptions { budget, ..StreamOptions::default() };
    if depth != 0 {
        options.depth = depth as usize;
    }
    Engine::builder(path).stream(options, storage).build().map_err(|e| {
        let context =
            format!("streaming {path} (a .lantern container; `lantern convert` makes one)");
        Failure::from_error(&context, &e)
    })
}

/// Frees an engine. NULL or a handle that is not live: nothing. Sessions keep the model
/// alive: freeing the engine before them is safe.
#[no_mangle]
pub extern "C" fn lantern_engine_free(engine: *mut lantern_engine) {
    call_infallible((), || ENGINES.remove(engine));
}
