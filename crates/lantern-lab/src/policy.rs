//! `lantern-lab convert --budget-bytes` / `--bits-avg`: a format per block (and for the
//! embedding), and with `--prune` an FFN width per block, chosen by measured sensitivity
//! within a size budget ([`LayerPolicy`], lantern-quant's), with progress bars and the
//! report this command prints.

use std::time::Instant;

use anyhow::Result;
use indicatif::ProgressBar;
use lantern_cli::progress;
use lantern_core::QTensor;
use lantern_io::Value;
use lantern_quant::{LayerPolicy, PolicyRequest, PolicyStep};

/// The policy's tensors and the metadata that records it.
pub(crate) struct Policy {
    pub(crate) replacements: Vec<(String, QTensor)>,
    pub(crate) metadata: Vec<(String, Value)>,
}

/// Chooses the policy `request` asks for, prints the report, and with `check_combinations`
/// measures that many combined candidates against the sum their cost is taken as.
pub(crate) fn choose_policy(
    request: &PolicyRequest<'_>,
    check_combinations: usize,
    quiet: bool,
) -> Result<Policy> {
    let start = Instant::now();
    let mut bar: Option<(PolicyStep, ProgressBar)> = None;
    let policy = LayerPolicy::choose(request, |step, done, total| {
        if bar.as_ref().is_none_or(|(s, _)| *s != step) {
            let label = match step {
                PolicyStep::Candidates => "re-quantizing candidates",
                PolicyStep::Sensitivity => "measuring sensitivity",
            };
            bar = Some((step, progress::count(total as u64, label, quiet)));
        }
        if let Some((_, bar)) = &bar {
            bar.set_position(done as u64);
            if done == total {
                bar.finish_and_clear();
            }
        }
    })?;
    print_report(&policy, start.elapsed().as_secs_f64());
    if check_combinations > 0 {
        let checks = policy.check_combinations(request, check_combinations)?;
        println!(
            "separability: KL divergence of combined candidates, predicted (sum) and measured"
        );
        for c in checks {
            println!(
                "{:<8} {:<16} predicted {:.5}  measured {:.5}  ({:+.1}%)",
                c.unit,
                c.candidate,
                c.predicted,
                c.measured,
                100.0 * (c.measured / c.predicted - 1.0)
            );
        }
    }
    Ok(Policy { replacements: policy.replacements(), metadata: policy.metadata() })
}

/// Each unit's candidates with their KL divergences and bytes, the chosen one marked.
fn print_report(policy: &LayerPolicy, seconds: f64) {
    println!(
        "per-layer policy: perplexity {:.4} on the sensitivity chunks, {} bytes for the layers \
         ({seconds:.0} s)",
        policy.reference_perplexity(),
        policy.unit_budget()
    );
    println!(
        "unit     format: KL divergence from the model's own, nats per token (bytes), * chosen"
    );
    for (unit, &i) in policy.units().iter().zip(policy.chosen()) {
        let cells: Vec<String> = unit
            .choices()
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let mark = if k == i { "*" } else { " " };
                format!("{mark}{} {:.5} ({})", c.what.label(), c.cost, c.bytes)
            })
            .collect();
        println!("{:<8} {}", unit.name(), cells.join("  "));
    }
}
