//! [`Replaced`]: a model file with some of its tensors swapped for others, without writing a
//! new file: how a re-quantizer tries a layer in another format.

use std::collections::HashMap;
use std::sync::Arc;

use lantern_core::QTensor;

use crate::gguf::Metadata;
use crate::{Error, ModelFile, ModelSource, Result};

/// `base` with the tensors of `replacements` in place of its own of the same name. The base
/// is shared, so many variants of one model cost only their replacements.
#[derive(Debug)]
pub struct Replaced {
    base: Arc<dyn ModelFile>,
    replacements: HashMap<String, QTensor>,
}

impl Replaced {
    /// `base` with `replacements`, each checked to match one of its tensors by name, with
    /// as many dimensions and none of them larger: a replacement may be smaller, as a
    /// pruned matrix is (the model's loader checks that the new shapes fit together).
    ///
    /// # Errors
    /// [`Error::Replacement`] for a replacement that matches no tensor or is larger in some
    /// dimension, and the errors of reading the tensor it replaces.
    pub fn new(
        base: Arc<dyn ModelFile>,
        replacements: impl IntoIterator<Item = (String, QTensor)>,
    ) -> Result<Self> {
        let replacements: HashMap<_, _> = replacements.into_iter().collect();
        for (name, tensor) in &replacements {
            if !base.has_tensor(name) {
                let detail = "the model has no tensor of that name".to_string();
                return Err(Error::Replacement { name: name.clone(), detail });
            }
            let own = base.tensor(name)?;
            let fits = own.dims().len() == tensor.dims().len()
                && own.dims().iter().zip(tensor.dims()).all(|(own, new)| new <= own);
            if !fits {
                let detail =
                    format!("dimensions {:?}, not at most {:?}", tensor.dims(), own.dims());
                return Err(Error::Replacement { name: name.clone(), detail });
            }
        }
        Ok(Self { base, replacements })
    }
}

impl ModelFile for Replaced {
    fn metadata(&self) -> &Metadata {
        self.base.metadata()
    }

    fn tensor(&self, name: &str) -> Result<QTensor> {
        match self.replacements.get(name) {
            Some(tensor) => Ok(tensor.clone()),
            None => self.base.tensor(name),
        }
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.base.has_tensor(name)
    }

    fn source(&self) -> &ModelSource {
        self.base.source()
    }
}
