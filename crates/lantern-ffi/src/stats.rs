//! Statistics of a session's last generation, and the process's peak resident memory.

use lantern::{StopReason, Timings};

/// Why a generation ended (`lantern_stats.stop_reason`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lantern_stop_reason {
    /// Nothing generated yet.
    LANTERN_STOP_NONE = 0,
    /// The model's end-of-turn / EOS / EOT token.
    LANTERN_STOP_END_OF_TEXT = 1,
    /// `max_tokens` were generated.
    LANTERN_STOP_MAX_TOKENS = 2,
    /// A stop string appeared (it is not streamed).
    LANTERN_STOP_STOP_STRING = 3,
    /// `lantern_session_cancel`, or the callback returned nonzero.
    LANTERN_STOP_CANCELLED = 4,
    /// The session's context is full.
    LANTERN_STOP_CONTEXT_FULL = 5,
}

impl lantern_stop_reason {
    /// The reason of a facade generation; one that ended in an error has none.
    pub(crate) fn of(reason: Option<StopReason>) -> Self {
        match reason {
            None | Some(StopReason::Error) => Self::LANTERN_STOP_NONE,
            Some(StopReason::EndOfTurn) => Self::LANTERN_STOP_END_OF_TEXT,
            Some(StopReason::MaxTokens) => Self::LANTERN_STOP_MAX_TOKENS,
            Some(StopReason::StopString) => Self::LANTERN_STOP_STOP_STRING,
            Some(StopReason::Cancelled) => Self::LANTERN_STOP_CANCELLED,
            Some(StopReason::ContextFull) => Self::LANTERN_STOP_CONTEXT_FULL,
        }
    }
}

/// What `lantern_session_stats` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct lantern_stats {
    /// The engine's load time.
    pub load_seconds: f64,
    /// Of the last generation: prompt tokens computed (a reused prefix is not counted).
    pub prompt_tokens: u32,
    /// Of the last generation.
    pub prompt_tokens_per_second: f64,
    /// Of the last generation.
    pub generated_tokens: u32,
    /// Of the last generation.
    pub generate_tokens_per_second: f64,
    /// Read from storage by the engine so far (0 when resident).
    pub bytes_streamed: u64,
    /// Of the process (VmHWM), 0 where unknown.
    pub peak_resident_bytes: u64,
    /// Of the last generation.
    pub stop_reason: lantern_stop_reason,
    /// Tokens in the session's context now.
    pub context_used: u32,
    /// Tokens the session's context holds.
    pub context_size: u32,
}

/// What a session remembers of its last generation, for `lantern_session_stats`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LastGeneration {
    pub(crate) timings: Timings,
    pub(crate) stop_reason: lantern_stop_reason,
    pub(crate) context_used: usize,
}

impl Default for LastGeneration {
    fn default() -> Self {
        Self {
            timings: Timings::default(),
            stop_reason: lantern_stop_reason::LANTERN_STOP_NONE,
            context_used: 0,
        }
    }
}

/// Saturates instead of wrapping: counts past `u32::MAX` do not happen in practice.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The process's peak resident set (VmHWM in /proc/self/status), in bytes; 0 where unknown.
/// The only place the FFI reads the operating system.
pub(crate) fn peak_resident_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}
