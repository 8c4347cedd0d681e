//! [`Unfused`]: a model file whose fused matrices read as the separate ones of the generic
//! block: Phi-3's `attn_qkv` (Q, K and V rows in one matrix) and its `ffn_up` holding the
//! gate's rows then the up projection's. The parts are views of the same bytes.

use std::collections::HashMap;
use std::ops::Range;

use lantern_core::QTensor;
use lantern_io::gguf::block_tensor_name;
use lantern_io::{Metadata, ModelFile, ModelSource};

use crate::ModelConfig;

/// `file`, with each fused matrix's parts under the names of the block's own matrices.
#[derive(Debug)]
pub(crate) struct Unfused<'a> {
    file: &'a dyn ModelFile,
    /// A part's name, and the fused tensor and rows it is.
    parts: HashMap<String, (String, Range<usize>)>,
}

impl<'a> Unfused<'a> {
    /// `file` with the parts of its fused matrices, shaped as `config` says; `file` as it is
    /// when it has none.
    pub(crate) fn new(file: &'a dyn ModelFile, config: &ModelConfig) -> lantern_io::Result<Self> {
        let (q, kv) = (config.q_dim(), config.kv_dim());
        let mut parts = HashMap::new();
        for layer in 0..config.n_layers {
            let name = |part: &str| block_tensor_name(layer, &format!("{part}.weight"));
            let (qkv, gate, up) = (name("attn_qkv"), name("ffn_gate"), name("ffn_up"));
            if file.has_tensor(&qkv) {
                for (part, rows) in
                    [("attn_q", 0..q), ("attn_k", q..q + kv), ("attn_v", q + kv..q + 2 * kv)]
                {
                    parts.insert(name(part), (qkv.clone(), rows));
                }
            }
            if !file.has_tensor(&gate) && file.has_tensor(&up) {
                // Gate and up in one matrix of twice the FFN width, gate first.
                let rows = file.tensor(&up)?.n_rows();
                let f = rows / 2;
                parts.insert(gate, (up.clone(), 0..f));
                parts.insert(up.clone(), (up, f..rows));
            }
        }
        Ok(Self { file, parts })
    }
}

impl ModelFile for Unfused<'_> {
    fn metadata(&self) -> &Metadata {
        self.file.metadata()
    }

    fn tensor(&self, name: &str) -> lantern_io::Result<QTensor> {
        match self.parts.get(name) {
            Some((fused, rows)) => {
                let tensor = self.file.tensor(fused)?;
                tensor
                    .row_range(rows.clone())
                    .map_err(|source| lantern_io::Error::Tensor { name: fused.clone(), source })
            }
            None => self.file.tensor(name),
        }
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.parts.contains_key(name) || self.file.has_tensor(name)
    }

    fn source(&self) -> &ModelSource {
        self.file.source()
    }
}
