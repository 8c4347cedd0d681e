//! What makes a run the run it is, as named settings that a checkpoint records and a resumed
//! run must match: the model, the text, and every setting the trained values depend on
//! (not the step count, threads or budget, which a resumed run may change).

use lantern_runtime::{BlockMatrix, Model};

use crate::adapt::checkpoint::Settings;
use crate::adapt::config::{Plan, TuneConfig};

/// The run's settings, by name.
pub(crate) fn settings(
    model: &Model,
    config: &TuneConfig,
    plan: &Plan,
    tokens: &[u32],
) -> Settings {
    let c = model.config();
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let targets: Vec<_> = targets(config).iter().map(|m| m.short_name()).collect();
    vec![
        (
            "model",
            format!(
                "{} of {} blocks, d_model {}, vocab {}, weights {:08x}",
                c.architecture,
                c.n_layers,
                c.d_model,
                c.vocab_size,
                model_hash(model)
            ),
        ),
        ("text", format!("{} tokens, {:08x}", tokens.len(), tokens_hash(tokens))),
        ("rank", config.rank.to_string()),
        ("alpha", config.alpha.to_string()),
        ("targets", targets.join(",")),
        ("window", plan.window().to_string()),
        ("exits", list(plan.exits())),
        ("schedule", config.schedule.name().to_string()),
        ("seq_len", config.seq_len.to_string()),
        ("sequences", config.sequences.to_string()),
        ("learning rate", config.learning_rate.to_string()),
        ("weight decay", config.weight_decay.to_string()),
        ("seed", config.seed.to_string()),
    ]
}

/// The target matrices, each once, in block order.
pub(crate) fn targets(config: &TuneConfig) -> Vec<BlockMatrix> {
    let mut targets = config.targets.clone();
    targets.sort_unstable();
    targets.dedup();
    targets
}

/// A hash of the model's norms and the first bytes of each matrix: enough to tell two
/// models, or two quantizations of one, apart without reading all of it.
fn model_hash(model: &Model) -> u32 {
    let w = model.weights();
    let mut h = crc32fast::Hasher::new();
    for layer in &w.layers {
        layer.attn_norm.iter().chain(&layer.ffn_norm).for_each(|v| h.update(&v.to_le_bytes()));
        let Some(p) = &layer.projections else { continue };
        for m in [&p.wq, &p.wk, &p.wv, &p.wo, &p.gate, &p.up, &p.down] {
            for t in m.tensors() {
                h.update(&t.bytes()[..t.bytes().len().min(256)]);
            }
        }
    }
    w.output_norm.iter().for_each(|v| h.update(&v.to_le_bytes()));
    h.finalize()
}

fn tokens_hash(tokens: &[u32]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    tokens.iter().for_each(|t| h.update(&t.to_le_bytes()));
    h.finalize()
}
