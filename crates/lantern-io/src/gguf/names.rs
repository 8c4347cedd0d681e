//! The `blk.N.` prefix of llama.cpp's tensor-name table, which every GGUF model shares.
//!
//! The table itself (which parts a block has) belongs to the decoder
//! (`lantern_runtime::BlockMatrix`); the file layer only needs to know which block a tensor
//! belongs to, to write a container in layer order.

/// The block index `N` and the rest of a `blk.N.<rest>` tensor name.
///
/// ```
/// assert_eq!(lantern_io::gguf::split_block_name("blk.12.attn_q.weight"), Some((12, "attn_q.weight")));
/// assert_eq!(lantern_io::gguf::split_block_name("token_embd.weight"), None);
/// ```
pub fn split_block_name(name: &str) -> Option<(usize, &str)> {
    let (index, rest) = name.strip_prefix("blk.")?.split_once('.')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((index.parse().ok()?, rest))
}

/// The name of block `block`'s tensor `part` (`attn_norm.weight`, …): `blk.{block}.{part}`.
pub fn block_tensor_name(block: usize, part: &str) -> String {
    format!("blk.{block}.{part}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_names_split_and_join() {
        assert_eq!(split_block_name("blk.12.attn_q.weight"), Some((12, "attn_q.weight")));
        assert_eq!(split_block_name("token_embd.weight"), None);
        assert_eq!(split_block_name("blk.x.attn_q.weight"), None);
        assert_eq!(split_block_name("blk.+3.attn_q.weight"), None);
        assert_eq!(split_block_name("blk.3"), None);
        assert_eq!(block_tensor_name(3, "ffn_norm.weight"), "blk.3.ffn_norm.weight");
    }
}
