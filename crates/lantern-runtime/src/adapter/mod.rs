//! LoRA adapters: low-rank updates `W + s·B·A` of a model's block matrices, in llama.cpp's
//! GGUF adapter format, applied as a side product on the hot path ([`side`]) or merged into
//! the weights at load ([`merge`]).
//!
//! A file holds `general.type = "adapter"`, `adapter.type = "lora"`, `adapter.lora.alpha`
//! and, for each adapted matrix `blk.N.PART.weight`, the pair `….lora_a` (ggml dimensions
//! `[inputs, rank]`: `rank` rows of `inputs` values) and `….lora_b` (`[rank, outputs]`). The
//! update's scale is `scale · alpha / rank`, or `scale` when alpha is 0, as llama.cpp takes it.
//! Norm tensors in a file are skipped, as llama.cpp skips them.

pub(crate) mod merge;
pub(crate) mod side;

use std::collections::BTreeMap;
use std::path::Path;

use lantern_io::{GgufModel, GgufWriter, Metadata, ModelSource};

use crate::{BlockMatrix, Error, ModelConfig, Result};

/// Metadata key of the layers whose exits the adapter was tuned with (lantern's own; other
/// readers ignore it).
pub const EXITS_KEY: &str = "adapter.lantern.exits";

/// One matrix's update `B·A`: `a` holds `rank` rows of `inputs` values, `b` holds `outputs`
/// rows of `rank` values.
#[derive(Clone, Debug, PartialEq)]
pub struct LowRank {
    rank: usize,
    inputs: usize,
    outputs: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    /// `B` transposed, `rank` rows of `outputs` values: the side product adds its rows
    /// scaled, which vectorizes where `B`'s rows of `rank` values would not.
    b_columns: Vec<f32>,
}

impl LowRank {
    /// The update from its two factors.
    ///
    /// # Errors
    /// [`Error::InvalidAdapter`] when a length disagrees with the sizes, a size is 0 or a
    /// value is not finite.
    pub fn new(
        rank: usize,
        inputs: usize,
        outputs: usize,
        a: Vec<f32>,
        b: Vec<f32>,
    ) -> Result<Self> {
        let bad = |reason: String| Err(Error::InvalidAdapter { reason });
        if rank == 0 || inputs == 0 || outputs == 0 {
            return bad(format!(
                "a low-rank update of rank {rank} from {inputs} to {outputs} values"
            ));
        }
        if a.len() != rank * inputs || b.len() != outputs * rank {
            return bad(format!(
                "factors of {} and {} values for rank {rank} from {inputs} to {outputs}",
                a.len(),
                b.len()
            ));
        }
        if a.iter().chain(&b).any(|v| !v.is_finite()) {
            return bad("a factor holds NaN or infinity".into());
        }
        let b_columns = (0..rank).flat_map(|r| b.iter().skip(r).step_by(rank).copied()).collect();
        Ok(Self { rank, inputs, outputs, a, b, b_columns })
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Values each input has.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Values each output has.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `A`: `rank` rows of `inputs` values.
    pub fn a(&self) -> &[f32] {
        &self.a
    }

    /// `B`: `outputs` rows of `rank` values.
    pub fn b(&self) -> &[f32] {
        &self.b
    }

    /// `B`'s columns: `rank` runs of `outputs` values.
    pub(crate) fn b_columns(&self) -> &[f32] {
        &self.b_columns
    }
}

/// A LoRA adapter: the low-rank updates of some block matrices, and their alpha.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraAdapter {
    architecture: String,
    alpha: f32,
    updates: BTreeMap<(usize, BlockMatrix), LowRank>,
    exits: Vec<usize>,
}

impl LoraAdapter {
    /// An adapter with no updates yet, for models of `architecture`.
    pub fn new(architecture: impl Into<String>, alpha: f32) -> Self {
        Self {
            architecture: architecture.into(),
            alpha,
            updates: BTreeMap::new(),
            exits: Vec::new(),
        }
    }

    /// Sets the update of block `layer`'s `matrix`, replacing any.
    pub fn insert(&mut self, layer: usize, matrix: BlockMatrix, update: LowRank) {
        self.updates.insert((layer, matrix), update);
    }

    /// Records the layers after which the adapter's exits were tuned (for voting).
    pub fn set_exits(&mut self, exits: Vec<usize>) {
        self.exits = exits;
    }

    /// The architecture the adapter is for.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Alpha: with rank `r`, an update is scaled by `alpha / r` (by 1 when alpha is 0).
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// The layers after which the adapter's exits were tuned, lowest first; empty when it
    /// was tuned at the final layer only.
    pub fn exits(&self) -> &[usize] {
        &self.exits
    }

    /// The update of block `layer`'s `matrix`, if the adapter has one.
    pub fn update(&self, layer: usize, matrix: BlockMatrix) -> Option<&LowRank> {
        self.updates.get(&(layer, matrix))
    }

    /// Every update, by block and matrix.
    pub fn updates(&self) -> impl Iterator<Item = (usize, BlockMatrix, &LowRank)> + '_ {
        self.updates.iter().map(|(&(l, m), u)| (l, m, u))
    }

    /// The factor an update is multiplied by, for a user's `scale`: llama.cpp's rule.
    pub fn factor(&self, update: &LowRank, scale: f32) -> f32 {
        Self::factor_of(self.alpha, update.rank, scale)
    }

    /// `scale · alpha / rank`, or `scale` when alpha is 0: the factor of an update of rank
    /// `rank` in an adapter of `alpha`, as llama.cpp applies it (and training must too).
    pub fn factor_of(alpha: f32, rank: usize, scale: f32) -> f32 {
        if alpha == 0.0 {
            scale
        } else {
            scale * alpha / rank as f32
        }
    }

    /// Reads an adapter file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read or is not a valid GGUF file;
    /// [`Error::InvalidAdapter`] when it is not a LoRA adapter or a tensor is malformed.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_gguf(&GgufModel::open(ModelSource::read(path)?)?)
    }

    /// The adapter in a parsed GGUF file.
    ///
    /// # Errors
    /// As [`LoraAdapter::read`].
    pub fn from_gguf(file: &GgufModel) -> Result<Self> {
        let meta = file.metadata();
        let key = |k: &str| -> Result<Option<&str>> { Ok(meta.opt_str(k)?) };
        let bad = |reason: String| Error::InvalidAdapter { reason };
        if key("general.type")? != Some("adapter") || key("adapter.type")? != Some("lora") {
            return Err(bad(format!(
                "not a LoRA adapter: general.type is {:?} and adapter.type {:?} (expected \
                 \"adapter\" and \"lora\")",
                key("general.type")?.unwrap_or("missing"),
                key("adapter.type")?.unwrap_or("missing"),
            )));
        }
        let architecture = meta.str("general.architecture")?.to_owned();
        let alpha = meta.opt_f32("adapter.lora.alpha")?.unwrap_or(0.0);
        if !alpha.is_finite() {
            return Err(bad(format!("adapter.lora.alpha is {alpha}")));
        }
        let mut adapter = Self::new(architecture, alpha);
        adapter.exits = read_exits(meta)?;
        let mut pairs: BTreeMap<(usize, BlockMatrix), [Option<Factor>; 2]> = BTreeMap::new();
        for info in file.gguf().tensors() {
            let name = info.name.as_str();
            let (base, side) = match (name.strip_suffix(".lora_a"), name.strip_suffix(".lora_b")) {
                (Some(base), _) => (base, 0),
                (_, Some(base)) => (base, 1),
                _ if name.ends_with("_norm.weight") => continue,
                _ => return Err(bad(format!("tensor {name} is neither a .lora_a nor a .lora_b"))),
            };
            let Some((layer, matrix)) = BlockMatrix::parse(base) else {
                return Err(bad(format!(
                    "{name} adapts {base}, which lantern does not adapt (block matrices only)"
                )));
            };
            let t = file.tensor(name)?;
            let dims: [usize; 2] = match *t.dims() {
                [cols, rows] => [cols, rows],
                [cols] => [cols, 1],
                ref d => return Err(bad(format!("{name} has {} dimensions, expected 2", d.len()))),
            };
            pairs.entry((layer, matrix)).or_default()[side] = Some((t.dequantize()?, dims));
        }
        for ((layer, matrix), [a, b]) in pairs {
            let name = matrix.tensor_name(layer);
            let (Some((a, [inputs, rank])), Some((b, [b_rank, outputs]))) = (a, b) else {
                return Err(bad(format!("{name} has only one of its .lora_a and .lora_b")));
            };
            if rank != b_rank {
                return Err(bad(format!(
                    "{name}.lora_a has rank {rank} but {name}.lora_b rank {b_rank}"
                )));
            }
            let update = LowRank::new(rank, inputs, outputs, a, b)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            adapter.insert(layer, matrix, update);
        }
        if adapter.updates.is_empty() {
            return Err(bad("the file holds no .lora_a/.lora_b pair".into()));
        }
        Ok(adapter)
    }

    /// The adapter as a GGUF file, ready to write.
    ///
    /// # Errors
    /// [`Error::Io`] when a tensor cannot be added (sizes too large for GGUF).
    pub fn to_gguf(&self) -> Result<GgufWriter> {
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", self.architecture.as_str())
            .metadata("general.type", "adapter")
            .metadata("adapter.type", "lora")
            .metadata("adapter.lora.alpha", self.alpha);
        if !self.exits.is_empty() {
            let exits: Vec<u32> = self.exits.iter().map(|&e| e as u32).collect();
            w.metadata(EXITS_KEY, exits);
        }
        for (&(layer, matrix), u) in &self.updates {
            let name = matrix.tensor_name(layer);
            w.tensor_f32(format!("{name}.lora_a"), &[u.inputs, u.rank], &u.a)?;
            w.tensor_f32(format!("{name}.lora_b"), &[u.rank, u.outputs], &u.b)?;
        }
        Ok(w)
    }

    /// Writes the adapter to `path` atomically: the whole file or, on any failure, nothing.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be written, or `path` names something other than a
    /// regular file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(self.to_gguf()?.write_file(path)?)
    }

    /// Checks that the adapter fits a model: same architecture, blocks that exist, and each
    /// update's sizes those of its matrix.
    ///
    /// # Errors
    /// [`Error::AdapterMismatch`] naming the first disagreement.
    pub fn check(&self, config: &ModelConfig) -> Result<()> {
        let mismatch = |reason: String| Err(Error::AdapterMismatch { reason });
        if self.architecture != config.architecture {
            return mismatch(format!(
                "the adapter is for {:?} models, the model is {:?}",
                self.architecture, config.architecture
            ));
        }
        for (&(layer, matrix), u) in &self.updates {
            if layer >= config.n_layers {
                return mismatch(format!(
                    "it adapts block {layer}, the model has {} blocks",
                    config.n_layers
                ));
            }
            let [inputs, outputs] = crate::Projections::shapes(config, layer)[matrix as usize];
            if (u.inputs, u.outputs) != (inputs, outputs) {
                return mismatch(format!(
                    "{} maps {} values to {}, the adapter's update {} to {}",
                    matrix.tensor_name(layer),
                    inputs,
                    outputs,
                    u.inputs,
                    u.outputs
                ));
            }
        }
        if let Some(&e) = self.exits.iter().find(|&&e| e == 0 || e > config.n_layers) {
            return mismatch(format!("an exit after layer {e}, the model has {}", config.n_layers));
        }
        Ok(())
    }
}

/// A factor read from a file: its values and ggml dimensions `[columns, rows]`.
type Factor = (Vec<f32>, [usize; 2]);

fn read_exits(meta: &Metadata) -> Result<Vec<usize>> {
    if !meta.contains(EXITS_KEY) {
        return Ok(Vec::new());
    }
    let exits = meta.i32s(EXITS_KEY)?;
    let mut out: Vec<usize> = Vec::with_capacity(exits.len());
    for e in exits {
        match usize::try_from(e) {
            Ok(e) if e > 0 && out.last().is_none_or(|&last| e > last) => out.push(e),
            _ => {
                return Err(Error::InvalidAdapter {
                    reason: format!("{EXITS_KEY} must rise from 1; it holds {e}"),
                })
            }
        }
    }
    Ok(out)
}
