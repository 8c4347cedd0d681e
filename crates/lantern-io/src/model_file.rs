//! [`ModelFile`], what the runtime loads a model from, and [`GgufModel`]: a [`ModelSource`]
//! paired with its parsed [`Gguf`] header.
//!
//! Tensors come out as [`QTensor`]s whose bytes are zero-copy slices of the source: a
//! memory-mapped model is paged in lazily, tensor by tensor, as the runtime touches it.
//! Every tensor's range was checked against the file when the header was parsed.

use std::collections::BTreeMap;

use lantern_core::{GgmlType, QTensor};

use crate::gguf::{Gguf, Metadata};
use crate::{Error, ModelSource, Result};

/// A model file the runtime can load: metadata and tensors by name. GGUF files
/// ([`GgufModel`]) and `.lantern` containers ([`ContainerModel`]) are both.
///
/// [`ContainerModel`]: crate::container::ContainerModel
pub trait ModelFile: std::fmt::Debug + Send + Sync {
    /// The metadata key-value pairs.
    fn metadata(&self) -> &Metadata;

    /// The tensor called `name`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] if there is no such tensor, or what reading it found wrong.
    fn tensor(&self, name: &str) -> Result<QTensor>;

    /// Whether the file has a tensor called `name`.
    fn has_tensor(&self, name: &str) -> bool;

    /// The bytes the model was read from.
    fn source(&self) -> &ModelSource;
}

/// Opens `source` as whichever kind of model file it is: a `.lantern` container if it
/// starts with the container's magic, a GGUF file otherwise.
///
/// # Errors
/// The errors of [`ContainerModel::open`](crate::container::ContainerModel::open) or
/// [`GgufModel::open`].
pub fn open_model_file(source: ModelSource) -> Result<Box<dyn ModelFile>> {
    if source.bytes().starts_with(&crate::container::MAGIC) {
        Ok(Box::new(crate::container::ContainerModel::open(source)?))
    } else {
        Ok(Box::new(GgufModel::open(source)?))
    }
}

impl ModelFile for GgufModel {
    fn metadata(&self) -> &Metadata {
        GgufModel::metadata(self)
    }

    fn tensor(&self, name: &str) -> Result<QTensor> {
        GgufModel::tensor(self, name)
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.gguf.tensor_info(name).is_some()
    }

    fn source(&self) -> &ModelSource {
        GgufModel::source(self)
    }
}

/// A GGUF model file: its bytes and its parsed header.
#[derive(Clone, Debug)]
pub struct GgufModel {
    source: ModelSource,
    gguf: Gguf,
}

impl GgufModel {
    /// Parses the GGUF header of `source`.
    ///
    /// # Errors
    /// Any error of [`Gguf::parse`].
    #[tracing::instrument(level = "debug", skip_all, fields(path = ?source.path()))]
    pub fn open(source: ModelSource) -> Result<Self> {
        let start = std::time::Instant::now();
        let gguf = Gguf::parse(source.bytes())?;
        tracing::debug!(
            tensors = gguf.tensors().len(),
            kv = gguf.metadata().len(),
            mapped = source.is_mapped(),
            elapsed_us = start.elapsed().as_micros() as u64,
            "opened GGUF model"
        );
        Ok(Self { source, gguf })
    }

    /// The parsed header.
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    /// The metadata key-value pairs.
    pub fn metadata(&self) -> &Metadata {
        self.gguf.metadata()
    }

    /// The bytes the model was parsed from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The tensor called `name`, as a zero-copy view of the source's bytes.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] if there is no such tensor; [`Error::Tensor`] naming it if
    /// the core crate rejects its shape and bytes.
    pub fn tensor(&self, name: &str) -> Result<QTensor> {
        let info = self
            .gguf
            .tensor_info(name)
            .ok_or_else(|| Error::MissingTensor { name: name.to_owned() })?;
        let wrap = |source| Error::Tensor { name: name.to_owned(), source };
        // The parser checked offset + size <= file length, and the file length is a usize.
        let start = usize::try_from(info.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(info.size);
        let bytes = self.source.bytes().slice(start..end).map_err(wrap)?;
        QTensor::new(info.ty, &info.dims, bytes).map_err(wrap)
    }

    /// Tensor count and total bytes per element type, ordered by type (for
    /// `lantern inspect`).
    ///
    /// ```
    /// use lantern_core::GgmlType;
    /// use lantern_io::{GgufModel, GgufWriter, ModelSource};
    ///
    /// let mut w = GgufWriter::new();
    /// w.tensor_f32("a", &[2], &[1.0, 2.0])?;
    /// w.tensor_f32("b", &[3], &[1.0, 2.0, 3.0])?;
    /// let model = GgufModel::open(ModelSource::from_vec(w.to_bytes()?))?;
    /// assert_eq!(model.bytes_by_type(), vec![(GgmlType::F32, 2, 20)]);
    /// # Ok::<(), lantern_io::Error>(())
    /// ```
    pub fn bytes_by_type(&self) -> Vec<(GgmlType, usize, u64)> {
        let mut by_type: BTreeMap<GgmlType, (usize, u64)> = BTreeMap::new();
        for t in self.gguf.tensors() {
            let entry = by_type.entry(t.ty).or_default();
            entry.0 += 1;
            entry.1 += t.size as u64;
        }
        by_type.into_iter().map(|(ty, (n, bytes))| (ty, n, bytes)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgufWriter;

    #[test]
    fn tensors_are_views_of_the_source() {
        let mut w = GgufWriter::new();
        w.tensor_f32("x", &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let model = GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap())).unwrap();
        let t = model.tensor("x").unwrap();
        assert_eq!(t.dims(), &[2, 2]);
        let info = &model.gguf().tensors()[0];
        let start = info.offset as usize;
        assert_eq!(t.bytes(), &model.source().bytes()[start..start + 16]);
        assert_eq!(t.bytes().as_ptr(), model.source().bytes()[start..].as_ptr());
        assert!(matches!(model.tensor("y"), Err(Error::MissingTensor { .. })));
    }
}
