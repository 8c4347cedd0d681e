//! The `tojson` filter as HuggingFace templates see it: Python's
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
//!
//! minijinja's own `tojson` writes `{"a":1}`-style JSON with `<`, `>`, `&` and `'` escaped for
//! HTML; templates trained with transformers expect Python's text instead: `", "` and `": "`
//! between items on one line, `","` at line ends with `indent`, non-ASCII characters as they
//! are, and floats as Python's `repr` writes them (`1.0`, `1e-05`, `1e+16`). Positional
//! arguments bind in Python's order: `ensure_ascii`, `indent`, `separators`, `sort_keys`.

use std::fmt::Write;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// Nesting deeper than this is refused: Python's own limit is about 1,000 frames, and a
/// hostile value must not exhaust the stack.
const MAX_DEPTH: usize = 256;

/// How to write the JSON: Python's `json.dumps` keyword arguments.
struct Style {
    ensure_ascii: bool,
    /// The text one level of indentation adds; `None` writes everything on one line.
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
    /// Bytes the text may reach; past it the filter fails.
    limit: usize,
}

/// The filter: `value | tojson(ensure_ascii, indent, separators, sort_keys)`, positional or by
/// keyword, with at most `limit` bytes of output.
pub(super) fn tojson(
    value: &Value,
    positional: &[Value],
    kwargs: &Kwargs,
    limit: usize,
) -> Result<Value, Error> {
    const NAMES: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    if positional.len() > NAMES.len() {
        return Err(invalid(format!("tojson takes at most 4 arguments, not {}", positional.len())));
    }
    let mut args: [Option<Value>; 4] = Default::default();
    for (i, name) in NAMES.iter().enumerate() {
        let by_name: Option<Value> = kwargs.get(name)?;
        args[i] = match (positional.get(i), by_name) {
            (Some(_), Some(_)) => return Err(invalid(format!("tojson got {name} twice"))),
            (Some(v), None) => Some(v.clone()),
            (None, v) => v,
        };
    }
    kwargs.assert_all_used()?;
    let [ensure_ascii, indent, separators, sort_keys] = args;
    let indent = match indent.filter(|v| !v.is_none()) {
        None => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_owned()),
        Some(v) => match v.as_i64() {
            // Python repeats a space `indent` times; zero or less still breaks lines.
            Some(n) => Some(" ".repeat(usize::try_from(n.clamp(0, 64)).unwrap_or(0))),
            None => return Err(invalid(format!("tojson indent must be an int or str, not {v}"))),
        },
    };
    let (item_separator, key_separator) = match separators.filter(|v| !v.is_none()) {
        None if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        None => (", ".to_owned(), ": ".to_owned()),
        Some(v) => separators_of(&v)?,
    };
    let truthy = |v: Option<Value>| v.is_some_and(|v| v.is_true());
    let style = Style {
        ensure_ascii: truthy(ensure_ascii),
        indent,
        item_separator,
        key_separator,
        sort_keys: truthy(sort_keys),
        limit,
    };
    let mut out = String::new();
    write_value(&mut out, value, &style, 0)?;
    Ok(Value::from(out))
}

/// `separators=(item, key)`: a pair of strings.
fn separators_of(value: &Value) -> Result<(String, String), Error> {
    let items: Vec<Value> = value.try_iter()?.collect();
    match items.as_slice() {
        [a, b] if a.kind() == ValueKind::String && b.kind() == ValueKind::String => Ok((
            a.as_str().unwrap_or_default().to_owned(),
            b.as_str().unwrap_or_default().to_owned(),
        )),
        _ => Err(invalid(format!("tojson separators must be two strings, not {value}"))),
    }
}

fn write_value(out: &mut String, value: &Value, style: &Style, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!("tojson: the value nests deeper than {MAX_DEPTH} levels")));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, value)?,
        ValueKind::String => write_string(out, value.as_str().unwrap_or_default(), style),
        ValueKind::Seq => write_seq(out, value, style, depth)?,
        ValueKind::Map if !value.is_kwargs() => write_map(out, value, style, depth)?,
        kind => return Err(invalid(format!("Object of type {kind} is not JSON serializable"))),
    }
    if out.len() > style.limit {
        return Err(invalid(format!("tojson: the text would exceed {} bytes", style.limit)));
    }
    Ok(())
}

fn write_seq(out: &mut String, value: &Value, style: &Style, depth: usize) -> Result<(), Error> {
    let items: Vec<Value> = value.try_iter()?.collect();
    if items.is_empty() {
        out.push_str("[]");
        return Ok(());
    }
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        separate(out, i, style, depth + 1);
        write_value(out, item, style, depth + 1)?;
    }
    newline(out, style, depth);
    out.push(']');
    Ok(())
}

fn write_map(out: &mut String, value: &Value, style: &Style, depth: usize) -> Result<(), Error> {
    let mut entries = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        entries.push((key, item));
    }
    if entries.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    if style.sort_keys {
        sort_entries(&mut entries)?;
    }
    out.push('{');
    for (i, (key, item)) in entries.iter().enumerate() {
        separate(out, i, style, depth + 1);
        write_string(out, &key_text(key)?, style);
        out.push_str(&style.key_separator);
        write_value(out, item, style, depth + 1)?;
    }
    newline(out, style, depth);
    out.push('}');
    Ok(())
}

/// Python sorts the keys themselves: all strings, or all numbers; a mix is its `TypeError`.
fn sort_entries(entries: &mut [(Value, Value)]) -> Result<(), Error> {
    let all = |kind| entries.iter().all(|(k, _)| k.kind() == kind);
    if !(all(ValueKind::String) || all(ValueKind::Number)) {
        return Err(invalid("tojson cannot sort keys of different types".to_owned()));
    }
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    Ok(())
}

/// A map key as Python's `json` writes it: strings as they are, numbers, booleans and None
/// as their JSON text.
fn key_text(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_owned()),
        ValueKind::None | ValueKind::Bool | ValueKind::Number => {
            let mut text = String::new();
            write_value(&mut text, key, &Style::key(), 0)?;
            Ok(text)
        }
        kind => Err(invalid(format!("keys must be str, int, float, bool or None, not {kind}"))),
    }
}

impl Style {
    /// Enough to write a scalar key.
    fn key() -> Self {
        Self {
            ensure_ascii: false,
            indent: None,
            item_separator: String::new(),
            key_separator: String::new(),
            sort_keys: false,
            limit: usize::MAX,
        }
    }
}

/// Before item `i` of a container at `depth`: the item separator, then the line break and
/// indentation when indenting.
fn separate(out: &mut String, i: usize, style: &Style, depth: usize) {
    if i > 0 {
        out.push_str(&style.item_separator);
    }
    newline(out, style, depth);
}

fn newline(out: &mut String, style: &Style, depth: usize) {
    if let Some(indent) = &style.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn write_number(out: &mut String, value: &Value) -> Result<(), Error> {
    if value.is_integer() {
        write!(out, "{value}").expect("writing to a String cannot fail");
        return Ok(());
    }
    let x = f64::try_from(value.clone())?;
    out.push_str(&python_float(x));
    Ok(())
}

/// A float as Python's `float.__repr__` writes it (and `json.dumps`, with its names for the
/// non-finite ones): the shortest digits that read back to the same float, in positional
/// form with at least one decimal while the decimal exponent is in -5..16, else as
/// `d.ddde±XX`.
pub(super) fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `-1.2345e-7`.
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes a decimal exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // The decimal point sits `point` digits from the left of `digits`.
    let point = exponent + 1;
    if point <= -4 || point > 16 {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.unsigned_abs());
    }
    let len = i32::try_from(digits.len()).expect("a float has at most 17 digits");
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("{sign}0.{zeros}{digits}")
    } else if point >= len {
        let zeros = "0".repeat((point - len) as usize);
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    }
}

/// A string as Python's `json` quotes it: `"`, `\` and control characters escaped, and with
/// `ensure_ascii` everything outside printable ASCII as `\uXXXX` (UTF-16 surrogate pairs).
fn write_string(out: &mut String, text: &str, style: &Style) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || (style.ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}").expect("writing to a String cannot fail");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-273.15, "-273.15"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (123456.789, "123456.789"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (x, text) in cases {
            assert_eq!(python_float(x), text, "{x:e}");
        }
    }

    fn dumps(value: Value, kwargs: &[(&str, Value)]) -> Result<String, Error> {
        let kwargs = Kwargs::from_iter(kwargs.iter().cloned());
        tojson(&value, &[], &kwargs, 1 << 20).map(|v| v.as_str().unwrap().to_owned())
    }

    #[test]
    fn strings_escape_as_python_does() {
        let text = Value::from("a\"b\\c\nd\u{1}é😀<&'");
        assert_eq!(dumps(text.clone(), &[]).unwrap(), "\"a\\\"b\\\\c\\nd\\u0001é😀<&'\"");
        assert_eq!(
            dumps(text, &[("ensure_ascii", Value::from(true))]).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001\\u00e9\\ud83d\\ude00<&'\""
        );
    }

    #[test]
    fn layout_follows_indent_and_separators() {
        let value = Value::from(vec![Value::from(1), Value::from(Vec::<Value>::new())]);
        assert_eq!(dumps(value.clone(), &[]).unwrap(), "[1, []]");
        assert_eq!(
            dumps(value.clone(), &[("indent", Value::from(2))]).unwrap(),
            "[\n  1,\n  []\n]"
        );
        let compact = Value::from(vec![Value::from(","), Value::from(":")]);
        assert_eq!(dumps(value, &[("separators", compact)]).unwrap(), "[1,[]]");
    }

    #[test]
    fn what_python_cannot_serialize_is_an_error() {
        assert!(dumps(Value::UNDEFINED, &[]).is_err());
        assert!(dumps(Value::from(1), &[("indent", Value::from(vec![Value::from(1)]))]).is_err());
        assert!(dumps(Value::from(1), &[("nonsense", Value::from(1))]).is_err());
        let mut deep = Value::from(1);
        for _ in 0..1000 {
            deep = Value::from(vec![deep]);
        }
        assert!(dumps(deep, &[]).is_err());
    }
}
