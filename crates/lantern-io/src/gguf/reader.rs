//! Bounds-checked, little-endian reading of GGUF fields from an untrusted byte slice.
//!
//! Every read checks the remaining length first and fails with [`Error::Truncated`] naming
//! the field and its offset. Lengths read from the file are capped, and compared against
//! the bytes left, *before* anything is allocated from them: every element of every count
//! takes at least one byte on disk, so no loop runs longer than the file is long and no
//! allocation is larger than a small multiple of the file.

use super::value::{type_name_of, TYPE_ARRAY, TYPE_STRING};
use super::Value;
use crate::{Error, Result};

/// Longest string accepted (keys, values, tensor names): 64 MiB.
pub(crate) const MAX_STRING_LEN: u64 = 1 << 26;
/// Most elements accepted in one array.
pub(crate) const MAX_ARRAY_LEN: u64 = 1 << 26;
/// Most metadata values accepted in total, counting array elements. Caps the memory a
/// hostile file of tiny elements can make us allocate (each `Value` is 32 bytes).
pub(crate) const MAX_TOTAL_VALUES: u64 = 1 << 25;
/// Deepest nesting of arrays accepted; bounds recursion.
pub(crate) const MAX_ARRAY_DEPTH: usize = 8;

/// A read position in a byte slice.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Values read so far, against [`MAX_TOTAL_VALUES`].
    values: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0, values: 0 }
    }

    /// Current offset from the start of the file.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn truncated(&self, what: &'static str, needed: u64) -> Error {
        Error::Truncated { what, offset: self.pos as u64, needed, file_len: self.file_len() }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        let len = usize::try_from(n).ok().filter(|&len| len <= self.remaining());
        let Some(len) = len else { return Err(self.truncated(what, n)) };
        let out = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.fixed::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.fixed(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        self.fixed(what).map(u64::from_le_bytes)
    }

    /// A `u64` count, capped at `max` and at the number of `min_size`-byte elements that
    /// could fit in the rest of the file. Safe to allocate from.
    pub(crate) fn count(&mut self, what: &'static str, max: u64, min_size: u64) -> Result<usize> {
        let n = self.u64(what)?;
        if n > max {
            return Err(Error::TooLarge { what, value: n, max });
        }
        let needed = n.saturating_mul(min_size);
        if needed > self.remaining() as u64 {
            return Err(self.truncated(what, needed));
        }
        // n <= remaining <= usize::MAX, so this does not truncate.
        Ok(n as usize)
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String> {
        let len = self.u64(what)?;
        if len > MAX_STRING_LEN {
            return Err(Error::StringTooLong { what, len, max: MAX_STRING_LEN });
        }
        let offset = self.pos as u64;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Error::InvalidUtf8 { what, offset }),
        }
    }

    fn count_value(&mut self, n: u64) -> Result<()> {
        self.values = self.values.saturating_add(n);
        if self.values > MAX_TOTAL_VALUES {
            return Err(Error::TooLarge {
                what: "total metadata values",
                value: self.values,
                max: MAX_TOTAL_VALUES,
            });
        }
        Ok(())
    }

    /// A value of type `ty` belonging to metadata key `key`.
    pub(crate) fn value(&mut self, key: &str, ty: u32) -> Result<Value> {
        self.count_value(1)?;
        self.value_at_depth(key, ty, 0)
    }

    fn value_at_depth(&mut self, key: &str, ty: u32, depth: usize) -> Result<Value> {
        const W: &str = "metadata value";
        Ok(match ty {
            0 => Value::U8(self.u8(W)?),
            1 => Value::I8(i8::from_le_bytes(self.fixed(W)?)),
            2 => Value::U16(u16::from_le_bytes(self.fixed(W)?)),
            3 => Value::I16(i16::from_le_bytes(self.fixed(W)?)),
            4 => Value::U32(self.u32(W)?),
            5 => Value::I32(i32::from_le_bytes(self.fixed(W)?)),
            6 => Value::F32(f32::from_le_bytes(self.fixed(W)?)),
            7 => {
                let offset = self.pos as u64;
                match self.u8(W)? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    value => return Err(Error::InvalidBool { key: key.to_owned(), offset, value }),
                }
            }
            TYPE_STRING => Value::String(self.string("metadata string")?),
            TYPE_ARRAY => self.array_value(key, depth)?,
            10 => Value::U64(self.u64(W)?),
            11 => Value::I64(i64::from_le_bytes(self.fixed(W)?)),
            12 => Value::F64(f64::from_le_bytes(self.fixed(W)?)),
            id => return Err(Error::UnknownValueType { key: key.to_owned(), id }),
        })
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<Value> {
        if depth >= MAX_ARRAY_DEPTH {
            let max = MAX_ARRAY_DEPTH as u64;
            return Err(Error::TooLarge { what: "array nesting depth", value: max + 1, max });
        }
        let elem = self.u32("array element type")?;
        let min_size = min_encoded_size(elem)
            .ok_or_else(|| Error::UnknownValueType { key: key.to_owned(), id: elem })?;
        let n = self.count("array length", MAX_ARRAY_LEN, min_size)?;
        self.count_value(n as u64)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value_at_depth(key, elem, depth + 1)?);
        }
        Ok(Value::Array(items))
    }
}

/// The fewest bytes a value of type `ty` takes on disk, or `None` for an unknown type.
fn min_encoded_size(ty: u32) -> Option<u64> {
    Some(match type_name_of(ty) {
        "u8" | "i8" | "bool" => 1,
        "u16" | "i16" => 2,
        "u32" | "i32" | "f32" => 4,
        "u64" | "i64" | "f64" | "string" => 8,
        "array" => 12,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut c = Cursor::new(&[1, 0, 0]);
        assert!(matches!(
            c.u32("x"),
            Err(Error::Truncated { what: "x", offset: 0, needed: 4, .. })
        ));
        assert_eq!(c.u8("y").unwrap(), 1);
        assert!(matches!(c.take(u64::MAX, "z"), Err(Error::Truncated { .. })));
    }

    #[test]
    fn counts_are_capped_before_allocation() {
        let huge = u64::MAX.to_le_bytes();
        let mut c = Cursor::new(&huge);
        assert!(matches!(c.count("n", 10, 1), Err(Error::TooLarge { value: u64::MAX, .. })));
        let five = 5u64.to_le_bytes();
        let mut c = Cursor::new(&five);
        assert!(matches!(c.count("n", 10, 1), Err(Error::Truncated { needed: 5, .. })));
    }

    #[test]
    fn deep_nesting_is_rejected() {
        // An array of arrays of arrays ..., each declaring one element.
        let mut bytes = Vec::new();
        for _ in 0..=MAX_ARRAY_DEPTH {
            bytes.extend_from_slice(&TYPE_ARRAY.to_le_bytes());
            bytes.extend_from_slice(&1u64.to_le_bytes());
        }
        bytes.resize(bytes.len() + 64, 0);
        let err = Cursor::new(&bytes).value("k", TYPE_ARRAY).unwrap_err();
        assert!(matches!(err, Error::TooLarge { what: "array nesting depth", .. }), "{err}");
    }
}
