//! [`Value`]: one GGUF metadata value, and the on-disk type ids.
//!
//! On disk a value is a `u32` type id followed by its payload, little-endian:
//!
//! | id | type   | payload                                             |
//! |----|--------|-----------------------------------------------------|
//! | 0  | u8     | 1 byte                                              |
//! | 1  | i8     | 1 byte                                              |
//! | 2  | u16    | 2 bytes                                             |
//! | 3  | i16    | 2 bytes                                             |
//! | 4  | u32    | 4 bytes                                             |
//! | 5  | i32    | 4 bytes                                             |
//! | 6  | f32    | 4 bytes                                             |
//! | 7  | bool   | 1 byte, 0 or 1                                      |
//! | 8  | string | `u64` length, then that many UTF-8 bytes (no NUL)   |
//! | 9  | array  | `u32` element type id, `u64` count, then the payloads |
//! | 10 | u64    | 8 bytes                                             |
//! | 11 | i64    | 8 bytes                                             |
//! | 12 | f64    | 8 bytes                                             |

/// GGUF type id of a string value.
pub(crate) const TYPE_STRING: u32 = 8;
/// GGUF type id of an array value.
pub(crate) const TYPE_ARRAY: u32 = 9;

/// One metadata value, as stored in a GGUF file.
///
/// Arrays are homogeneous on disk; the parser guarantees it, and
/// [`GgufWriter`](crate::GgufWriter) checks it. An empty array loses its element type:
/// it reads back as `Array(vec![])` whatever type it was written with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Unsigned 8-bit integer.
    U8(u8),
    /// Signed 8-bit integer.
    I8(i8),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Signed 16-bit integer.
    I16(i16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Signed 32-bit integer.
    I32(i32),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Signed 64-bit integer.
    I64(i64),
    /// 32-bit float.
    F32(f32),
    /// 64-bit float.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Array of values of one type (arrays may nest).
    Array(Vec<Value>),
}

impl Value {
    /// The GGUF name of this value's type: `"u8"`, `"i32"`, `"f32"`, `"bool"`, `"string"`,
    /// `"array"`, …
    ///
    /// ```
    /// use lantern_io::Value;
    /// assert_eq!(Value::from(3u32).type_name(), "u32");
    /// assert_eq!(Value::from(vec!["a", "b"]).type_name(), "array");
    /// ```
    pub fn type_name(&self) -> &'static str {
        type_name_of(self.type_id())
    }

    /// The GGUF type id of this value.
    pub(crate) fn type_id(&self) -> u32 {
        match self {
            Self::U8(_) => 0,
            Self::I8(_) => 1,
            Self::U16(_) => 2,
            Self::I16(_) => 3,
            Self::U32(_) => 4,
            Self::I32(_) => 5,
            Self::F32(_) => 6,
            Self::Bool(_) => 7,
            Self::String(_) => TYPE_STRING,
            Self::Array(_) => TYPE_ARRAY,
            Self::U64(_) => 10,
            Self::I64(_) => 11,
            Self::F64(_) => 12,
        }
    }

    /// The value of any integer variant, widened; `None` for other variants.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Self::U8(v) => v.into(),
            Self::I8(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U64(v) => v.into(),
            Self::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value of any integer variant if it fits `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i128().and_then(|v| u64::try_from(v).ok())
    }

    /// The value of any integer variant if it fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// The value of an `F32` or `F64` variant (narrowed to `f32`).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Self::F32(v) => Some(v),
            #[allow(
                clippy::cast_possible_truncation,
                reason = "f64 metadata read as f32 by request"
            )]
            Self::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// The value of a `Bool` variant.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a `String` variant.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// The elements of an `Array` variant.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// The name of GGUF value type `id`, or `"unknown"`.
pub(crate) fn type_name_of(id: u32) -> &'static str {
    match id {
        0 => "u8",
        1 => "i8",
        2 => "u16",
        3 => "i16",
        4 => "u32",
        5 => "i32",
        6 => "f32",
        7 => "bool",
        TYPE_STRING => "string",
        TYPE_ARRAY => "array",
        10 => "u64",
        11 => "i64",
        12 => "f64",
        _ => "unknown",
    }
}

macro_rules! from_scalar {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::$variant(v)
            }
        }
    )*};
}

from_scalar!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    u64 => U64, i64 => I64, f32 => F32, f64 => F64, bool => Bool, String => String,
);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Self::Array(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value> + Clone> From<&[T]> for Value {
    fn from(v: &[T]) -> Self {
        Self::Array(v.iter().cloned().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_widen_and_check_range() {
        assert_eq!(Value::I8(-1).as_u64(), None);
        assert_eq!(Value::I8(-1).as_i64(), Some(-1));
        assert_eq!(Value::U64(u64::MAX).as_i64(), None);
        assert_eq!(Value::F64(0.5).as_f32(), Some(0.5));
        assert_eq!(Value::F32(0.5).as_u64(), None);
        assert_eq!(Value::from(vec![1u8, 2]).as_array().map(<[Value]>::len), Some(2));
        for id in 0..=12 {
            assert_ne!(type_name_of(id), "unknown");
        }
        assert_eq!(type_name_of(13), "unknown");
    }
}
