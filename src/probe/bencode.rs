//! A small, strict bencode decoder (BEP 3), enough for tracker responses.
//!
//! Strict where it matters for safety and honesty: no trailing data, no leading zeros, no `-0`,
//! lengths bounded by the input, nesting bounded by [`MAX_DEPTH`]. Lenient where trackers are:
//! dictionary keys need not be sorted (the last duplicate wins).

use std::collections::BTreeMap;
use std::fmt;

/// Deepest nesting accepted (tracker responses nest 3 levels at most).
pub const MAX_DEPTH: usize = 32;

/// A decoded bencode value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Self::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value under `key`, when `self` is a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?.get(key.as_bytes())
    }

    /// A short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Int(_) => "integer",
            Self::Bytes(_) => "byte string",
            Self::List(_) => "list",
            Self::Dict(_) => "dictionary",
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) if s.chars().all(|c| !c.is_control()) => write!(f, "{s:?}"),
                _ => write!(f, "<{} bytes>", b.len()),
            },
            Self::List(l) => f.debug_list().entries(l).finish(),
            Self::Dict(d) => f
                .debug_map()
                .entries(d.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
                .finish(),
        }
    }
}

/// Why the input is not bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bencode at byte {pos}: {what}")]
pub struct DecodeError {
    pub pos: usize,
    pub what: &'static str,
}

/// Decodes exactly one value spanning all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let value = d.value(0)?;
    if d.pos != input.len() {
        return Err(d.err("trailing data after the value"));
    }
    Ok(value)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError {
            pos: self.pos,
            what,
        }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err("unexpected end of input"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let i = self.integer(b'e')?;
                Ok(Value::Int(i))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' => {
                self.pos += 1;
                let mut list = Vec::new();
                while self.peek()? != b'e' {
                    list.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(list))
            }
            b'd' => {
                self.pos += 1;
                let mut dict = BTreeMap::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.err("dictionary key is not a byte string"));
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    dict.insert(key, value);
                }
                self.pos += 1;
                Ok(Value::Dict(dict))
            }
            _ => Err(self.err("expected 'i', 'l', 'd' or a digit")),
        }
    }

    /// Reads a decimal integer up to (and consuming) `end`.
    fn integer(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while self.peek()?.is_ascii_digit() {
            self.pos += 1;
        }
        let digits = &self.input[digits_start..self.pos];
        if digits.is_empty() {
            return Err(self.err("expected a digit"));
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(DecodeError {
                pos: digits_start,
                what: "leading zero in an integer",
            });
        }
        if negative && digits == b"0" {
            return Err(DecodeError {
                pos: start,
                what: "negative zero",
            });
        }
        if self.peek()? != end {
            return Err(self.err(if end == b'e' {
                "expected 'e' after an integer"
            } else {
                "expected ':' after a string length"
            }));
        }
        self.pos += 1;
        // Digits only (checked above), so parsing fails only on overflow.
        let text = std::str::from_utf8(&self.input[start..self.pos - 1]).unwrap_or_default();
        text.parse::<i64>().map_err(|_| DecodeError {
            pos: start,
            what: "integer out of range",
        })
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let start = self.pos;
        if self.peek()? == b'-' {
            return Err(self.err("negative string length"));
        }
        let len = self.integer(b':')?;
        let len = usize::try_from(len).map_err(|_| DecodeError {
            pos: start,
            what: "string length out of range",
        })?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.input.len())
            .ok_or(DecodeError {
                pos: start,
                what: "string longer than the input",
            })?;
        let out = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &[u8]) -> Result<Value, DecodeError> {
        decode(s)
    }

    #[test]
    fn integers() {
        assert_eq!(d(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(d(b"i42e"), Ok(Value::Int(42)));
        assert_eq!(d(b"i-7e"), Ok(Value::Int(-7)));
        assert_eq!(
            d(b"i9223372036854775807e"),
            Ok(Value::Int(i64::MAX)),
            "i64::MAX"
        );
        assert_eq!(d(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(d(b"i03e").unwrap_err().what, "leading zero in an integer");
        assert_eq!(d(b"i-0e").unwrap_err().what, "negative zero");
        assert_eq!(d(b"ie").unwrap_err().what, "expected a digit");
        assert_eq!(d(b"i-e").unwrap_err().what, "expected a digit");
        assert_eq!(d(b"i12").unwrap_err().what, "unexpected end of input");
        assert_eq!(
            d(b"i1x2e").unwrap_err().what,
            "expected 'e' after an integer"
        );
        assert_eq!(
            d(b"i9223372036854775808e").unwrap_err().what,
            "integer out of range"
        );
    }

    #[test]
    fn byte_strings() {
        assert_eq!(d(b"0:"), Ok(Value::Bytes(vec![])));
        assert_eq!(d(b"4:spam"), Ok(Value::Bytes(b"spam".to_vec())));
        // Binary content, including ':' and 'e'.
        assert_eq!(
            d(b"3:\x00:e"),
            Ok(Value::Bytes(vec![0, b':', b'e'])),
            "binary"
        );
        assert_eq!(
            d(b"5:spam").unwrap_err().what,
            "string longer than the input"
        );
        assert_eq!(
            d(b"05:spams").unwrap_err().what,
            "leading zero in an integer"
        );
        assert_eq!(
            d(b"4spam").unwrap_err().what,
            "expected ':' after a string length"
        );
        assert_eq!(
            d(b"99999999999999999999:x").unwrap_err().what,
            "integer out of range"
        );
        assert_eq!(
            d(b"18446744073709551615:x").unwrap_err().what,
            "integer out of range"
        );
    }

    #[test]
    fn lists_and_dicts() {
        assert_eq!(
            d(b"l4:spami42ee"),
            Ok(Value::List(vec![
                Value::Bytes(b"spam".to_vec()),
                Value::Int(42)
            ]))
        );
        let v = d(b"d3:bar4:spam3:fooi42ee").unwrap();
        assert_eq!(v.get("bar").and_then(Value::as_bytes), Some(&b"spam"[..]));
        assert_eq!(v.get("foo").and_then(Value::as_int), Some(42));
        assert_eq!(v.get("baz"), None);
        assert_eq!(d(b"le"), Ok(Value::List(vec![])));
        assert_eq!(d(b"de"), Ok(Value::Dict(BTreeMap::new())));
        // Unsorted keys are accepted; the last duplicate wins.
        let v = d(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
        assert_eq!(v.get("a").and_then(Value::as_int), Some(2));
        assert_eq!(v.get("b").and_then(Value::as_int), Some(3));
        assert_eq!(
            d(b"di1ei2ee").unwrap_err().what,
            "dictionary key is not a byte string"
        );
        assert_eq!(d(b"l4:spam").unwrap_err().what, "unexpected end of input");
        assert_eq!(d(b"d3:foo").unwrap_err().what, "unexpected end of input");
    }

    #[test]
    fn rejects_trailing_data_and_garbage() {
        assert_eq!(
            d(b"i1ei2e").unwrap_err(),
            DecodeError {
                pos: 3,
                what: "trailing data after the value"
            }
        );
        assert_eq!(d(b"").unwrap_err().what, "unexpected end of input");
        assert_eq!(
            d(b"x").unwrap_err().what,
            "expected 'i', 'l', 'd' or a digit"
        );
        assert_eq!(
            d(b"<html>").unwrap_err().what,
            "expected 'i', 'l', 'd' or a digit"
        );
    }

    #[test]
    fn bounds_nesting() {
        let deep = |n: usize| {
            let mut v = vec![b'l'; n];
            v.extend(std::iter::repeat_n(b'e', n));
            v
        };
        assert!(d(&deep(MAX_DEPTH + 1)).is_ok());
        assert_eq!(
            d(&deep(MAX_DEPTH + 2)).unwrap_err().what,
            "nesting too deep"
        );
        // Far deeper input must not overflow the stack.
        assert!(d(&deep(100_000)).is_err());
    }

    #[test]
    fn tracker_announce_response() {
        let body = b"d8:completei1e10:incompletei2e8:intervali120e12:min intervali60e\
5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50e";
        let v = d(body).unwrap();
        assert_eq!(v.get("interval").and_then(Value::as_int), Some(120));
        assert_eq!(v.get("min interval").and_then(Value::as_int), Some(60));
        assert_eq!(
            v.get("peers").and_then(Value::as_bytes).map(<[u8]>::len),
            Some(12)
        );
        assert_eq!(
            format!("{:?}", d(b"d1:ai1e1:b2:xye").unwrap()),
            r#"{"a": 1, "b": "xy"}"#
        );
    }
}
