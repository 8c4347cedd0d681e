//! The `.lantern` container: a model's metadata, a tensor index, and the tensor data in
//! checksummed, optionally LZ4-compressed chunks laid out in layer order. The format is
//! specified in `docs/format.md`; [`Container::parse`] checks everything it says.
//!
//! - [`Container`]: a parsed and validated container: metadata, tensors and chunks.
//! - [`ContainerModel`]: a source and its container, handing out tensors by name, each chunk
//!   verified against its CRC-32 and decompressed.
//! - [`write_container`]: converts a GGUF model into a container file, atomically;
//!   [`write_container_into`] into an [`AtomicFile`](crate::AtomicFile) created beforehand.
//! - [`to_planes`], [`from_planes`]: the byte-plane layout ([`Transform::Planes`]), which the
//!   writer uses for a tensor when it makes the tensor's chunks compress measurably better.

mod planes;
mod read;
mod write;

pub use planes::{from_planes, from_planes_into, to_planes};
pub(crate) use read::decode_chunk;
pub use read::{Container, ContainerModel};
pub use write::{
    write_container, write_container_into, write_container_with, ConvertStats, WriteOptions,
    PLANES_GAIN,
};

use std::ops::Range;

use lantern_core::GgmlType;

/// The first eight bytes of every container.
pub const MAGIC: [u8; 8] = *b"LANTERN\0";
/// The container version this build writes and reads.
pub const VERSION: u32 = 1;
/// Chunk alignment written by default: a page, so that chunks can be read with `O_DIRECT`.
pub const DEFAULT_ALIGNMENT: u32 = 4096;
/// Raw bytes per chunk that the writer cuts tensors into.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Bytes of the fixed header.
const HEADER_BYTES: usize = 64;
/// Largest raw chunk a reader accepts: caps the memory one chunk can make it allocate.
const MAX_CHUNK_RAW: u64 = 16 << 20;
/// Smallest and largest alignment a reader accepts.
const ALIGNMENTS: Range<u64> = 64..(1 << 24) + 1;
/// `layer` of a tensor outside the blocks.
const NO_LAYER: u32 = u32::MAX;

/// How a chunk's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// As they are.
    Raw,
    /// LZ4 block format.
    Lz4,
}

impl Codec {
    fn id(self) -> u32 {
        match self {
            Self::Raw => 0,
            Self::Lz4 => 1,
        }
    }

    fn from_id(id: u32) -> Option<Self> {
        match id {
            0 => Some(Self::Raw),
            1 => Some(Self::Lz4),
            _ => None,
        }
    }
}

/// How a tensor's raw bytes are laid out in each of its chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// As in the GGUF file.
    None,
    /// Each chunk's blocks as byte planes ([`to_planes`]), blocks of the type's size.
    Planes,
}

impl Transform {
    fn id(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Planes => 1,
        }
    }

    fn from_id(id: u32) -> Option<Self> {
        match id {
            0 => Some(Self::None),
            1 => Some(Self::Planes),
            _ => None,
        }
    }
}

/// One chunk of tensor data, as the index records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Absolute offset of its stored bytes.
    pub offset: u64,
    /// Bytes on disk.
    pub stored_bytes: u64,
    /// Bytes once decoded.
    pub raw_bytes: u64,
    /// How the bytes are stored.
    pub codec: Codec,
    /// CRC-32 of the stored bytes.
    pub crc: u32,
}

/// One tensor, as the index records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Its name, as in the GGUF file.
    pub name: String,
    /// Its element type.
    pub ty: GgmlType,
    /// Its dimensions, innermost first.
    pub dims: Vec<usize>,
    /// The block `i` of a `blk.i.*` tensor, `None` for the others.
    pub layer: Option<u32>,
    /// How each chunk lays out its raw bytes.
    pub transform: Transform,
    /// Its chunks, as indices into [`Container::chunks`].
    pub chunks: Range<usize>,
}

/// The block index of a `blk.<i>.<rest>` tensor name.
fn layer_of(name: &str) -> Option<u32> {
    crate::gguf::split_block_name(name).and_then(|(block, _)| u32::try_from(block).ok())
}
