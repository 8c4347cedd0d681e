//! A GGUF file from arbitrary bytes: parsing, the metadata getters and reading every tensor
//! must return a value or an error, never panic, hang or read out of bounds.
#![no_main]

use lantern_io::{GgufModel, ModelSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = GgufModel::open(ModelSource::from_vec(data.to_vec())) {
        let _ = model.gguf().architecture();
        for (key, _) in model.metadata().iter() {
            let _ = model.metadata().u32(key);
            let _ = model.metadata().str(key);
            let _ = model.metadata().strings(key);
        }
        for info in model.gguf().tensors() {
            let _ = model.tensor(&info.name);
        }
    }
});
