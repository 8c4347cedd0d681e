//! The per-layer policy: the least total cost within the budget, as exhaustive search finds.

use lantern_quant::{choose, Choice, Error};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn unit(choices: &[(u64, f64)]) -> Vec<Choice<()>> {
    choices.iter().map(|&(bytes, cost)| Choice { what: (), bytes, cost }).collect()
}

/// Every combination's bytes and cost, and the least cost within `budget`.
fn exhaustive(units: &[Vec<Choice<()>>], budget: u64) -> Option<f64> {
    let mut best: Option<f64> = None;
    let mut index = vec![0usize; units.len()];
    loop {
        let bytes: u64 = units.iter().zip(&index).map(|(u, &i)| u[i].bytes).sum();
        let cost: f64 = units.iter().zip(&index).map(|(u, &i)| u[i].cost).sum();
        if bytes <= budget && best.is_none_or(|b| cost < b) {
            best = Some(cost);
        }
        let Some(u) = (0..units.len()).find(|&u| index[u] + 1 < units[u].len()) else {
            return best;
        };
        index[u] += 1;
        index[..u].fill(0);
    }
}

#[test]
fn sensitive_units_keep_more_bytes() {
    // Two layers, 4-bit (100 bytes) or 3-bit (75); the first loses far more at 3 bits.
    let units = [unit(&[(100, 0.0), (75, 5.0)]), unit(&[(100, 0.0), (75, 0.5)])];
    assert_eq!(choose(&units, 200).unwrap(), [0, 0]);
    assert_eq!(choose(&units, 180).unwrap(), [0, 1]);
    assert_eq!(choose(&units, 150).unwrap(), [1, 1]);
    assert!(matches!(choose(&units, 149), Err(Error::Budget { budget: 149, least: 150 })));
}

#[test]
fn the_choice_is_the_least_cost_within_the_budget() {
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..200 {
        let units: Vec<_> = (0..rng.random_range(1..6))
            .map(|_| {
                let n = rng.random_range(1..4);
                let choices: Vec<(u64, f64)> = (0..n)
                    .map(|_| (rng.random_range(1..50u64) * 1000, rng.random_range(-1.0..10.0)))
                    .collect();
                unit(&choices)
            })
            .collect();
        let budget = rng.random_range(1..200u64) * 1000;
        match (exhaustive(&units, budget), choose(&units, budget)) {
            (Some(best), Ok(chosen)) => {
                let bytes: u64 = units.iter().zip(&chosen).map(|(u, &i)| u[i].bytes).sum();
                let cost: f64 = units.iter().zip(&chosen).map(|(u, &i)| u[i].cost).sum();
                assert!(bytes <= budget);
                assert!((cost - best).abs() < 1e-9, "{cost} vs {best}");
            }
            (None, Err(Error::Budget { .. })) => {}
            (best, chosen) => panic!("exhaustive {best:?}, chosen {chosen:?}"),
        }
    }
}
