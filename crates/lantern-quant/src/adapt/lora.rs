//! The trained LoRA factors: for each target matrix of each block some window trains, `A`
//! (`[rank, inputs]`) and `B` (`[outputs, rank]`), the update `factor·B·A` being what the
//! runtime adds to the matrix.
//!
//! `A` starts as PEFT's does, Kaiming-uniform (`±1/√inputs`), and `B` at zero, so that the
//! untrained adapter is the base model. Each matrix draws its `A` from its own seed, so a
//! factor's start does not depend on which other blocks are trained.

use std::collections::BTreeMap;
use std::ops::Range;

use candle_core::Tensor;
use lantern_runtime::{BlockMatrix, LoraAdapter, LowRank};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::adapt::adamw::Param;
use crate::adapt::data::sub_seed;
use crate::twin::Delta;
use crate::Result;

/// One matrix's factors.
#[derive(Debug)]
pub(crate) struct Update {
    pub(crate) a: Param,
    pub(crate) b: Param,
    rank: usize,
    inputs: usize,
    outputs: usize,
}

/// A block's factors as the twin multiplies them, in the order of [`BlockMatrix::ALL`].
pub(crate) type BlockFactors = [Option<(Tensor, Tensor)>; 7];

/// Every trained update.
#[derive(Debug)]
pub(crate) struct LoraParams {
    alpha: f32,
    /// [`LoraAdapter::factor_of`] at scale 1, so the trained update means at inference what
    /// it meant in training.
    factor: f64,
    updates: BTreeMap<(usize, BlockMatrix), Update>,
}

impl LoraParams {
    /// Fresh factors of rank `rank` for `targets` in each block `covered` says, `shapes`
    /// giving a block's `(inputs, outputs)` per matrix.
    pub(crate) fn new(
        rank: usize,
        alpha: f32,
        targets: &[BlockMatrix],
        layers: impl Iterator<Item = usize>,
        shapes: impl Fn(usize) -> Result<[(usize, usize); 7]>,
        seed: u64,
    ) -> Result<Self> {
        let factor = f64::from(LoraAdapter::factor_of(alpha, rank, 1.0));
        let mut updates = BTreeMap::new();
        for l in layers {
            let shapes = shapes(l)?;
            for &m in targets {
                let (inputs, outputs) = shapes[m as usize];
                let mut rng = StdRng::seed_from_u64(sub_seed(seed, &[3, l as u64, m as u64]));
                let bound = 1.0 / (inputs as f32).sqrt();
                let a = (0..rank * inputs).map(|_| rng.random_range(-bound..bound)).collect();
                let update = Update {
                    a: Param::new(a, rank, inputs)?,
                    b: Param::new(vec![0.0; outputs * rank], outputs, rank)?,
                    rank,
                    inputs,
                    outputs,
                };
                updates.insert((l, m), update);
            }
        }
        Ok(Self { alpha, factor, updates })
    }

    /// Block `layer`'s factors: `tracked` ones, whose gradients a backward pass reaches, or
    /// detached ones; detached, an update not yet trained (B still zero) is left out.
    pub(crate) fn block(&self, layer: usize, tracked: bool) -> BlockFactors {
        BlockMatrix::ALL.map(|m| {
            let u = self.updates.get(&(layer, m))?;
            let (a, b) = (u.a.var.as_tensor(), u.b.var.as_tensor());
            if tracked {
                Some((a.clone(), b.clone()))
            } else {
                (u.b.steps > 0).then(|| (a.detach(), b.detach()))
            }
        })
    }

    /// `factors` as the twin's deltas.
    pub(crate) fn deltas<'a>(&self, factors: &'a BlockFactors) -> [Option<Delta<'a>>; 7] {
        factors.each_ref().map(|f| f.as_ref().map(|(a, b)| Delta { a, b, factor: self.factor }))
    }

    /// The factors of the blocks in `blocks`.
    pub(crate) fn params_of(&mut self, blocks: Range<usize>) -> impl Iterator<Item = &mut Param> {
        self.updates
            .range_mut((blocks.start, BlockMatrix::AttnQ)..(blocks.end, BlockMatrix::AttnQ))
            .flat_map(|(_, u)| [&mut u.a, &mut u.b])
    }

    /// Every update, by block and matrix.
    pub(crate) fn updates(&self) -> impl Iterator<Item = (usize, BlockMatrix, &Update)> {
        self.updates.iter().map(|(&(l, m), u)| (l, m, u))
    }

    /// Every update, to restore.
    pub(crate) fn updates_mut(
        &mut self,
    ) -> impl Iterator<Item = (usize, BlockMatrix, &mut Update)> {
        self.updates.iter_mut().map(|(&(l, m), u)| (l, m, u))
    }

    /// Numbers of trained values.
    pub(crate) fn values(&self) -> usize {
        self.updates.values().map(|u| u.rank * (u.inputs + u.outputs)).sum()
    }

    /// The updates as an adapter for `architecture`, tuned at `exits`.
    pub(crate) fn adapter(&self, architecture: &str, exits: &[usize]) -> Result<LoraAdapter> {
        let mut adapter = LoraAdapter::new(architecture, self.alpha);
        for (&(l, m), u) in &self.updates {
            let (a, b) = (u.a.values()?, u.b.values()?);
            adapter.insert(l, m, LowRank::new(u.rank, u.inputs, u.outputs, a, b)?);
        }
        adapter.set_exits(exits.to_vec());
        Ok(adapter)
    }
}
