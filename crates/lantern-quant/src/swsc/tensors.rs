//! A [`Swsc`] as the tensors a `.lantern` container stores in place of its matrix
//! (docs/format.md): the centroids, the labels' bits as I16, and the residual's factors.

use half::f16;
use lantern_core::{GgmlType, QTensor, TensorBytes};
use lantern_runtime::swsc_tensor_names;

use super::{Precision, Swsc};
use crate::{Error, Result};

impl Swsc {
    /// The tensors that stand for the matrix named `matrix` (`blk.N.PART.weight`), as
    /// [`lantern_runtime::SwscMatrix`] reads them: `PART.swsc_centroids` `[k, out]`,
    /// `PART.swsc_labels` I16 `[in]` and, for a rank above 0, `PART.swsc_us` `[r, out]` and
    /// `PART.swsc_vt` `[in, r]`, the factors in F16 or F32 as [`Swsc::precision`] says.
    ///
    /// # Errors
    /// [`Error::MatrixName`] for a name that does not end in `.weight`.
    pub fn tensors(&self, matrix: &str) -> Result<Vec<(String, QTensor)>> {
        let [centroids, labels, us, vt] =
            swsc_tensor_names(matrix).ok_or_else(|| Error::MatrixName(matrix.to_owned()))?;
        let (k, r) = (self.clusters, self.rank);
        let mut out = vec![
            (centroids, self.factor(&self.centroids, &[k, self.rows])?),
            (labels, {
                let bytes = self.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
                QTensor::new(GgmlType::I16, &[self.cols], TensorBytes::from_vec(bytes))?
            }),
        ];
        if r > 0 {
            out.push((us, self.factor(&self.us, &[r, self.rows])?));
            out.push((vt, self.factor(&self.vt, &[self.cols, r])?));
        }
        Ok(out)
    }

    /// `values` (already rounded to the precision) as a tensor of that precision.
    fn factor(&self, values: &[f32], dims: &[usize]) -> Result<QTensor> {
        let (ty, bytes): (_, Vec<u8>) = match self.precision {
            Precision::F16 => (
                GgmlType::F16,
                values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
            ),
            Precision::F32 => {
                (GgmlType::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
        };
        Ok(QTensor::new(ty, dims, TensorBytes::from_vec(bytes))?)
    }
}
