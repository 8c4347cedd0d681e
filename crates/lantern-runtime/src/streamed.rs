//! Models larger than the memory an app can spare: matrices streamed from a `.lantern`
//! container under a byte budget, and the [`Lease`] through which a forward pass reaches
//! its weights whether they are resident or streamed.

use std::ops::{Deref, Range};
use std::sync::{Mutex, MutexGuard};

use lantern_core::{GgmlType, QTensor};
use lantern_io::gguf::block_tensor_name;
use lantern_io::stream::{Stream, StreamConfig, StreamStats, StreamedContainer};

use crate::swsc::swsc_tensor_names;
use crate::weights::{check_matrix, ffn_widths, rope_factors, vector, LayerWeights, Projections};
use crate::{BlockMatrix, Error, Matrix, ModelConfig, Result, Weights};

/// How to run a streamed model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamOptions {
    /// Most weight bytes held at once: pinned tensors, the slab pool and read buffers.
    pub budget: Budget,
    /// Blocks read ahead of the one computing, at most; the budget may allow fewer.
    pub depth: usize,
    /// What stays resident besides the norm gains, which always do.
    pub pin: Pin,
}

/// Which weights a streamed model keeps resident. Norm gains always are; by default
/// nothing else is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pin {
    /// The token embedding (and so the output head, when the model ties them). When not
    /// pinned, each token's row is read from storage.
    pub embedding: bool,
    /// The output head.
    pub output: bool,
    /// The first blocks.
    pub first_layers: usize,
    /// The last blocks.
    pub last_layers: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self { budget: Budget::Bytes(u64::MAX), depth: 2, pin: Pin::default() }
    }
}

/// A memory budget for weights: a number of bytes, or a share of the model's weight bytes
/// (all its tensors, as stored decoded).
///
/// ```
/// use lantern_runtime::Budget;
///
/// assert_eq!("25%".parse::<Budget>()?, Budget::OfWeights(0.25));
/// assert_eq!("24MB".parse::<Budget>()?, Budget::Bytes(24_000_000));
/// assert_eq!("64KB".parse::<Budget>()?, "64kB".parse::<Budget>()?);
/// assert_eq!("2GiB".parse::<Budget>()?, Budget::Bytes(2 << 30));
/// assert_eq!("1TB".parse::<Budget>()?, Budget::Bytes(1_000_000_000_000));
/// assert_eq!("1TiB".parse::<Budget>()?, Budget::Bytes(1 << 40));
/// assert!("1e21GB".parse::<Budget>().is_err()); // more bytes than a u64 counts
/// assert_eq!(Budget::OfWeights(0.25).bytes(1000), 250);
/// # Ok::<(), lantern_runtime::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// This many bytes.
    Bytes(u64),
    /// This share of the weight bytes, from 0 to 1.
    OfWeights(f64),
}

impl Budget {
    /// The budget in bytes for a model of `weight_bytes`.
    pub fn bytes(self, weight_bytes: u64) -> u64 {
        match self {
            Self::Bytes(b) => b,
            Self::OfWeights(share) => (weight_bytes as f64 * share) as u64,
        }
    }
}

impl std::str::FromStr for Budget {
    type Err = Error;

    /// `N%` of the weights, or bytes with an optional unit: `kB` (or `KB`), `MB`, `GB`, `TB`
    /// (powers of ten) or `KiB`, `MiB`, `GiB`, `TiB`; at most `u64::MAX` bytes.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidSetting {
            name: "memory budget",
            reason: format!("{s:?} is not a size such as 64MB, 1.5GiB or 25%"),
        };
        let s = s.trim();
        if let Some(percent) = s.strip_suffix('%') {
            let p: f64 = percent.trim().parse().map_err(|_| bad())?;
            return if (0.0..=100.0).contains(&p) {
                Ok(Self::OfWeights(p / 100.0))
            } else {
                Err(bad())
            };
        }
        let units = [
            ("KiB", 1u64 << 10),
            ("MiB", 1 << 20),
            ("GiB", 1 << 30),
            ("TiB", 1 << 40),
            ("kB", 1000),
            ("KB", 1000),
            ("MB", 1_000_000),
            ("GB", 1_000_000_000),
            ("TB", 1_000_000_000_000),
            ("B", 1),
            ("", 1),
        ];
        let (number, scale) = units
            .iter()
            .find_map(|&(unit, scale)| s.strip_suffix(unit).map(|n| (n.trim(), scale)))
            .ok_or_else(bad)?;
        let value: f64 = number.parse().map_err(|_| bad())?;
        let bytes = value * scale as f64;
        // Past u64::MAX the cast would saturate into a budget nobody asked for.
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Self::Bytes(bytes as u64))
    }
}

/// The streamed part of a model: the file, its prefetch stream and which unit is which.
#[derive(Debug)]
pub(crate) struct Streamed {
    file: StreamedContainer,
    stream: Mutex<Stream>,
    /// The stream unit of each block's matrices; `None` for a pinned block.
    layer_units: Vec<Option<usize>>,
    /// The stream unit of the output head, unless pinned.
    head_unit: Option<usize>,
    /// Weight bytes one token reads from the stream, for [`crate::Model::bytes_per_token`].
    streamed_bytes: usize,
    /// The types of the streamed matrices.
    types: Vec<GgmlType>,
}

impl Streamed {
    /// Checks every weight of `file` against its index, reads the resident ones and starts
    /// the prefetch thread for the rest.
    pub(crate) fn load(
        file: StreamedContainer,
        options: StreamOptions,
    ) -> Result<(ModelConfig, Weights, Self)> {
        let container = file.container();
        let entry = |name: &str| {
            container
                .tensor(name)
                .ok_or_else(|| Error::Io(lantern_io::Error::MissingTensor { name: name.into() }))
        };
        let embd = entry("token_embd.weight")?;
        let vocab = embd.dims.get(1).copied().unwrap_or(0);
        let mut config = ModelConfig::from_metadata(file.metadata(), vocab)?;
        let fused = (0..config.n_layers).map(|l| block_tensor_name(l, "attn_qkv.weight"));
        if let Some(matrix) = fused.into_iter().find(|name| container.tensor(name).is_some()) {
            return Err(Error::FusedNotStreamed { matrix });
        }
        for name in (0..config.n_layers).flat_map(BlockMatrix::tensor_names) {
            let swsc = || swsc_tensor_names(&name).into_iter().flatten();
            if container.tensor(&name).is_none() && swsc().any(|n| container.tensor(&n).is_some()) {
                return Err(Error::SwscNotStreamed { matrix: name });
            }
        }
        config.ffn_widths = ffn_widths(&config, &|name| Ok(entry(name)?.dims.clone()))?;
        let (d, n) = (config.d_model, config.n_layers);
        let tied = container.tensor("output.weight").is_none();
        let head_name = if tied { "token_embd.weight" } else { "output.weight" };
        for name in ["token_embd.weight", head_name] {
            let e = entry(name)?;
            check_matrix(name, e.ty, &e.dims, d, vocab)?;
        }
        // What stays and what streams, from the index alone.
        let pin = options.pin;
        let pinned_layer = |l: usize| l < pin.first_layers || l + pin.last_layers >= n;
        let embd_pinned = pin.embedding;
        let head_pinned = if tied { pin.embedding || pin.output } else { pin.output };
        let mut units = Vec::new();
        let mut layer_units = Vec::with_capacity(n);
        let mut pinned: Vec<String> = Vec::new();
        let mut types = vec![entry(head_name)?.ty];
        for l in 0..n {
            let names = BlockMatrix::tensor_names(l);
            for (name, [a, b]) in names.iter().zip(Projections::shapes(&config, l)) {
                let e = entry(name)?;
                check_matrix(name, e.ty, &e.dims, a, b)?;
                types.push(e.ty);
            }
            if pinned_layer(l) {
                pinned.extend(names);
                layer_units.push(None);
            } else {
                layer_units.push(Some(units.len()));
                units.push(names.to_vec());
            }
        }
        if embd_pinned {
            pinned.push("token_embd.weight".into());
        }
        if head_pinned && !(tied && embd_pinned) {
            pinned.push(head_name.into());
        }
        let head_unit = (!head_pinned).then(|| {
            units.push(vec![head_name.to_owned()]);
            units.len() - 1
        });
        let streamed_bytes = units
            .iter()
            .flatten()
            .filter_map(|name| container.tensor(name))
            .map(|t| container.raw_bytes(t) as usize)
            .sum::<usize>();

        // Refuse a budget too small before reading anything into it.
        let weight_bytes = container.chunks().iter().map(|c| c.raw_bytes).sum();
        let budget = options.budget.bytes(weight_bytes);
        // The rope factors: at most two sets of rope_dim / 2.
        let vector_len = n * LayerWeights::vector_len(&config) + d + config.rope_dim;
        let norm_bytes = (vector_len * std::mem::size_of::<f32>()) as u64;
        let pinned_names: Vec<&str> = pinned.iter().map(String::as_str).collect();
        let minimum = file.minimum_budget(&units, &pinned_names, norm_bytes, !embd_pinned)?;
        if budget < minimum {
            return Err(Error::Io(lantern_io::Error::BudgetTooSmall {
                budget,
                minimum,
                detail: format!(
                    "{} pinned tensors, the norms, one slab and a reader's buffers",
                    pinned.len()
                ),
            }));
        }

        let read = |name: &str| Ok(file.read_tensor(name)?);
        let mut layers = Vec::with_capacity(n);
        for l in 0..n {
            let mut layer = LayerWeights::vectors(&config, l, &read)?;
            if pinned_layer(l) {
                let names = BlockMatrix::tensor_names(l);
                let matrices = names
                    .iter()
                    .map(|name| Ok(Matrix::Blocks(read(name)?)))
                    .collect::<Result<_>>()?;
                layer.projections = Projections::from_vec(matrices);
            }
            layers.push(layer);
        }
        let token_embd = embd_pinned.then(|| read("token_embd.weight")).transpose()?;
        let output = match (&token_embd, head_pinned) {
            (Some(embd), true) if tied => Some(embd.clone()),
            (_, true) => Some(read(head_name)?),
            (_, false) => None,
        };
        let output_norm = vector("output_norm.weight", read("output_norm.weight")?, d)?;
        file.count_held(norm_bytes);
        let config_stream =
            StreamConfig { budget, depth: options.depth, row_lookups: token_embd.is_none() };
        let stream = file.stream(&units, config_stream)?;
        tracing::debug!(units = units.len(), depth = stream.depth(), "streaming the model");
        let rope_factors = rope_factors(&|name| container.tensor(name).is_some(), &read, &config)?;
        let weights = Weights { token_embd, layers, output_norm, output, rope_factors };
        let streamed = Self {
            file,
            stream: Mutex::new(stream),
            layer_units,
            head_unit,
            streamed_bytes,
            types,
        };
        Ok((config, weights, streamed))
    }

    pub(crate) fn streamed_bytes(&self) -> usize {
        self.streamed_bytes
    }

    /// The types of the matrices the model may stream.
    pub(crate) fn types(&self) -> impl Iterator<Item = GgmlType> + '_ {
        self.types.iter().copied()
    }

    pub(crate) fn stats(&self) -> StreamStats {
        self.file.stats()
    }

    pub(crate) fn depth(&self) -> usize {
        self.stream.lock().unwrap_or_else(|e| e.into_inner()).depth()
    }
}

/// A forward pass's access to the weights: the resident ones, and the stream (held for the
/// whole pass, so that concurrent sessions take their loads in turn).
pub(crate) struct Lease<'a> {
    weights: &'a Weights,
    streamed: Option<(&'a Streamed, MutexGuard<'a, Stream>)>,
}

/// A block's matrices, resident or loaded for this pass.
// One lives on the stack per block; boxing the large variant would allocate per block.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LayerRef<'a> {
    Resident(&'a Projections),
    Loaded(Projections),
}

impl Deref for LayerRef<'_> {
    type Target = Projections;

    fn deref(&self) -> &Projections {
        match self {
            Self::Resident(p) => p,
            Self::Loaded(p) => p,
        }
    }
}

impl<'a> Lease<'a> {
    pub(crate) fn new(weights: &'a Weights, streamed: Option<&'a Streamed>) -> Self {
        let streamed = streamed.map(|s| (s, s.stream.lock().unwrap_or_else(|e| e.into_inner())));
        Self { weights, streamed }
    }

    /// The embedding rows of `tokens` into `out`, `d_model` values each.
    pub(crate) fn embed(&self, tokens: &[u32], out: &mut [f32]) -> Result<()> {
        let d = out.len() / tokens.len().max(1);
        match (&self.weights.token_embd, &self.streamed) {
            (Some(embd), _) => {
                for (&token, row) in tokens.iter().zip(out.chunks_exact_mut(d)) {
                    embd.dequantize_row(token as usize, row)?;
                }
                Ok(())
            }
            (None, Some((s, _))) => Ok(s.file.dequantize_rows("token_embd.weight", tokens, out)?),
            (None, None) => unreachable!("a resident model has its embedding"),
        }
    }

    /// Block `l`'s matrices, waiting for the prefetcher when they are streamed.
    pub(crate) fn layer(&mut self, l: usize) -> Result<LayerRef<'a>> {
        let weights: &'a Weights = self.weights;
        if let Some(p) = &weights.layers[l].projections {
            return Ok(LayerRef::Resident(p));
        }
        let (s, stream) = self.streamed.as_mut().expect("a block without matrices is streamed");
        let unit = s.layer_units[l].expect("a streamed block has a unit");
        let load = stream.loads_of(unit).start;
        let loaded = stream.take(load)?;
        let matrices = loaded.tensors.into_iter().map(|(t, _)| Matrix::Blocks(t)).collect();
        Ok(LayerRef::Loaded(Projections::from_vec(matrices).expect("a block unit has 7 tensors")))
    }

    /// Runs `each` over the output head: the whole of it, or run by run of rows as the
    /// prefetcher loads them.
    pub(crate) fn head(
        &mut self,
        mut each: impl FnMut(&QTensor, Range<usize>) -> Result<()>,
    ) -> Result<()> {
        if let Some(output) = &self.weights.output {
            return each(output, 0..output.n_rows());
        }
        let (s, stream) = self.streamed.as_mut().expect("a model without a head streams it");
        let unit = s.head_unit.expect("a streamed head has a unit");
        for load in stream.loads_of(unit) {
            let loaded = stream.take(load)?;
            for (tensor, rows) in &loaded.tensors {
                each(tensor, rows.clone())?;
            }
        }
        Ok(())
    }
}
