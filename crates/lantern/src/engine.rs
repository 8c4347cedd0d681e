//! [`Engine`]: a loaded model, its tokenizer and chat template, shareable across threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lantern_io::stream::{ReadAt, ReadPath, StorageModel, StreamStats, StreamedContainer};
use lantern_io::{open_model_file, ModelFile, ModelSource};
use lantern_runtime::{FfnThresholds, LoraAdapter, Model, ModelConfig, StreamOptions};

use crate::{ChatTemplate, Error, Result, Session, SessionConfig, Tokenizer};

/// A loaded model. Cloning is cheap (the weights are shared), and one engine serves any
/// number of [`Session`]s on any threads.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) model: Model,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) template: Option<ChatTemplate>,
    /// Why the model's own template could not be used, when it does not compile: chat says
    /// so, and everything else runs.
    pub(crate) template_error: Option<String>,
    pub(crate) info: ModelInfo,
    /// FFN thresholds stored with the model, the sessions' default.
    pub(crate) ffn_thresholds: Option<FfnThresholds>,
}

/// Facts about a loaded model file.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ModelInfo {
    /// The file, when the model came from one.
    pub path: Option<PathBuf>,
    /// Size of the file in bytes.
    pub file_bytes: usize,
    /// Whether the file is memory-mapped rather than read into memory.
    pub mapped: bool,
    /// For a streamed model, the loads read ahead of compute.
    pub stream_depth: Option<usize>,
    /// Weight bytes read to decode one token.
    pub bytes_per_token: usize,
    /// Time from opening the file to a ready engine.
    pub load_time: Duration,
}

/// Where an [`EngineBuilder`] takes the model from.
#[derive(Debug)]
enum Origin {
    Path(PathBuf),
    Source(ModelSource),
    File(Box<dyn ModelFile>),
    /// A container the host reads, and the name it has in errors.
    Reader(Box<dyn ReadAt>, PathBuf),
}

/// Builds an [`Engine`]; made by [`Engine::builder`], [`Engine::builder_from_source`],
/// [`Engine::builder_from_file`] or [`Engine::builder_from_reader`].
#[derive(Debug)]
#[must_use]
pub struct EngineBuilder {
    origin: Origin,
    tokenizer_json: Option<PathBuf>,
    chat_template: Option<String>,
    stream: Option<(StreamOptions, StorageModel)>,
    read_path: Option<ReadPath>,
    sparse_ffn: bool,
    merged: Vec<(Arc<LoraAdapter>, f32)>,
}

impl Engine {
    /// A builder that reads the GGUF file at `path` into memory.
    ///
    /// To memory-map the file instead, open it with the unsafe
    /// [`ModelSource::mmap`] and use [`Engine::builder_from_source`].
    pub fn builder(path: impl AsRef<Path>) -> EngineBuilder {
        EngineBuilder::new(Origin::Path(path.as_ref().to_owned()))
    }

    /// A builder over an already opened model source (read, mapped or built in memory).
    pub fn builder_from_source(source: ModelSource) -> EngineBuilder {
        EngineBuilder::new(Origin::Source(source))
    }

    /// A builder over an opened model file, such as one with some tensors replaced
    /// ([`lantern_io::Replaced`]). Such a model cannot be streamed.
    pub fn builder_from_file(file: Box<dyn ModelFile>) -> EngineBuilder {
        EngineBuilder::new(Origin::File(file))
    }

    /// A builder over a `.lantern` container that the host reads itself (an asset in an app
    /// bundle, an encrypted store): `source` gives its bytes and `name` names it in errors.
    /// Such a model is streamed, by default with [`StreamOptions::default`] through
    /// unthrottled storage; [`EngineBuilder::stream`] sets both.
    pub fn builder_from_reader(
        source: impl ReadAt + 'static,
        name: impl Into<PathBuf>,
    ) -> EngineBuilder {
        EngineBuilder::new(Origin::Reader(Box::new(source), name.into()))
    }

    /// Loads the GGUF file at `path` with default settings.
    ///
    /// # Errors
    /// See [`EngineBuilder::build`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).build()
    }

    /// A new session with its own KV cache and worker threads.
    ///
    /// # Errors
    /// [`Error::Runtime`] for settings out of range (zero threads, zero context) or when
    /// the worker threads cannot start.
    pub fn session(&self, config: SessionConfig) -> Result<Session> {
        Session::new(self.clone(), config)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// The chat template, when the model has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.inner.template.as_ref()
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        self.inner.model.config()
    }

    /// Facts about the loaded file.
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// For a streamed model, what streaming has read, waited for and held so far.
    pub fn stream_stats(&self) -> Option<StreamStats> {
        self.inner.model.stream_stats()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl EngineBuilder {
    fn new(origin: Origin) -> Self {
        Self {
            origin,
            tokenizer_json: None,
            chat_template: None,
            stream: None,
            read_path: None,
            sparse_ffn: false,
            merged: Vec::new(),
        }
    }

    /// Streams the model from storage instead of loading it whole: the matrices are read
    /// every pass by a prefetch thread, within `options.budget`, through `storage` (which
    /// can slow reads down to a device's speed). The model must be a `.lantern` container
    /// given by path ([`Engine::builder`]) or read by the host
    /// ([`Engine::builder_from_reader`]); `lantern convert` makes one from a GGUF file.
    ///
    /// By default, the model is resident: memory-mapped or read.
    pub fn stream(mut self, options: StreamOptions, storage: StorageModel) -> Self {
        self.stream = Some((options, storage));
        self
    }

    /// How a streamed model's chunks are read.
    ///
    /// By default, past the page cache when `storage` is unthrottled (the real device is
    /// measured) and through it when throttled (the model is), as
    /// [`StreamedContainer::open`] chooses.
    pub fn read_path(mut self, reads: ReadPath) -> Self {
        self.read_path = Some(reads);
        self
    }

    /// Whether sessions with FFN thresholds read only the active neurons' weights when they
    /// decode: their up rows (thresholds on the gate) and, from a column-major copy of each
    /// resident FFN down matrix, their down columns ([`Model::with_sparse_ffn`]). The copies
    /// cost the down matrices' bytes again, and the up rows are read from the file as well
    /// as from the interleaved copy the dense products use.
    ///
    /// By default, no: it pays from about half the neurons zeroed on models of 1B and more
    /// (docs/SPARSITY.md), and below that, or on small models, the dense rows are as fast.
    pub fn sparse_ffn(mut self, on: bool) -> Self {
        self.sparse_ffn = on;
        self
    }

    /// Merges a LoRA adapter at `scale` into the weights at load: every session then runs
    /// the adapted model at the base model's decode speed, but the base is gone until the
    /// model is loaded again, and each adapted matrix is quantized again to its own type,
    /// which rounds the update. A streamed model cannot merge. Per-session adapters
    /// ([`SessionConfig::adapter`](crate::SessionConfig::adapter)) keep the base.
    ///
    /// By default, none.
    pub fn merge_adapter(mut self, adapter: Arc<LoraAdapter>, scale: f32) -> Self {
        self.merged.push((adapter, scale));
        self
    }

    /// Takes the tokenizer from a HuggingFace `tokenizer.json` instead of the GGUF metadata.
    ///
    /// By default, the tokenizer is built from the GGUF metadata.
    pub fn tokenizer_json(mut self, path: impl AsRef<Path>) -> Self {
        self.tokenizer_json = Some(path.as_ref().to_owned());
        self
    }

    /// Uses this Jinja chat template instead of the model's `tokenizer.chat_template`.
    ///
    /// By default, the model's own template is used (chat is unavailable without one).
    pub fn chat_template(mut self, template: impl Into<String>) -> Self {
        self.chat_template = Some(template.into());
        self
    }

    /// Opens, validates and loads the model.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable, truncated or corrupt file or a missing tensor;
    /// [`Error::Runtime`] for an unsupported architecture, tensor type or inconsistent
    /// shapes; [`Error::Tokenizer`](crate::Error) variants for a bad tokenizer;
    /// a chat-template error for a template given to [`EngineBuilder::chat_template`] that
    /// does not compile (a model's own broken template fails only chat, see
    /// [`Error::BrokenChatTemplate`]).
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn build(self) -> Result<Engine> {
        let start = Instant::now();
        let stream = match (&self.origin, self.stream) {
            (Origin::Reader(..), None) => Some(Default::default()),
            (_, stream) => stream,
        };
        let (model, (tokenizer, ffn_thresholds), path, file_bytes, mapped) =
            match (self.origin, stream) {
                (origin, Some((options, storage))) => {
                    let (file, path) = match origin {
                        Origin::Path(path) => {
                            let file = match self.read_path {
                                Some(reads) => StreamedContainer::open_with(&path, storage, reads)?,
                                None => StreamedContainer::open(&path, storage)?,
                            };
                            (file, Some(path))
                        }
                        Origin::Reader(source, name) => {
                            (StreamedContainer::open_from(source, name, storage)?, None)
                        }
                        Origin::Source(_) | Origin::File(_) => {
                            return Err(Error::Io(lantern_io::Error::InvalidSetting {
                                name: "model source",
                                reason: "a streamed model is opened by path or through a reader"
                                    .into(),
                            }));
                        }
                    };
                    // The tokenizer first: the model keeps the file.
                    let tokenizer = from_metadata(self.tokenizer_json.as_deref(), file.metadata())?;
                    let file_bytes = file.container_bytes() as usize;
                    let model = Model::load_streamed(file, options)?;
                    (model, tokenizer, path, file_bytes, false)
                }
                (origin, None) => {
                    let file = match origin {
                        Origin::Path(path) => open_model_file(ModelSource::read(path)?)?,
                        Origin::Source(source) => open_model_file(source)?,
                        Origin::File(file) => file,
                        Origin::Reader(..) => unreachable!("a reader's model is streamed"),
                    };
                    // The tokenizer first: its build's temporaries then come and go before
                    // the weights are resident, not on top of them.
                    let tokenizer = from_metadata(self.tokenizer_json.as_deref(), file.metadata())?;
                    let model = Model::load(file.as_ref())?;
                    let source = file.source();
                    let path = source.path().map(Path::to_owned);
                    (model, tokenizer, path, source.len(), source.is_mapped())
                }
            };
        let mut model = model;
        for (adapter, scale) in &self.merged {
            model.merge_adapter(adapter, *scale)?;
        }
        let model = if self.sparse_ffn { model.with_sparse_ffn() } else { model };
        let (template, template_error) = match &self.chat_template {
            Some(source) => (Some(ChatTemplate::new(source)?.with_tokens_of(&tokenizer)), None),
            None => match ChatTemplate::from_tokenizer(&tokenizer) {
                Ok(template) => (template, None),
                Err(e) => {
                    tracing::warn!("the model's chat template is unusable: {e}");
                    (None, Some(e.to_string()))
                }
            },
        };
        let info = ModelInfo {
            path,
            file_bytes,
            mapped,
            stream_depth: model.stream_depth(),
            bytes_per_token: model.bytes_per_token(),
            load_time: start.elapsed(),
        };
        tracing::debug!(?info, "model loaded");
        if let Some(t) =
            ffn_thresholds.as_ref().filter(|t| t.layers().len() != model.config().n_layers)
        {
            return Err(Error::Runtime(lantern_runtime::Error::InvalidSetting {
                name: "FFN thresholds in the model's metadata",
                reason: format!(
                    "{} layers of thresholds for {}",
                    t.layers().len(),
                    model.config().n_layers
                ),
            }));
        }
        if tokenizer.vocab_size() > model.config().vocab_size {
            return Err(Error::VocabMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: model.config().vocab_size,
            });
        }
        let inner = Inner { model, tokenizer, template, template_error, info, ffn_thresholds };
        Ok(Engine { inner: Arc::new(inner) })
    }
}

/// What the engine takes from the model's metadata: the tokenizer (unless `tokenizer_json`
/// is given) and the FFN thresholds stored with the model.
fn from_metadata(
    tokenizer_json: Option<&Path>,
    metadata: &lantern_io::Metadata,
) -> Result<(Tokenizer, Option<FfnThresholds>)> {
    let tokenizer = match tokenizer_json {
        Some(path) => Tokenizer::from_file(path)?,
        None => Tokenizer::from_gguf(metadata)?,
    };
    Ok((tokenizer, FfnThresholds::from_metadata(metadata)?))
}
