//! What the command line says when a memory-mapped model file fails under it.
//!
//! A mapped file that another process cuts short, or whose storage fails, faults on the
//! next read of a lost page (`SIGBUS`). The library cannot turn that fault into an error of
//! the session: the read is an ordinary load inside a kernel, with no way back to the
//! caller. The command line can at least end with a message that names the cause and the
//! way round it (`--no-mmap`), rather than the shell's bare "Bus error".

/// Makes a `SIGBUS` end the process with a message about the mapped model file and exit
/// status 1. Call it before mapping a model.
#[cfg(unix)]
pub fn explain_faults() {
    extern "C" fn on_fault(_: libc::c_int) {
        const MESSAGE: &[u8] = b"Error: the memory-mapped model file was cut short or could \
            not be read while lantern used it (SIGBUS)\n  run with --no-mmap to read the \
            file into memory instead\n";
        // SAFETY: write and _exit are async-signal-safe; the message is a static.
        unsafe {
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            libc::_exit(1);
        }
    }
    // SAFETY: the action is fully initialised (zeroed, then the handler and an empty mask)
    // before it is installed; the handler only calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_fault as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Nothing to do where files are not mapped with `SIGBUS` on failure.
#[cfg(not(unix))]
pub fn explain_faults() {}
