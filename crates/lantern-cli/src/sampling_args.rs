//! Sampling options, named as llama.cpp names them.

use clap::Args;
use lantern::SamplerConfig;

/// How tokens are picked.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    temperature: f32,
    /// Keep the k most likely tokens; 0 keeps all.
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Nucleus sampling threshold; 1 disables.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens below this fraction of the best one's probability; 0 disables.
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Penalty for recently seen tokens; 1 disables.
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    /// Random seed.
    #[arg(short, long, default_value_t = 0)]
    seed: u64,
}

impl SamplingArgs {
    /// The sampler these options set.
    pub fn config(&self) -> SamplerConfig {
        SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
        }
    }
}
