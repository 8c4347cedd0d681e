//! Byte planes: a tensor's blocks transposed so that byte `j` of every block lies together.
//!
//! In a block format the bytes at one position play one role (the low byte of an f16 scale,
//! its high byte, the codes of elements 0 and 16…), so grouping them puts alike bytes side
//! by side, which is what a byte-oriented compressor can use. For f16 and f32 the "block"
//! is one element, and the planes separate exponent bytes from mantissa bytes.

/// `bytes` (whole blocks of `block_bytes` each, a tail left as it is) as byte planes.
pub fn to_planes(bytes: &[u8], block_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    if block_bytes == 0 {
        out.extend_from_slice(bytes);
        return out;
    }
    let whole = bytes.len() - bytes.len() % block_bytes;
    for j in 0..block_bytes {
        out.extend(bytes[..whole].iter().skip(j).step_by(block_bytes));
    }
    out.extend_from_slice(&bytes[whole..]);
    out
}

/// The inverse of [`to_planes`].
pub fn from_planes(planes: &[u8], block_bytes: usize) -> Vec<u8> {
    let mut out = vec![0; planes.len()];
    from_planes_into(planes, block_bytes, &mut out);
    out
}

/// [`from_planes`] into `out`, which is as long as `planes`.
///
/// # Panics
/// If `out` is not as long as `planes`.
pub fn from_planes_into(planes: &[u8], block_bytes: usize, out: &mut [u8]) {
    assert_eq!(planes.len(), out.len(), "byte planes and their blocks differ in length");
    if block_bytes == 0 {
        out.copy_from_slice(planes);
        return;
    }
    let whole = planes.len() - planes.len() % block_bytes;
    let blocks = whole / block_bytes;
    let (planes_whole, out_whole) = (&planes[..whole], &mut out[..whole]);
    match block_bytes {
        // The block sizes of the types that byte planes pay for get unrolled loops.
        2 => interleave::<2>(planes_whole, out_whole),
        4 => interleave::<4>(planes_whole, out_whole),
        18 => interleave::<18>(planes_whole, out_whole),
        20 => interleave::<20>(planes_whole, out_whole),
        22 => interleave::<22>(planes_whole, out_whole),
        24 => interleave::<24>(planes_whole, out_whole),
        34 => interleave::<34>(planes_whole, out_whole),
        _ => {
            for (j, plane) in planes_whole.chunks_exact(blocks.max(1)).enumerate() {
                for (block, &byte) in out_whole.chunks_exact_mut(block_bytes).zip(plane) {
                    block[j] = byte;
                }
            }
        }
    }
    out[whole..].copy_from_slice(&planes[whole..]);
}

/// Blocks of `B` bytes from `B` planes: `out` and `planes` hold whole blocks.
fn interleave<const B: usize>(planes: &[u8], out: &mut [u8]) {
    let blocks = planes.len() / B;
    let plane: [&[u8]; B] = std::array::from_fn(|j| &planes[j * blocks..(j + 1) * blocks]);
    for (b, block) in out.chunks_exact_mut(B).enumerate() {
        for (byte, plane) in block.iter_mut().zip(&plane) {
            *byte = plane[b];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_group_each_block_position_and_invert() {
        let bytes: Vec<u8> = (0..23).collect();
        let long: Vec<u8> = (0..5000).map(|i| (i * 7 % 251) as u8).collect();
        let planes = to_planes(&bytes, 4);
        assert_eq!(&planes[..5], &[0, 4, 8, 12, 16]);
        assert_eq!(&planes[20..], &[20, 21, 22]);
        assert_eq!(from_planes(&planes, 4), bytes);
        for block in [0, 1, 2, 3, 4, 18, 20, 22, 24, 30, 34] {
            assert_eq!(from_planes(&to_planes(&bytes, block), block), bytes, "{block}");
            assert_eq!(from_planes(&to_planes(&long, block), block), long, "{block}");
        }
        assert!(to_planes(&[], 18).is_empty());
    }
}
