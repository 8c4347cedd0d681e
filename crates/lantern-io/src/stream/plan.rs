//! The read plan of a streamed model: what each load brings into one slab.
//!
//! The caller names its units in the order of use (for a decoder: each block's matrices,
//! then the output head). A slab holds the largest unit of several tensors; a single tensor
//! larger than that, such as an output head, is cut into runs of whole rows that fit, so
//! that the pool stays the size of a layer.

use std::ops::Range;

use super::buffer::ALIGN;
use crate::container::Container;
use crate::{Error, Result};

/// Tensors placed in a slab start on a cache line.
const PLACEMENT: usize = 64;

/// What one load reads: whole tensors, or a run of one tensor's rows.
#[derive(Clone, Debug)]
pub(crate) struct Load {
    /// The caller's unit this load is (part of).
    pub(crate) unit: usize,
    pub(crate) pieces: Vec<Piece>,
}

/// One tensor's rows `rows`, from chunks `chunks`, at `at` in the slab.
#[derive(Clone, Debug)]
pub(crate) struct Piece {
    pub(crate) tensor: usize,
    pub(crate) chunks: Range<usize>,
    pub(crate) rows: Range<usize>,
    pub(crate) bytes: usize,
    pub(crate) at: usize,
}

impl Load {
    /// Bytes of slab the load fills, placement padding included.
    pub(crate) fn slab_bytes(&self) -> usize {
        self.pieces.last().map_or(0, |p| p.at + p.bytes)
    }
}

/// The loads of `units`, in order, and the slab size that holds any one of them.
pub(crate) fn plan(container: &Container, units: &[Vec<String>]) -> Result<(Vec<Load>, usize)> {
    let whole = units
        .iter()
        .enumerate()
        .map(|(unit, names)| {
            let tensors = names
                .iter()
                .map(|name| {
                    container
                        .tensors()
                        .iter()
                        .position(|t| &t.name == name)
                        .ok_or_else(|| Error::MissingTensor { name: name.clone() })
                })
                .collect::<Result<Vec<_>>>()?;
            let pieces =
                tensors.iter().map(|&t| whole_tensor(container, t)).collect::<Result<Vec<_>>>()?;
            Ok(place(unit, pieces))
        })
        .collect::<Result<Vec<_>>>()?;
    // The slab: the largest unit of several tensors, and at least the largest chunk.
    let largest_chunk = container.chunks().iter().map(|c| c.raw_bytes as usize).max().unwrap_or(0);
    let limit = whole
        .iter()
        .filter(|l| l.pieces.len() > 1)
        .map(Load::slab_bytes)
        .chain([largest_chunk.next_multiple_of(PLACEMENT)])
        .max()
        .unwrap_or(0);
    let mut loads = Vec::new();
    for load in whole {
        match &load.pieces[..] {
            [one] if one.bytes > limit && container.tensors()[one.tensor].dims.len() == 2 => {
                for rows in row_runs(container, one, limit) {
                    loads.push(place(load.unit, [rows]));
                }
            }
            _ => loads.push(load),
        }
    }
    let slab = loads.iter().map(Load::slab_bytes).max().unwrap_or(0).next_multiple_of(ALIGN);
    Ok((loads, slab))
}

/// All of `tensor`, which must hold data: a load is complete when its last chunk is.
fn whole_tensor(container: &Container, tensor: usize) -> Result<Piece> {
    let entry = &container.tensors()[tensor];
    if entry.chunks.is_empty() {
        let detail = "holds no data, so it cannot be streamed".into();
        return Err(Error::Corrupt { what: entry.name.clone(), detail });
    }
    let rows = entry.dims.iter().skip(1).product();
    let bytes = container.raw_bytes(entry) as usize;
    Ok(Piece { tensor, chunks: entry.chunks.clone(), rows: 0..rows, bytes, at: 0 })
}

/// `pieces` one after another, each on a cache line.
fn place(unit: usize, pieces: impl IntoIterator<Item = Piece>) -> Load {
    let mut at = 0;
    let pieces = pieces
        .into_iter()
        .map(|p| {
            let placed = Piece { at, ..p };
            at = (at + placed.bytes).next_multiple_of(PLACEMENT);
            placed
        })
        .collect();
    Load { unit, pieces }
}

/// `tensor` cut at chunk boundaries that are row boundaries into runs of at most `limit`
/// bytes where it can be; a run between two such boundaries that is larger stays whole.
fn row_runs(container: &Container, tensor: &Piece, limit: usize) -> Vec<Piece> {
    let chunks = container.chunks();
    let row_bytes = tensor.bytes / tensor.rows.len().max(1);
    let mut runs = Vec::new();
    let (mut first, mut run_bytes, mut done) = (tensor.chunks.start, 0, 0);
    let mut cut = None; // the last chunk end within `limit` that is a row boundary
    let mut i = tensor.chunks.start;
    while i < tensor.chunks.end {
        let next = run_bytes + chunks[i].raw_bytes as usize;
        if next > limit && run_bytes > 0 {
            if let Some((end, bytes)) = cut.take() {
                runs.push(run(tensor, first..end, done, bytes, row_bytes));
                done += bytes;
                first = end;
                run_bytes = 0;
                i = end;
                continue;
            }
        }
        run_bytes = next;
        i += 1;
        if (done + run_bytes) % row_bytes.max(1) == 0 {
            cut = Some((i, run_bytes));
        }
    }
    runs.push(run(tensor, first..tensor.chunks.end, done, run_bytes, row_bytes));
    runs
}

fn run(tensor: &Piece, chunks: Range<usize>, done: usize, bytes: usize, row_bytes: usize) -> Piece {
    let rows = done / row_bytes.max(1)..(done + bytes) / row_bytes.max(1);
    Piece { tensor: tensor.tensor, chunks, rows, bytes, at: 0 }
}
