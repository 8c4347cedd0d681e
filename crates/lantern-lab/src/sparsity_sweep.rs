//! `lantern-lab sparsity-sweep`: perplexity and decode speed against FFN activation sparsity,
//! for each calibration criterion and target share.
//!
//! Per criterion, the score histograms are collected once on the calibration text (never
//! the evaluation text), and each target's thresholds are read from them, as
//! `lantern calibrate` would write them. Each point is then measured with its thresholds:
//! perplexity on the first chunks of the evaluation text (`lantern ppl`), the share of
//! neurons the thresholds zeroed there, and decode speed, its runs alternating with dense
//! ones so that the ratio between them is measured in the same machine state. The
//! dense model (target 0) is measured once and every change is relative to it. Prints a
//! markdown table, the sparsity reached at +1%, +2% and +5% perplexity, and draws both
//! curves into a PNG.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use lantern::calibration::ActivationHistograms;
use lantern::{Engine, Perplexity, Session, SessionConfig, Sparsity};

use lantern_cli::measure::{check_ctx, generation_speed, perplexity};
use lantern_cli::model_args::{model_name, ModelArgs};
use lantern_cli::score::{histograms, Score};
use lantern_cli::text::{calibration_text, ChunkedText, TextFile};
use lantern_io::AtomicFile;

use crate::sweep_plot::{self, Curve};

/// Prompt tokens before the timed decode: a short context, as a chat turn starts.
const PROMPT_TOKENS: usize = 32;

/// Perplexity costs the frontier is reported at, in percent.
const FRONTIER_LEVELS: [f64; 3] = [1.0, 2.0, 5.0];

/// Measure perplexity and decode speed against FFN activation sparsity.
#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Calibration criteria to compare (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cats,gate-up,contribution")]
    criteria: Vec<Score>,
    /// Shares of FFN neurons to zero, from 0 to 1 (comma-separated). 0, or `dense`, is the
    /// dense model, which is measured in any case as the reference.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = parse_target,
        default_value = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7"
    )]
    targets: Vec<f64>,
    /// The evaluation text (UTF-8), e.g. wiki.test.raw.
    #[arg(long, value_name = "FILE")]
    eval: PathBuf,
    /// Chunks of the evaluation text to score, of --ctx-size tokens (512 by default).
    #[arg(long, default_value_t = 40)]
    chunks: usize,
    /// Calibration text (UTF-8), never the evaluation text. By default, the pinned
    /// Wikipedia calibration set (`lantern fetch calibration-wiki`).
    #[arg(long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Chunks of the calibration text to run, of --ctx-size tokens.
    #[arg(long, default_value_t = 16)]
    calibration_chunks: usize,
    /// Tokens decoded per speed measurement, after a short prompt; 0 skips speed.
    #[arg(long, default_value_t = 128)]
    gen: usize,
    /// Timed decode runs per point, after one warm-up; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Where to draw the two curves (PNG).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Where to write the table and frontier (markdown), besides stdout.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
}

/// A target share from the command line: a number from 0 to 1, or `dense` for 0.
fn parse_target(s: &str) -> Result<f64, String> {
    if s.trim() == "dense" {
        return Ok(0.0);
    }
    match s.trim().parse::<f64>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("{s:?} is not a share from 0 to 1 (or `dense`)")),
    }
}

/// What one set of thresholds did.
#[derive(Clone, Copy, Debug)]
struct Point {
    /// Share of FFN neurons zeroed on the evaluation text.
    zeroed: f64,
    perplexity: Perplexity,
    /// Median decode tokens per second; `None` when speed is not measured.
    speed: Option<f64>,
    /// The median of its decode runs' speeds over those of the dense runs they alternated
    /// with: a ratio the machine's drift between points does not move.
    relative: Option<f64>,
}

/// The decode test every point runs: the same tokens, so points differ only in thresholds.
#[derive(Debug)]
struct DecodeTest<'a> {
    prompt: &'a [u32],
    tokens: &'a [u32],
    reps: usize,
}

impl DecodeTest<'_> {
    /// Positions a decode session needs.
    fn ctx(&self) -> usize {
        self.prompt.len() + self.tokens.len()
    }
}

pub(crate) fn run(args: SweepArgs) -> Result<()> {
    if args.model.thresholds.is_some() || args.model.dense {
        bail!("sparsity-sweep sets its own thresholds; drop --thresholds and --dense");
    }
    if args.gen > 0 && args.reps == 0 {
        bail!("--reps must be at least 1 to measure decode speed (or --gen 0 to skip it)");
    }
    if let Some(text) = &args.text {
        let same = std::fs::canonicalize(text).ok() == std::fs::canonicalize(&args.eval).ok();
        if same {
            bail!("--text {} is the evaluation text; calibrate on other text", text.display());
        }
    }
    // Destinations that cannot be written (a directory, a device) fail before the sweep runs.
    for path in args.plot.iter().chain(&args.table) {
        drop(AtomicFile::create(path)?);
    }
    let ctx = args.model.ctx_size.unwrap_or(512);
    check_ctx(ctx)?;
    let eval = TextFile::read(&args.eval)?;
    let calibration = calibration_text(args.text.as_deref())?;
    let engine = args.model.engine()?;
    // Every criterion's empty histograms, made before any point is measured: some need
    // resident blocks.
    let empty: Vec<ActivationHistograms> =
        args.criteria.iter().map(|score| score.histograms(&engine)).collect::<Result<_>>()?;
    let base = args.model.session_config()?.sparsity(Sparsity::Dense);
    let eval = eval.chunk(&engine, ctx, Some(args.chunks))?;
    let calibration = calibration.chunk(&engine, ctx, Some(args.calibration_chunks))?;
    let need = PROMPT_TOKENS + args.gen;
    if eval.tokens.len() < need {
        bail!(
            "{} has {} tokens, fewer than the {need} the decode test takes",
            eval.name,
            eval.tokens.len()
        );
    }
    let decode = DecodeTest {
        prompt: &eval.tokens[..PROMPT_TOKENS],
        tokens: &eval.tokens[PROMPT_TOKENS..need],
        reps: args.reps,
    };

    let mut report = Report::default();
    report.line(describe(&engine, &base, &eval, &calibration, &args));
    report.line("");
    report.line("| criterion | target | zeroed | PPL | change | decode t/s | speed |");
    report.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    // Dense decode runs alternate with every point's, and the speed column is that ratio.
    let mut dense_decode = engine.session(base.clone().ctx_len(decode.ctx()))?;
    eprint!("dense: ");
    let dense = measure(&engine, &base, &eval, &decode, &mut dense_decode)?;
    report.line(row("dense", 0.0, &dense, &dense));
    let mut curves = Vec::new();
    for (&score, empty) in args.criteria.iter().zip(empty) {
        eprintln!("{score}: histograms on {} chunks of {}", calibration.chunks, calibration.name);
        let filled = histograms(&engine, base.clone(), empty, &calibration)?;
        let mut points = vec![dense];
        for &target in args.targets.iter().filter(|&&t| t > 0.0) {
            let thresholds = filled.uniform_thresholds(target);
            let config = base.clone().sparsity(Sparsity::Thresholds(thresholds));
            eprint!("{score} {target}: ");
            let point = measure(&engine, &config, &eval, &decode, &mut dense_decode)?;
            report.line(row(&score.to_string(), target, &point, &dense));
            points.push(point);
        }
        curves.push((score, points));
    }
    report.line("");
    for line in frontier_table(&curves, &dense) {
        report.line(line);
    }

    if let Some(path) = &args.plot {
        let title = format!(
            "{}, {} threads: perplexity on {} chunks of {} tokens of {}",
            model_name(&engine),
            base.threads,
            eval.chunks,
            eval.ctx,
            eval.name
        );
        plot(path, &title, &curves, &dense)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.table {
        lantern_io::write_atomic(path, report.0.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Lines printed to stdout as they are measured, and kept for --table.
#[derive(Debug, Default)]
struct Report(String);

impl Report {
    fn line(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }
}

/// Draws the sweep into the PNG at `path`: sparsity in percent against the perplexity
/// change and the decode speed.
fn plot(path: &Path, title: &str, curves: &[(Score, Vec<Point>)], dense: &Point) -> Result<()> {
    let curves: Vec<Curve> = curves
        .iter()
        .map(|(score, points)| Curve {
            name: score.to_string(),
            points: points
                .iter()
                .map(|p| (p.zeroed * 100.0, change(p, dense), p.relative))
                .collect(),
        })
        .collect();
    sweep_plot::draw(path, title, &curves, dense.relative.is_some())
}

/// Measures one point: perplexity and zeroed share on `eval`, then decode speed, each on a
/// session opened with `config`, its runs alternating with `dense`'s.
fn measure(
    engine: &Engine,
    config: &SessionConfig,
    eval: &ChunkedText,
    decode: &DecodeTest<'_>,
    dense: &mut Session,
) -> Result<Point> {
    let mut session = engine.session(config.clone().ctx_len(eval.ctx))?;
    let ppl = perplexity(&mut session, eval)?;
    let zeroed = session.ffn_zeroed_share().unwrap_or(0.0);
    drop(session);
    if decode.tokens.is_empty() {
        return Ok(Point { zeroed, perplexity: ppl, speed: None, relative: None });
    }
    let mut session = engine.session(config.clone().ctx_len(decode.ctx()))?;
    // One warm-up run each, as `lantern bench` does.
    let (mut speeds, mut dense_speeds) = (Vec::new(), Vec::new());
    for rep in 0..=decode.reps {
        let d = generation_speed(dense, decode.prompt, decode.tokens)?;
        let s = generation_speed(&mut session, decode.prompt, decode.tokens)?;
        if rep > 0 {
            speeds.push(s);
            dense_speeds.push(d);
        }
    }
    let mut relative: Vec<f64> = speeds.iter().zip(&dense_speeds).map(|(s, d)| s / d).collect();
    let (speed, relative) = (median(&mut speeds), median(&mut relative));
    Ok(Point { zeroed, perplexity: ppl, speed, relative })
}

/// The line above the table: what was measured, on what.
fn describe(
    engine: &Engine,
    config: &SessionConfig,
    eval: &ChunkedText,
    calibration: &ChunkedText,
    args: &SweepArgs,
) -> String {
    let mut line = format!(
        "{}, {} threads: perplexity on the first {} chunks of {} tokens of {}; thresholds \
         calibrated on {} chunks of {}",
        model_name(engine),
        config.threads,
        eval.chunks,
        eval.ctx,
        eval.name,
        calibration.chunks,
        calibration.name,
    );
    if args.gen > 0 {
        let _ = write!(
            line,
            "; decode: {} tokens after a {PROMPT_TOKENS}-token prompt, median of {} run{}, \
             \"speed\" the median ratio to the dense runs they alternated with",
            args.gen,
            args.reps,
            if args.reps == 1 { "" } else { "s" }
        );
    }
    line.push('.');
    line
}

/// One row of the table.
fn row(criterion: &str, target: f64, point: &Point, dense: &Point) -> String {
    let (speed, ratio) = match (point.speed, point.relative) {
        (Some(s), Some(r)) => (format!("{s:.1}"), format!("{r:.2}×")),
        _ => ("—".into(), "—".into()),
    };
    format!(
        "| {criterion} | {target} | {:.1}% | {:.4} | {:+.2}% | {speed} | {ratio} |",
        point.zeroed * 100.0,
        point.perplexity.ppl,
        change(point, dense),
    )
}

/// Perplexity change from dense, in percent.
fn change(point: &Point, dense: &Point) -> f64 {
    (point.perplexity.ppl / dense.perplexity.ppl - 1.0) * 100.0
}

/// The frontier: per criterion, the sparsity reached at each of [`FRONTIER_LEVELS`].
fn frontier_table(curves: &[(Score, Vec<Point>)], dense: &Point) -> Vec<String> {
    let mut lines = vec![
        "FFN neurons zeroed on the evaluation text at each perplexity cost, interpolated \
         linearly between the measured targets:"
            .to_string(),
        String::new(),
    ];
    let levels: Vec<String> = FRONTIER_LEVELS.iter().map(|l| format!("at +{l}%")).collect();
    lines.push(format!("| criterion | {} |", levels.join(" | ")));
    lines.push(format!("| --- |{}", " ---: |".repeat(levels.len())));
    for (score, points) in curves {
        let measured: Vec<(f64, f64)> =
            points.iter().map(|p| (p.zeroed, change(p, dense))).collect();
        let cells: Vec<String> = FRONTIER_LEVELS
            .iter()
            .map(|&level| {
                sparsity_at(&measured, level)
                    .map_or("not reached".into(), |s| format!("{:.1}%", s * 100.0))
            })
            .collect();
        lines.push(format!("| {score} | {} |", cells.join(" | ")));
    }
    lines
}

/// The sparsity at which the perplexity change first reaches `level`, interpolated linearly
/// between the measured `(sparsity, change)` points taken in order of sparsity; `None` when
/// no point reaches it. The first crossing counts, so a noisy curve that dips back under
/// `level` further on does not claim more sparsity than it holds.
fn sparsity_at(points: &[(f64, f64)], level: f64) -> Option<f64> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut below: Option<(f64, f64)> = None;
    for (sparsity, change) in sorted {
        if change >= level {
            return Some(match below {
                // `c0 < level <= change`, so the slope is positive.
                Some((s0, c0)) => s0 + (level - c0) / (change - c0) * (sparsity - s0),
                None => sparsity,
            });
        }
        below = Some((sparsity, change));
    }
    None
}

/// The median of `values` (sorted in place); `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparsity_at_interpolates_between_the_points_around_the_level() {
        // The cats points of docs/SPARSITY.md: dense, then (zeroed, change %).
        let points = [(0.0, 0.0), (0.100, 0.34), (0.201, 1.03), (0.301, 5.66), (0.400, 14.95)];
        let at = |level| sparsity_at(&points, level).unwrap();
        assert!((at(1.0) - 0.19661).abs() < 1e-4, "{}", at(1.0));
        assert!((at(5.0) - 0.28675).abs() < 1e-4, "{}", at(5.0));
        // A level met exactly at a point is that point's sparsity.
        assert!((at(5.66) - 0.301).abs() < 1e-12);
        // Never reached.
        assert_eq!(sparsity_at(&points, 20.0), None);
        assert_eq!(sparsity_at(&[], 1.0), None);
    }

    #[test]
    fn sparsity_at_sorts_by_sparsity_and_takes_the_first_crossing() {
        // Out of order, and noisy: the change dips back under 2% after crossing it.
        let points = [(0.5, 1.5), (0.0, 0.0), (0.4, 3.0), (0.2, 1.0)];
        // Between (0.2, 1.0) and (0.4, 3.0): halfway.
        assert!((sparsity_at(&points, 2.0).unwrap() - 0.3).abs() < 1e-12);
        // A level the first point already reaches.
        assert_eq!(sparsity_at(&points, -1.0), Some(0.0));
    }

    #[test]
    fn targets_parse_from_shares_and_dense() {
        assert_eq!(parse_target("dense"), Ok(0.0));
        assert_eq!(parse_target("0.25"), Ok(0.25));
        assert!(parse_target("1.5").is_err());
        assert!(parse_target("-0.1").is_err());
        assert!(parse_target("half").is_err());
        assert!(parse_target("NaN").is_err());
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
