//! Rewrites a container's checksums, so that mutated inputs get past them to the parsers
//! and decoders behind (shared by the container and stream targets).

fn u64_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at + 8)?;
    usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok()
}

/// Writes the CRC-32 of `bytes[start..end - 4]` into its last four bytes, if they exist.
fn fix(bytes: &mut [u8], start: usize, end: usize) {
    if start + 4 <= end && end <= bytes.len() {
        let crc = crc32fast::hash(&bytes[start..end - 4]);
        bytes[end - 4..end].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The header's, the metadata's and the index's checksums, where the header places them.
pub fn fix_sections(bytes: &mut [u8]) {
    for (offset, len) in [(16, 24), (32, 40)] {
        if let (Some(start), Some(len)) = (u64_at(bytes, offset), u64_at(bytes, len)) {
            fix(bytes, start, start.saturating_add(len));
        }
    }
    if bytes.len() >= 64 {
        let crc = crc32fast::hash(&bytes[..56]);
        bytes[56..60].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Every chunk's checksum, in the records at the end of the index, then the index's.
pub fn fix_chunks(bytes: &mut [u8], n_chunks: usize) {
    let (Some(index), Some(len)) = (u64_at(bytes, 32), u64_at(bytes, 40)) else { return };
    let end = index.saturating_add(len);
    let Some(records) = end.checked_sub(4 + 32 * n_chunks) else { return };
    for i in 0..n_chunks {
        let at = records + 32 * i;
        let (Some(offset), Some(stored)) = (u64_at(bytes, at), u64_at(bytes, at + 8)) else {
            return;
        };
        let Some(chunk) = bytes.get(offset..offset.saturating_add(stored)) else { return };
        let crc = crc32fast::hash(chunk);
        bytes[at + 28..at + 32].copy_from_slice(&crc.to_le_bytes());
    }
    fix(bytes, index, end);
}
