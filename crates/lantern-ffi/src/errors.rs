//! Which status each of lantern's errors is: the one place that decides it.

use lantern::Error;

use crate::status::lantern_status::{self, *};

/// The status of a facade error. Lantern's error enums are `#[non_exhaustive]`, so each
/// match ends in a wildcard; the variants known today are all named.
pub(crate) fn status_of(error: &Error) -> lantern_status {
    match error {
        Error::Io(e) => status_of_io(e),
        Error::Core(e) => status_of_core(e),
        Error::Runtime(e) => status_of_runtime(e),
        Error::File { .. } | Error::TokenizerUtf8 { .. } | Error::TokenizerJson { .. } => {
            LANTERN_IO
        }
        Error::InvalidTokenizer { .. }
        | Error::UnsupportedTokenizer { .. }
        | Error::Tokenizer { .. }
        | Error::VocabMismatch { .. } => LANTERN_MODEL,
        Error::TextSplit { .. } | Error::TokenOutOfRange { .. } | Error::EmptyPrompt => {
            LANTERN_INVALID_ARGUMENT
        }
        Error::TemplateSyntax { .. }
        | Error::TemplateRender { .. }
        | Error::NoChatTemplate
        | Error::BrokenChatTemplate { .. } => LANTERN_TEMPLATE,
        Error::PromptTooLong { .. } => LANTERN_PROMPT_TOO_LONG,
        // A variant added after this crate was written: its message still says what it is.
        _ => LANTERN_INTERNAL,
    }
}

fn status_of_io(error: &lantern_io::Error) -> lantern_status {
    use lantern_io::Error as E;
    match error {
        E::InvalidSetting { .. } => LANTERN_INVALID_ARGUMENT,
        E::BudgetTooSmall { .. } => LANTERN_BUDGET,
        // The file is well formed but describes a model lantern cannot run.
        E::UnsupportedVersion { .. }
        | E::UnsupportedContainerVersion { .. }
        | E::UnknownTensorType { .. }
        | E::MissingKey { .. }
        | E::WrongType { .. }
        | E::OutOfRange { .. }
        | E::MissingTensor { .. }
        | E::Tensor { .. }
        | E::Replacement { .. } => LANTERN_MODEL,
        // Unreadable, truncated or corrupt files and failed reads.
        E::Io { .. }
        | E::Write { .. }
        | E::Truncated { .. }
        | E::BadMagic { .. }
        | E::StringTooLong { .. }
        | E::TooLarge { .. }
        | E::InvalidUtf8 { .. }
        | E::InvalidBool { .. }
        | E::UnknownValueType { .. }
        | E::MixedArray { .. }
        | E::TooManyDims { .. }
        | E::TensorOutOfBounds { .. }
        | E::OverlappingTensors { .. }
        | E::MisalignedTensor { .. }
        | E::BadAlignment { .. }
        | E::Duplicate { .. }
        | E::NotContainer { .. }
        | E::Checksum { .. }
        | E::Corrupt { .. }
        | E::StreamStopped
        | E::NotRegularFile { .. }
        | E::SymlinkLoop { .. } => LANTERN_IO,
        // A variant added after this crate was written: most are about the file.
        _ => LANTERN_IO,
    }
}

fn status_of_core(error: &lantern_core::Error) -> lantern_status {
    use lantern_core::Error as E;
    match error {
        // Unknown or unsupported tensor types, shapes that do not fit their type or
        // overflow: the model's tensors are not what lantern can compute with.
        E::UnknownType { .. }
        | E::UnknownTypeName { .. }
        | E::UnsupportedType { .. }
        | E::RaggedRow { .. }
        | E::SizeMismatch { .. }
        | E::ShapeMismatch { .. }
        | E::Overflow { .. } => LANTERN_MODEL,
        _ => LANTERN_MODEL,
    }
}

fn status_of_runtime(error: &lantern_runtime::Error) -> lantern_status {
    use lantern_runtime::Error as E;
    match error {
        E::Io(e) => status_of_io(e),
        E::Core(e) => status_of_core(e),
        // Zero threads, sampler settings out of range, unknown token ids; a thread pool
        // that cannot start is most often one asked for too many threads.
        E::InvalidSetting { .. } | E::InvalidToken { .. } | E::ThreadPool { .. } => {
            LANTERN_INVALID_ARGUMENT
        }
        E::ContextFull { .. } => LANTERN_PROMPT_TOO_LONG,
        E::UnsupportedArchitecture { .. }
        | E::InvalidConfig { .. }
        | E::TensorShape { .. }
        | E::UnsupportedTensorType { .. }
        | E::InvalidSwsc { .. }
        | E::SwscNotStreamed { .. }
        | E::FusedNotStreamed { .. }
        | E::NonFiniteLogits { .. }
        | E::InvalidThresholds { .. }
        | E::InvalidAdapter { .. }
        | E::AdapterMismatch { .. }
        | E::MergeUnsupported { .. } => LANTERN_MODEL,
        // A variant added after this crate was written: its message still says what it is.
        _ => LANTERN_INTERNAL,
    }
}
