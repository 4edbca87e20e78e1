//! DAG-JSON: the JSON form of IPLD data, for people, files and other tools.
//!
//! Input is ordinary JSON (RFC 8259): any key order, any whitespace. Integers are JSON numbers
//! without fraction or exponent and may span the whole DAG-CBOR range (−2^64 ..= 2^64−1);
//! numbers with a fraction or exponent are floats. Links are `{"/": "<cid>"}`, bytes are
//! `{"/": {"bytes": "<base64>"}}`.
//!
//! Output follows the DAG-JSON specification as the IPLD fixtures show it: no whitespace, map
//! keys sorted bytewise (unlike DAG-CBOR's length-first order), CIDv1 in base32 and CIDv0 in
//! base58btc, bytes in standard base64 without padding, floats in the shortest text that reads
//! back to the same float (JavaScript's number format, with `.0` added to integral floats so they
//! stay floats). Strings escape only `"`, `\` and control characters.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::cid::Cid;
use crate::dagcbor::Limits;
use crate::value::{Int, Map, Value};

/// Text that is not valid DAG-JSON, or a value DAG-JSON cannot represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The input is not valid DAG-JSON (whoever wrote the text is at fault).
    #[error("invalid DAG-JSON at line {line}, column {column}: {reason}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// The value has no DAG-JSON form (a NaN float, or a map in the reserved `"/"` namespace).
    #[error("value cannot be written as DAG-JSON: {0}")]
    Unrepresentable(String),
}

/// Parses DAG-JSON text under the default [`Limits`] (depth and collection length).
pub fn from_str(text: &str) -> Result<Value, JsonError> {
    from_str_with_limits(text, &Limits::default())
}

/// Parses DAG-JSON bytes (which must be UTF-8) under the default [`Limits`].
pub fn from_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => from_str(text),
        Err(error) => {
            let prefix = &bytes[..error.valid_up_to()];
            let (line, column) = position(&String::from_utf8_lossy(prefix), prefix.len());
            Err(JsonError::Syntax {
                line,
                column,
                reason: "input is not valid UTF-8".into(),
            })
        }
    }
}

/// Parses DAG-JSON text under `limits` (depth and collection length).
pub fn from_str_with_limits(text: &str, limits: &Limits) -> Result<Value, JsonError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        limits,
    };
    parser.whitespace();
    let value = parser.value(0)?;
    parser.whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error("unexpected text after the value"));
    }
    if nesting(&value) > parser.max_depth() {
        return Err(parser.error_at(0, format!("nesting deeper than {}", parser.max_depth())));
    }
    Ok(value)
}

/// Writes `value` as DAG-JSON.
pub fn to_string(value: &Value) -> Result<String, JsonError> {
    let mut out = String::with_capacity(128);
    write_value(value, &mut out, 0)?;
    Ok(out)
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> JsonError {
        self.error_at(self.pos, reason)
    }

    fn error_at(&self, offset: usize, reason: impl Into<String>) -> JsonError {
        // Offsets always sit on char boundaries: the parser only stops at ASCII bytes.
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (line, column) = position(self.text, offset);
        JsonError::Syntax {
            line,
            column,
            reason: reason.into(),
        }
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{}'", byte as char)))
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("unknown literal (expected true, false or null)"))
        }
    }

    fn max_depth(&self) -> usize {
        self.limits.max_depth.min(Limits::HARD_MAX_DEPTH)
    }

    /// Enters a JSON array or object. The `{"/": …}` wrappers of links and bytes are not
    /// containers in the data model, so the parser allows two levels beyond the limit and the
    /// finished value's real depth is checked afterwards.
    fn enter(&self, depth: usize) -> Result<usize, JsonError> {
        if depth >= self.max_depth() + 2 {
            return Err(self.error(format!("nesting deeper than {}", self.max_depth())));
        }
        Ok(depth + 1)
    }

    fn check_len(&self, len: usize) -> Result<(), JsonError> {
        if len >= self.limits.max_collection_len {
            return Err(self.error(format!(
                "collection of more than {} entries",
                self.limits.max_collection_len
            )));
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'{') => self.map(depth),
            Some(b'[') => {
                let depth = self.enter(depth)?;
                self.pos += 1;
                let mut list = Vec::new();
                self.whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::List(list));
                }
                loop {
                    self.check_len(list.len())?;
                    self.whitespace();
                    list.push(self.value(depth)?);
                    self.whitespace();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::List(list));
                        }
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => Ok(Value::Text(self.string()?.into())),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn map(&mut self, depth: usize) -> Result<Value, JsonError> {
        let start = self.pos;
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut entries: Vec<(String, Value)> = Vec::new();
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.check_len(entries.len())?;
                self.whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a string key"));
                }
                let key = self.string()?;
                self.whitespace();
                self.expect(b':')?;
                self.whitespace();
                let value = self.value(depth)?;
                entries.push((key, value));
                self.whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }
        entries.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(self.error_at(start, format!("duplicate map key {:?}", pair[0].0)));
        }
        let first = entries.first().map(|(key, value)| (key.as_str(), value));
        match reserved(first, entries.len()) {
            Reserved::Plain => Ok(Value::Map(entries.into_iter().collect::<Map>())),
            Reserved::Link(text) => match text.parse::<Cid>() {
                // DAG-JSON writes CIDv1 in base32 and CIDv0 in base58btc, nothing else.
                Ok(cid) if cid.to_string() == text => Ok(Value::Link(cid)),
                Ok(_) => Err(self.error_at(
                    start,
                    "a link must be a base32 CIDv1 (b…) or a base58btc CIDv0 (Qm…)",
                )),
                Err(error) => Err(self.error_at(start, error.to_string())),
            },
            Reserved::Bytes(text) => decode_base64(text)
                .map(Value::Bytes)
                .ok_or_else(|| self.error_at(start, "invalid base64 in {\"/\": {\"bytes\": …}}")),
            Reserved::Invalid(why) => Err(self.error_at(start, why)),
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&byte) = self.bytes.get(self.pos) {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run stops only at ASCII bytes, so it is whole UTF-8.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(self.error_at(self.pos - 1, "invalid escape")),
                    }
                }
                Some(_) => return Err(self.error("control character in string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("short \\u escape"))?;
        let mut value = 0u32;
        for &digit in digits {
            let nibble = (digit as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err(self.error("lone surrogate in \\u escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("lone surrogate in \\u escape"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone surrogate in \\u escape")),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.digits() {
            0 => return Err(self.error("expected digits")),
            n if n > 1 && self.bytes[int_start] == b'0' => {
                return Err(self.error_at(int_start, "leading zero in number"));
            }
            _ => {}
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("expected digits after '.'"));
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected digits in exponent"));
            }
            is_float = true;
        }
        let text = &self.text[start..self.pos];
        if is_float {
            let float: f64 = text
                .parse()
                .map_err(|_| self.error_at(start, "invalid number"))?;
            if !float.is_finite() {
                return Err(self.error_at(start, "float out of the 64-bit range"));
            }
            return Ok(Value::Float(float));
        }
        let out_of_range = || self.error_at(start, "integer outside -2^64 ..= 2^64-1");
        let magnitude: u128 = self.text[int_start..int_end]
            .parse()
            .map_err(|_| out_of_range())?;
        if magnitude > 1u128 << 64 {
            return Err(out_of_range());
        }
        // |magnitude| <= 2^64, so the conversion and negation cannot overflow an i128.
        let value = if negative {
            -(magnitude as i128)
        } else {
            magnitude as i128
        };
        Int::try_from(value)
            .map(Value::Integer)
            .map_err(|_| out_of_range())
    }
}

/// How deeply lists and maps nest in `value` (`[]` is 1); bounded by the parser's limit.
fn nesting(value: &Value) -> usize {
    match value {
        Value::List(list) => 1 + list.iter().map(nesting).max().unwrap_or(0),
        Value::Map(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

enum Reserved<'a> {
    Plain,
    Link(&'a str),
    Bytes(&'a str),
    Invalid(&'static str),
}

/// Classifies a map against DAG-JSON's reserved `"/"` namespace, given its bytewise-first entry
/// and its length.
fn reserved<'a>(first: Option<(&str, &'a Value)>, len: usize) -> Reserved<'a> {
    let Some(("/", first_value)) = first else {
        return Reserved::Plain;
    };
    match first_value {
        Value::Text(text) if len == 1 => Reserved::Link(text),
        Value::Text(_) => Reserved::Invalid("a link map {\"/\": \"…\"} must have no other keys"),
        Value::Map(inner) => match inner
            .iter()
            .min_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()))
        {
            Some(("bytes", Value::Text(text))) if inner.len() == 1 && len == 1 => {
                Reserved::Bytes(text)
            }
            Some(("bytes", Value::Text(_))) => {
                Reserved::Invalid("a bytes map {\"/\": {\"bytes\": …}} must have no other keys")
            }
            _ => Reserved::Plain,
        },
        _ => Reserved::Plain,
    }
}

/// Standard base64 without padding, as the DAG-JSON spec writes bytes.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
}

fn write_value(value: &Value, out: &mut String, depth: usize) -> Result<(), JsonError> {
    if depth > Limits::HARD_MAX_DEPTH {
        return Err(JsonError::Unrepresentable(format!(
            "nesting deeper than {}",
            Limits::HARD_MAX_DEPTH
        )));
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Integer(int) => {
            let _ = write!(out, "{int}");
        }
        Value::Float(float) => write_float(*float, out)?,
        Value::Bytes(bytes) => {
            out.push_str(r#"{"/":{"bytes":""#);
            base64::engine::general_purpose::STANDARD_NO_PAD.encode_string(bytes, out);
            out.push_str(r#""}}"#);
        }
        Value::Text(text) => write_string(text, out),
        Value::List(list) => {
            out.push('[');
            for (i, item) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Map(map) => {
            let mut entries: Vec<(&str, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            if !matches!(
                reserved(entries.first().copied(), entries.len()),
                Reserved::Plain
            ) {
                return Err(JsonError::Unrepresentable(
                    "a map whose \"/\" entry looks like a link or bytes".into(),
                ));
            }
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out, depth + 1)?;
            }
            out.push('}');
        }
        Value::Link(cid) => {
            let _ = write!(out, r#"{{"/":"{cid}"}}"#);
        }
    }
    Ok(())
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    let mut run_start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[run_start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        run_start = i + 1;
    }
    out.push_str(&text[run_start..]);
    out.push('"');
}

/// Writes a finite float in JavaScript's shortest round-trip form, keeping a `.0` on integral
/// values written without an exponent so that they read back as floats.
fn write_float(float: f64, out: &mut String) -> Result<(), JsonError> {
    if !float.is_finite() {
        return Err(JsonError::Unrepresentable("NaN or infinite float".into()));
    }
    if float == 0.0 {
        out.push_str(if float.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        });
        return Ok(());
    }
    // `{:e}` gives the shortest digits that round-trip, as d.ddde±x.
    let scientific = format!("{:e}", float.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exponent + 1; // position of the decimal point relative to the digits
    if float < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
        out.push_str(".0");
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{}", if n > 0 { "+" } else { "-" }, (n - 1).abs());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn float_text(f: f64) -> String {
        let mut out = String::new();
        write_float(f, &mut out).unwrap();
        out
    }

    #[test]
    fn floats_use_javascript_shortest_form() {
        assert_eq!(float_text(0.5), "0.5");
        assert_eq!(float_text(1e-323), "1e-323");
        assert_eq!(float_text(-8.940696716308594e-8), "-8.940696716308594e-8");
        assert_eq!(float_text(82497.63712086187), "82497.63712086187");
        assert_eq!(float_text(1e300), "1e+300");
        assert_eq!(float_text(2.0), "2.0");
        assert_eq!(float_text(1e21), "1e+21");
        assert_eq!(float_text(1e20), "100000000000000000000.0");
        assert_eq!(float_text(0.000001), "0.000001");
        assert_eq!(float_text(1.5e-7), "1.5e-7");
        assert_eq!(float_text(-0.0), "-0.0");
        for f in [
            0.1,
            1.0 / 3.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            123456.789e10,
        ] {
            assert_eq!(float_text(f).parse::<f64>().unwrap(), f);
        }
    }

    #[test]
    fn reserved_namespace_is_enforced() {
        assert!(from_str(r#"{"/":"bafy","x":1}"#).is_err());
        assert!(from_str(r#"{"/":"not a cid"}"#).is_err());
        assert!(from_str(r#"{"/":{"bytes":"AAA","x":1}}"#).is_err());
        assert!(from_str(r#"{"/":{"bytes":"AAA"},"x":1}"#).is_err());
        assert_eq!(
            from_str(r#"{"/":true,"x":1}"#)
                .unwrap()
                .as_map()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            from_str(r#"{"/":{"bytes":"AQID"}}"#).unwrap(),
            Value::Bytes(vec![1, 2, 3])
        );
        assert!(
            from_str(r#"{"/":{"bytes":"AQ=="}}"#).is_err(),
            "padding is not DAG-JSON"
        );
        assert!(from_str(r#"{"/":{"bytes":"AQ="}}"#).is_err());
        let cid = "bafyr4ia7stf7ge5tzyrsk6tskhva7sk2erkw5jqr4t4pi5pfjglrxlw3ai";
        assert!(from_str(&format!(r#"{{"/":"{cid}"}}"#)).is_ok());
        assert!(from_str(&format!(r#"{{"/":"{}"}}"#, cid.to_uppercase())).is_err());
        assert!(from_str(&format!(r#"{{"/":"https://x.example/ipfs/{cid}"}}"#)).is_err());
        let tricky: Value = Value::Map([("/", Value::Text("x".into()))].into());
        assert!(to_string(&tricky).is_err());
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = from_str("{\n  \"a\": tru }").unwrap_err();
        assert!(
            matches!(
                error,
                JsonError::Syntax {
                    line: 2,
                    column: 8,
                    ..
                }
            ),
            "{error}"
        );
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            "-",
            "\"\\x\"",
            "\"\u{1}\"",
            "[1] 2",
            "1e",
            "{\"a\":1,\"a\":2}",
            "18446744073709551616",
            "-18446744073709551617",
            "1e999",
            "\"\\ud800\"",
            "{1:2}",
            "nul",
        ] {
            assert!(from_str(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            from_str("-18446744073709551616").unwrap(),
            Value::Integer(Int::MIN)
        );
        assert_eq!(
            from_str("18446744073709551615").unwrap(),
            Value::Integer(Int::MAX)
        );
        assert_eq!(from_str("-0").unwrap(), Value::from(0));
        assert!(from_str("-170141183460469231731687303715884105728").is_err());
        assert!(from_str("-340282366920938463463374607431768211455").is_err());
        assert!(from_str("99999999999999999999999999999999999999999999").is_err());
    }

    #[test]
    fn links_and_bytes_at_the_depth_limit_round_trip() {
        let cid = crate::cid::Cid::hash(crate::cid::Codec::Raw, b"x");
        for leaf in [Value::Link(cid), Value::Bytes(vec![1, 2])] {
            let mut value = leaf;
            for _ in 0..64 {
                value = Value::List(vec![value]);
            }
            crate::dagcbor::encode(&value).unwrap();
            assert_eq!(from_str(&to_string(&value).unwrap()).unwrap(), value);
            let deeper = Value::List(vec![value]);
            assert!(from_str(&to_string(&deeper).unwrap()).is_err());
        }
    }

    #[test]
    fn deep_nesting_fails_fast() {
        let deep = "[".repeat(100_000);
        assert!(from_str(&deep).is_err());
    }

    #[test]
    fn strings_escape_only_what_json_requires() {
        let value = Value::Text("a\"b\\c\n\u{1}é😀\u{7f}".into());
        let text = to_string(&value).unwrap();
        assert_eq!(text, "\"a\\\"b\\\\c\\n\\u0001é😀\u{7f}\"");
        assert_eq!(from_str(&text).unwrap(), value);
    }
}
