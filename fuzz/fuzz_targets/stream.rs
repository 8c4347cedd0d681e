//! A `.lantern` container from arbitrary bytes, streamed: opening it from a file, planning
//! loads of every tensor, taking them at depth 0 and through the prefetch threads, and
//! reading rows must return a value or an error, never panic, hang or read out of bounds.
//!
//! Checksums are rewritten as in the container target, so mutations reach the index, the
//! plan and the decoders.
#![no_main]

use lantern_io::container::ContainerModel;
use lantern_io::stream::{StorageModel, StreamConfig, StreamedContainer};
use lantern_io::ModelSource;
use libfuzzer_sys::fuzz_target;

mod checksums;
use checksums::{fix_chunks, fix_sections};

/// Most values a row read may ask for, so that a hostile shape cannot make the harness
/// allocate a huge output.
const MAX_ROW: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut fixed = data.to_vec();
    fix_sections(&mut fixed);
    if let Ok(model) = ContainerModel::open(ModelSource::from_vec(fixed.clone())) {
        fix_chunks(&mut fixed, model.container().chunks().len());
    }
    let path = std::env::temp_dir().join(format!("lantern-fuzz-{}.lantern", std::process::id()));
    if std::fs::write(&path, &fixed).is_err() {
        return;
    }
    let Ok(file) = StreamedContainer::open(&path, StorageModel::UNTHROTTLED) else { return };
    let tensors = file.container().tensors();
    let units: Vec<Vec<String>> = tensors.iter().map(|t| vec![t.name.clone()]).collect();
    for depth in [0, 1] {
        let config = StreamConfig { budget: 64 << 20, depth, row_lookups: true };
        let Ok(mut stream) = file.stream(&units, config) else { continue };
        let loads = stream.loads_of(units.len().saturating_sub(1)).end;
        for load in 0..loads {
            if stream.take(load).is_err() {
                break;
            }
        }
    }
    for t in tensors.iter().filter(|t| t.dims.len() == 2 && t.dims[0] <= MAX_ROW) {
        let mut out = vec![0.0; t.dims[0]];
        let _ = file.dequantize_rows(&t.name, &[0], &mut out);
    }
});
