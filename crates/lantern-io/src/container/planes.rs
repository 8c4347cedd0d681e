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
    if block_bytes == 0 {
        return planes.to_vec();
    }
    let whole = planes.len() - planes.len() % block_bytes;
    let blocks = whole / block_bytes;
    let mut out = vec![0; planes.len()];
    for (j, plane) in planes[..whole].chunks_exact(blocks.max(1)).enumerate().take(block_bytes) {
        for (b, &byte) in plane.iter().enumerate() {
            out[b * block_bytes + j] = byte;
        }
    }
    out[whole..].copy_from_slice(&planes[whole..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_group_each_block_position_and_invert() {
        let bytes: Vec<u8> = (0..23).collect();
        let planes = to_planes(&bytes, 4);
        assert_eq!(&planes[..5], &[0, 4, 8, 12, 16]);
        assert_eq!(&planes[20..], &[20, 21, 22]);
        assert_eq!(from_planes(&planes, 4), bytes);
        for block in [0, 1, 3, 18, 30] {
            assert_eq!(from_planes(&to_planes(&bytes, block), block), bytes, "{block}");
        }
        assert!(to_planes(&[], 18).is_empty());
    }
}
