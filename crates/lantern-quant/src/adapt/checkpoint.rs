//! Tuning checkpoints: a GGUF file (written atomically) holding what a run needs to go on
//! exactly as if it had not stopped: the steps done, each factor with its AdamW moments and
//! step count, and the settings that made them, so that another run's checkpoint is refused.
//!
//! Metadata: `general.type = "lantern.tune.checkpoint"`, `lantern.tune.step` (steps done),
//! `lantern.tune.data.epoch` and `lantern.tune.data.chunk` (where the next step's sequences
//! start, for people; the order follows from the seed), `lantern.tune.adam_steps` (each
//! factor's AdamW steps, `A` then `B` of each update in block and matrix order) and
//! `lantern.tune.setting.NAME` for each setting. Tensors, for each update of
//! `blk.N.PART.weight`: `….lora_a` and `….lora_b` as in an adapter file, and each one's
//! `….adam_m` and `….adam_v`, all F32.

use std::path::Path;

use lantern_io::{GgufModel, GgufWriter, ModelSource};

use crate::adapt::adamw::Param;
use crate::adapt::lora::LoraParams;
use crate::{Error, Result};

const KIND: &str = "lantern.tune.checkpoint";
const STEP: &str = "lantern.tune.step";
const EPOCH: &str = "lantern.tune.data.epoch";
const CHUNK: &str = "lantern.tune.data.chunk";
const ADAM_STEPS: &str = "lantern.tune.adam_steps";
const SETTING: &str = "lantern.tune.setting.";

/// The settings a checkpoint must share with the run that resumes it: name and value.
pub(crate) type Settings = Vec<(&'static str, String)>;

/// Writes the checkpoint of a run with `settings` after `step` steps, its next sequences at
/// `position` (epoch, chunk).
pub(crate) fn write(
    path: &Path,
    settings: &Settings,
    step: usize,
    position: (u64, u64),
    lora: &LoraParams,
) -> Result<()> {
    let mut w = GgufWriter::new();
    w.metadata("general.type", KIND)
        .metadata(STEP, step as u64)
        .metadata(EPOCH, position.0)
        .metadata(CHUNK, position.1);
    for (name, value) in settings {
        w.metadata(format!("{SETTING}{name}"), value.as_str());
    }
    let mut adam_steps = Vec::new();
    for (l, m, u) in lora.updates() {
        let name = m.tensor_name(l);
        for (side, p) in [("lora_a", &u.a), ("lora_b", &u.b)] {
            let dims = dims(p);
            w.tensor_f32(format!("{name}.{side}"), &dims, &p.values()?)?;
            w.tensor_f32(format!("{name}.{side}.adam_m"), &dims, &p.m)?;
            w.tensor_f32(format!("{name}.{side}.adam_v"), &dims, &p.v)?;
            adam_steps.push(p.steps);
        }
    }
    w.metadata(ADAM_STEPS, adam_steps);
    Ok(w.write_file(path)?)
}

/// Restores `lora` from the checkpoint at `path`, which a run with `settings` must have
/// written; returns the steps it had done.
///
/// # Errors
/// [`Error::File`] when it cannot be read; [`Error::NotCheckpoint`] when it is not a
/// checkpoint or is damaged; [`Error::CheckpointMismatch`] naming the first setting that
/// differs.
pub(crate) fn read(path: &Path, settings: &Settings, lora: &mut LoraParams) -> Result<usize> {
    let file = GgufModel::open(ModelSource::read(path)?)?;
    let meta = file.metadata();
    let damaged = |reason: String| Error::NotCheckpoint { path: path.to_owned(), reason };
    if meta.opt_str("general.type").ok().flatten() != Some(KIND) {
        return Err(damaged(format!("general.type is not {KIND:?}")));
    }
    for (name, value) in settings {
        let key = format!("{SETTING}{name}");
        let found = meta.str(&key).map_err(|e| damaged(e.to_string()))?;
        if found != value {
            return Err(Error::CheckpointMismatch {
                path: path.to_owned(),
                setting: (*name).to_string(),
                checkpoint: found.to_string(),
                run: value.clone(),
            });
        }
    }
    let step = meta.u64(STEP).map_err(|e| damaged(e.to_string()))?;
    let adam_steps = meta.i32s(ADAM_STEPS).map_err(|e| damaged(e.to_string()))?;
    let mut adam_steps = adam_steps.into_iter();
    for (l, m, u) in lora.updates_mut() {
        let name = m.tensor_name(l);
        for (side, p) in [("lora_a", &mut u.a), ("lora_b", &mut u.b)] {
            let values = |suffix: &str| -> Result<Vec<f32>> {
                let tensor_name = format!("{name}.{side}{suffix}");
                let t = file.tensor(&tensor_name).map_err(|e| damaged(e.to_string()))?;
                let values = t.dequantize()?;
                if t.dims() != dims(p) || values.iter().any(|v| !v.is_finite()) {
                    return Err(damaged(format!(
                        "{tensor_name} has other dims or non-finite values"
                    )));
                }
                Ok(values)
            };
            let (w, m, v) = (values("")?, values(".adam_m")?, values(".adam_v")?);
            let steps = adam_steps.next().and_then(|s| u32::try_from(s).ok());
            p.steps = steps.ok_or_else(|| damaged(format!("{ADAM_STEPS} is too short")))?;
            let shape = p.var.as_tensor().shape().clone();
            p.var.set(&candle_core::Tensor::from_vec(w, shape, &candle_core::Device::Cpu)?)?;
            (p.m, p.v) = (m, v);
        }
    }
    usize::try_from(step).map_err(|_| damaged(format!("{STEP} is {step}")))
}

/// A factor's GGUF dims: innermost first.
fn dims(p: &Param) -> [usize; 2] {
    let d = p.var.as_tensor().dims();
    [d[1], d[0]]
}
