//! [`Metadata`]: the key-value section of a GGUF file, in file order, with typed getters.
//!
//! Keys are unique (the parser rejects duplicates). The typed getters are lenient about
//! integer widths, because writers disagree on them (`llama.block_count` is `u32` in
//! llama.cpp's files but some converters write `u64` or `i32`), and strict about everything
//! else: a string where a number is expected is an error naming the key.

use std::collections::HashMap;

use super::Value;
use crate::{Error, Result};

/// GGUF metadata: ordered key-value pairs with lookup by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts `key`, or replaces its value if present (keeping its position). Returns the
    /// value it replaced.
    pub(crate) fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        if let Some(&i) = self.index.get(&key) {
            return Some(std::mem::replace(&mut self.entries[i].1, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        None
    }

    /// Inserts `key`, failing with [`Error::Duplicate`] if it is already present.
    pub(crate) fn insert_new(&mut self, key: String, value: Value) -> Result<()> {
        if self.index.contains_key(&key) {
            return Err(Error::Duplicate { what: "metadata key", name: key });
        }
        self.insert(key, value);
        Ok(())
    }

    /// Reserves room for `n` more entries.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
        self.index.reserve(n);
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The key-value pairs in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of key-value pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no key-value pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::MissingKey { key: key.to_owned() })
    }

    /// An integer value converted to `T`, from any integer type whose value fits.
    fn int<T: TryFrom<i128>>(&self, key: &str, v: &Value, expected: &'static str) -> Result<T> {
        let wide = v.as_i128().ok_or_else(|| wrong(key, expected, v))?;
        T::try_from(wide).map_err(|_| Error::OutOfRange {
            key: key.to_owned(),
            value: wide,
            expected,
        })
    }

    /// The integer at `key` as `u32`; any integer type is accepted if the value fits.
    ///
    /// # Errors
    /// [`Error::MissingKey`], [`Error::WrongType`] for a non-integer,
    /// [`Error::OutOfRange`] for an integer that does not fit.
    pub fn u32(&self, key: &str) -> Result<u32> {
        self.int(key, self.require(key)?, "u32")
    }

    /// The integer at `key` as `u64`; any integer type is accepted if the value fits.
    ///
    /// # Errors
    /// As [`Metadata::u32`].
    pub fn u64(&self, key: &str) -> Result<u64> {
        self.int(key, self.require(key)?, "u64")
    }

    /// The float at `key` as `f32`; `f32` and `f64` values are accepted.
    ///
    /// # Errors
    /// [`Error::MissingKey`], or [`Error::WrongType`] for any other type.
    pub fn f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f32().ok_or_else(|| wrong(key, "f32", v))
    }

    /// The bool at `key`.
    ///
    /// # Errors
    /// [`Error::MissingKey`], or [`Error::WrongType`] for any other type.
    pub fn bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| wrong(key, "bool", v))
    }

    /// The string at `key`.
    ///
    /// # Errors
    /// [`Error::MissingKey`], or [`Error::WrongType`] for any other type.
    pub fn str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong(key, "string", v))
    }

    fn array(&self, key: &str, expected: &'static str) -> Result<&[Value]> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| wrong(key, expected, v))
    }

    /// The array of strings at `key`.
    ///
    /// # Errors
    /// [`Error::MissingKey`], or [`Error::WrongType`] if it is not an array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>> {
        let items = self.array(key, "array of string")?;
        items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| wrong_elem(key, "array of string", v)))
            .collect()
    }

    /// The array of integers at `key` as `i32`s; any integer element type is accepted if
    /// every value fits.
    ///
    /// # Errors
    /// [`Error::MissingKey`], [`Error::WrongType`] if it is not an array of integers,
    /// [`Error::OutOfRange`] for an element that does not fit.
    pub fn i32s(&self, key: &str) -> Result<Vec<i32>> {
        let items = self.array(key, "array of integer")?;
        items
            .iter()
            .map(|v| match v.as_i128() {
                Some(_) => self.int(key, v, "i32"),
                None => Err(wrong_elem(key, "array of integer", v)),
            })
            .collect()
    }

    /// The array of floats at `key` as `f32`s (`f32` or `f64` elements).
    ///
    /// # Errors
    /// [`Error::MissingKey`], or [`Error::WrongType`] if it is not an array of floats.
    pub fn f32s(&self, key: &str) -> Result<Vec<f32>> {
        let items = self.array(key, "array of f32")?;
        items.iter().map(|v| v.as_f32().ok_or_else(|| wrong_elem(key, "array of f32", v))).collect()
    }

    /// As [`Metadata::u32`], but `Ok(None)` when `key` is absent.
    ///
    /// # Errors
    /// As [`Metadata::u32`], except [`Error::MissingKey`].
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.optional(key, Self::u32)
    }

    /// As [`Metadata::f32`], but `Ok(None)` when `key` is absent.
    ///
    /// # Errors
    /// As [`Metadata::f32`], except [`Error::MissingKey`].
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.optional(key, Self::f32)
    }

    /// As [`Metadata::bool`], but `Ok(None)` when `key` is absent.
    ///
    /// # Errors
    /// As [`Metadata::bool`], except [`Error::MissingKey`].
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.optional(key, Self::bool)
    }

    /// As [`Metadata::str`], but `Ok(None)` when `key` is absent.
    ///
    /// # Errors
    /// As [`Metadata::str`], except [`Error::MissingKey`].
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        if !self.contains(key) {
            return Ok(None);
        }
        self.str(key).map(Some)
    }

    fn optional<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Self, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        if !self.contains(key) {
            return Ok(None);
        }
        get(self, key).map(Some)
    }
}

fn wrong(key: &str, expected: &'static str, found: &Value) -> Error {
    Error::WrongType { key: key.to_owned(), expected, found: found.type_name() }
}

/// A wrong element type inside an array, reported as `array of <element type>`.
fn wrong_elem(key: &str, expected: &'static str, found: &Value) -> Error {
    let found = match found.type_name() {
        "u8" => "array of u8",
        "i8" => "array of i8",
        "u16" => "array of u16",
        "i16" => "array of i16",
        "u32" => "array of u32",
        "i32" => "array of i32",
        "u64" => "array of u64",
        "i64" => "array of i64",
        "f32" => "array of f32",
        "f64" => "array of f64",
        "bool" => "array of bool",
        "string" => "array of string",
        _ => "array of array",
    };
    Error::WrongType { key: key.to_owned(), expected, found }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut m = Metadata::new();
        m.insert("n".into(), Value::I64(30));
        m.insert("neg".into(), Value::I32(-1));
        m.insert("eps".into(), Value::F64(1e-5));
        m.insert("name".into(), Value::from("llama"));
        m.insert("types".into(), Value::from(vec![1u8, 2, 3]));
        m
    }

    #[test]
    fn getters_are_lenient_on_width_strict_on_kind() {
        let m = sample();
        assert_eq!(m.u32("n").unwrap(), 30);
        assert!(matches!(m.u32("neg"), Err(Error::OutOfRange { value: -1, .. })));
        assert!((m.f32("eps").unwrap() - 1e-5).abs() < 1e-9);
        assert_eq!(m.i32s("types").unwrap(), vec![1, 2, 3]);
        assert!(matches!(m.str("n"), Err(Error::WrongType { found: "i64", .. })));
        assert!(matches!(m.strings("types"), Err(Error::WrongType { found: "array of u8", .. })));
        assert_eq!(m.opt_str("absent").unwrap(), None);
        assert!(m.opt_bool("name").is_err());
    }

    #[test]
    fn insert_keeps_order_and_rejects_duplicates() {
        let mut m = sample();
        assert!(m.insert("n".into(), Value::U8(1)).is_some());
        assert_eq!(m.iter().next().map(|(k, _)| k), Some("n"));
        assert!(matches!(m.insert_new("n".into(), Value::U8(1)), Err(Error::Duplicate { .. })));
    }
}
