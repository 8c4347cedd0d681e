//! The choice itself: one format per unit, the least summed cost within a byte budget (a
//! multiple-choice knapsack solved exactly by dynamic programming over the budget).

use crate::{Error, Result};

/// One format a unit can take: what it costs in bytes and in measured quality.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice<T> {
    /// What the choice is (a format, for example).
    pub what: T,
    /// Bytes of the unit in this format.
    pub bytes: u64,
    /// The loss of quality measured with this unit alone in this format (perplexity added,
    /// for example); may be negative.
    pub cost: f64,
}

/// Most steps of the byte budget the search tells apart.
const MAX_STEPS: u64 = 1 << 22;

/// The index of one choice per unit such that the choices' bytes sum to at most `budget`
/// and their costs to the least possible, taking each unit's cost as independent of the
/// others' (a multiple-choice knapsack, solved by dynamic programming over the budget).
///
/// The search counts bytes in steps of their greatest common divisor, which is exact. When
/// that would take more than 2²² steps, it counts in larger steps and rounds each
/// choice's bytes up to one: the result then still fits, but may miss a choice that fills
/// the budget to within a few steps.
///
/// # Errors
/// [`Error::Budget`] when even the smallest choice of every unit exceeds `budget`, or a
/// unit has no choice.
pub fn choose<T>(units: &[Vec<Choice<T>>], budget: u64) -> Result<Vec<usize>> {
    let least = fits(units, budget)?;
    let divisor = units.iter().flatten().fold(0, |g, c| gcd(g, c.bytes)).max(1);
    let step = if budget / divisor <= MAX_STEPS { divisor } else { budget.div_ceil(MAX_STEPS) };
    let slots = (budget / step) as usize;
    // best[b] = least cost of the units so far within b steps; picks[u][b] its choice for u.
    let mut best = vec![0.0f64; slots + 1];
    let mut picks = Vec::with_capacity(units.len());
    for unit in units {
        let mut next = vec![f64::INFINITY; slots + 1];
        let mut pick = vec![usize::MAX; slots + 1];
        for (i, choice) in unit.iter().enumerate() {
            let size = choice.bytes.div_ceil(step) as usize;
            for b in size..=slots {
                let cost = best[b - size] + choice.cost;
                if cost < next[b] {
                    (next[b], pick[b]) = (cost, i);
                }
            }
        }
        best = next;
        picks.push(pick);
    }
    // Walk back from the whole budget.
    let mut b = (0..=slots)
        .min_by(|&x, &y| best[x].total_cmp(&best[y]))
        .filter(|&b| best[b].is_finite())
        .ok_or(Error::Budget { budget, least })?;
    let mut chosen = vec![0; units.len()];
    for (u, unit) in units.iter().enumerate().rev() {
        let i = picks[u][b];
        chosen[u] = i;
        b -= unit[i].bytes.div_ceil(step) as usize;
    }
    Ok(chosen)
}

/// Checks that the smallest choice of every unit fits `budget` together, before anything
/// costly is measured; returns their bytes.
///
/// # Errors
/// [`Error::Budget`] when they do not, or a unit has no choice.
pub fn fits<T>(units: &[Vec<Choice<T>>], budget: u64) -> Result<u64> {
    let smallest = |u: &Vec<Choice<T>>| u.iter().map(|c| c.bytes).min();
    let least = units.iter().map(|u| smallest(u).unwrap_or(u64::MAX)).fold(0, u64::saturating_add);
    if units.iter().any(Vec::is_empty) || least > budget {
        return Err(Error::Budget { budget, least });
    }
    Ok(least)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
