//! [`FfnThresholds`]: per-layer or per-neuron thresholds on a [`Criterion`]'s score, below
//! which an FFN neuron is zeroed; stored in a model's metadata or in a text file.
//!
//! Two scores ([`Criterion`]):
//! - [`Criterion::Gate`], CATS: `|SiLU(gate_i)|`, known before the up projection, so a
//!   zeroed neuron needs neither its up row nor its down column.
//! - [`Criterion::GateUp`]: `|SiLU(gate_i) · up_i| · w_i`, the neuron's actual output
//!   scaled by a per-neuron weight (the norm of its down column makes it the size of the
//!   neuron's contribution to the block's output). It needs every up row, and saves only
//!   down columns.
//!
//! A per-neuron weight `w_i` folds into the thresholds: `score · w_i < t` is
//! `score < t / w_i`, so thresholds are per neuron, or one per layer.
//!
//! # Text files
//! What `lantern calibrate` writes and `--thresholds` reads ([`FfnThresholds::to_text`],
//! [`FfnThresholds::parse`]): `#` lines say where the thresholds came from, a `criterion`
//! line names the score (`gate` or `gate-up`), then one line per layer of one threshold, or
//! one per neuron, separated by spaces.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use lantern_io::{Metadata, Value};

use crate::{Error, Result};

/// Metadata keys of thresholds stored with a model (in a `.lantern` container).
const KEY_CRITERION: &str = "lantern.ffn.criterion";
const KEY_THRESHOLDS: &str = "lantern.ffn.thresholds";
const KEY_LAYER_LENGTHS: &str = "lantern.ffn.layer_lengths";

/// What a neuron is scored on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// `|SiLU(gate)|` (CATS).
    Gate,
    /// `|SiLU(gate) · up|`.
    GateUp,
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gate => "gate",
            Self::GateUp => "gate-up",
        })
    }
}

impl FromStr for Criterion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gate" => Ok(Self::Gate),
            "gate-up" => Ok(Self::GateUp),
            _ => Err(Error::InvalidSetting {
                name: "FFN sparsity criterion",
                reason: format!("{s:?} is not gate or gate-up"),
            }),
        }
    }
}

/// Thresholds on a [`Criterion`]'s score: neuron `i` of layer `l` is zeroed when its score
/// is below `thresholds[l][i]`, or `thresholds[l][0]` when the layer has one. All zeros is
/// the dense model.
#[derive(Clone, Debug, PartialEq)]
pub struct FfnThresholds {
    pub(crate) criterion: Criterion,
    pub(crate) layers: Vec<Vec<f32>>,
}

impl FfnThresholds {
    /// Thresholds per layer: one value for the whole layer, or one per neuron.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a negative or non-finite threshold or an empty layer.
    pub fn new(criterion: Criterion, layers: Vec<Vec<f32>>) -> Result<Self> {
        let bad = |reason: String| Error::InvalidSetting { name: "FFN thresholds", reason };
        if let Some(l) = layers.iter().position(Vec::is_empty) {
            return Err(bad(format!("layer {l} has no threshold")));
        }
        if let Some(t) = layers.iter().flatten().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(bad(format!("{t} is not a finite value of at least 0")));
        }
        Ok(Self { criterion, layers })
    }

    /// One threshold per layer, on `criterion`.
    ///
    /// # Errors
    /// As [`FfnThresholds::new`].
    pub fn per_layer(criterion: Criterion, thresholds: Vec<f32>) -> Result<Self> {
        Self::new(criterion, thresholds.into_iter().map(|t| vec![t]).collect())
    }

    /// The score the thresholds apply to.
    pub fn criterion(&self) -> Criterion {
        self.criterion
    }

    /// The thresholds, layer by layer.
    pub fn layers(&self) -> &[Vec<f32>] {
        &self.layers
    }

    /// The metadata pairs that store these thresholds with a model: the criterion, every
    /// threshold in one array, and how many each layer has.
    pub fn to_metadata(&self) -> Vec<(String, Value)> {
        let lengths: Vec<u32> = self.layers.iter().map(|l| l.len() as u32).collect();
        let values: Vec<f32> = self.layers.iter().flatten().copied().collect();
        vec![
            (KEY_CRITERION.into(), self.criterion.to_string().into()),
            (KEY_THRESHOLDS.into(), values.into()),
            (KEY_LAYER_LENGTHS.into(), lengths.into()),
        ]
    }

    /// The thresholds stored in `metadata` ([`FfnThresholds::to_metadata`]), if any.
    ///
    /// # Errors
    /// [`Error::Io`] for keys of the wrong type, [`Error::InvalidSetting`] for thresholds
    /// that do not fit together.
    pub fn from_metadata(metadata: &Metadata) -> Result<Option<Self>> {
        let Some(criterion) = metadata.opt_str(KEY_CRITERION)? else { return Ok(None) };
        let criterion = criterion.parse()?;
        let values = metadata.f32s(KEY_THRESHOLDS)?;
        let lengths = metadata.i32s(KEY_LAYER_LENGTHS)?;
        let total =
            lengths.iter().try_fold(0usize, |sum, &n| sum.checked_add(usize::try_from(n).ok()?));
        if total != Some(values.len()) {
            return Err(Error::InvalidSetting {
                name: "FFN thresholds in the model's metadata",
                reason: format!("layer lengths {lengths:?} do not add up to {}", values.len()),
            });
        }
        let mut rest = &values[..];
        let layers = lengths
            .iter()
            .map(|&n| {
                let (layer, tail) = rest.split_at(n as usize);
                rest = tail;
                layer.to_vec()
            })
            .collect();
        Self::new(criterion, layers).map(Some)
    }

    /// The thresholds as a text file: a title line, each of `about` as a `#` comment line,
    /// the criterion line, then a line per layer:
    /// ```text
    /// # lantern FFN thresholds: one line per layer
    /// criterion gate
    /// 1.5e-2
    /// 3.1e-2 2.7e-2 …
    /// ```
    pub fn to_text(&self, about: &[String]) -> String {
        let mut text = String::from("# lantern FFN thresholds: one line per layer\n");
        for line in about {
            let _ = writeln!(text, "# {line}");
        }
        let _ = writeln!(text, "criterion {}", self.criterion);
        for layer in &self.layers {
            let values: Vec<String> = layer.iter().map(|t| format!("{t:e}")).collect();
            let _ = writeln!(text, "{}", values.join(" "));
        }
        text
    }

    /// Thresholds from the text [`FfnThresholds::to_text`] writes.
    ///
    /// # Errors
    /// [`Error::InvalidThresholds`] naming the line at fault: a value that is not a number,
    /// an unknown criterion, no criterion line; and as [`FfnThresholds::new`].
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |line: usize, reason: String| Error::InvalidThresholds { line, reason };
        let mut criterion = None;
        let mut layers = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix("criterion ") {
                let parsed = name.trim().parse::<Criterion>();
                criterion =
                    Some(parsed.map_err(|_| bad(i + 1, format!("unknown criterion {name:?}")))?);
                continue;
            }
            let values = line
                .split_whitespace()
                .map(|v| v.parse::<f32>().map_err(|_| bad(i + 1, format!("{v:?} is not a number"))))
                .collect::<Result<Vec<_>>>()?;
            layers.push(values);
        }
        let Some(criterion) = criterion else {
            return Err(bad(0, "no `criterion gate|gate-up` line".into()));
        };
        Self::new(criterion, layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_refuse_bad_values() {
        assert!(FfnThresholds::per_layer(Criterion::Gate, vec![0.1, f32::NAN]).is_err());
        assert!(FfnThresholds::per_layer(Criterion::Gate, vec![-1.0]).is_err());
        assert!(FfnThresholds::new(Criterion::Gate, vec![vec![]]).is_err());
    }

    #[test]
    fn thresholds_survive_the_metadata() {
        let t = FfnThresholds::new(Criterion::GateUp, vec![vec![0.5], vec![0.1, 0.2]]).unwrap();
        let mut w = lantern_io::GgufWriter::new();
        for (key, value) in t.to_metadata() {
            w.metadata(key, value);
        }
        let bytes = w.to_bytes().unwrap();
        let gguf = lantern_io::Gguf::parse(&bytes).unwrap();
        assert_eq!(FfnThresholds::from_metadata(gguf.metadata()).unwrap(), Some(t));
        let empty = lantern_io::Gguf::parse(&lantern_io::GgufWriter::new().to_bytes().unwrap());
        assert_eq!(FfnThresholds::from_metadata(empty.unwrap().metadata()).unwrap(), None);
    }

    #[test]
    fn thresholds_survive_their_text_and_bad_lines_are_named() {
        let layers = vec![vec![0.0], vec![1.5e-3, 0.0123, 7.0]];
        let t = FfnThresholds::new(Criterion::GateUp, layers).unwrap();
        let text = t.to_text(&["criterion: test".into()]);
        assert!(text.contains("# criterion: test\n"), "{text}");
        assert_eq!(FfnThresholds::parse(&text).unwrap(), t);
        let err = FfnThresholds::parse("# x\ncriterion gate\n0.1\nfast\n").unwrap_err();
        assert!(matches!(err, Error::InvalidThresholds { line: 4, .. }), "{err}");
        assert!(err.to_string().contains("fast"), "{err}");
        assert!(FfnThresholds::parse("criterion gate\n-1\n").is_err());
        let err = FfnThresholds::parse("criterion relu\n0.1\n").unwrap_err();
        assert!(err.to_string().contains("relu"), "{err}");
        assert!(FfnThresholds::parse("0.1\n").unwrap_err().to_string().contains("criterion"));
    }
}
