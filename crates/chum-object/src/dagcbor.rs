//! Canonical DAG-CBOR: an encoder that writes the one byte form of a [`Value`] and a strict
//! decoder that rejects every other form.
//!
//! The rules (also in `docs/format.md`): definite lengths only; integer and length heads in
//! shortest form; map keys are text, sorted by length then bytewise, without duplicates; floats
//! are always 64-bit and finite; the only tag is 42 (a link), holding a byte string of `0x00`
//! followed by valid CID bytes; text is valid UTF-8; the simple values are only `false`, `true`
//! and `null`; nothing follows the value. Decoding is bounded by [`Limits`] and never allocates
//! more than the input can justify.

use std::fmt;

use crate::cid::Cid;
use crate::value::{Int, Map, Value, canonical_key_order};

/// Bounds the decoder enforces (and the encoder, so that what one peer encodes the others accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded object in bytes. Default 1 MiB.
    pub max_size: usize,
    /// Deepest nesting of lists and maps (`[]` is depth 1). Default 64; at most
    /// [`Limits::HARD_MAX_DEPTH`] whatever is configured, so recursion stays within the stack.
    pub max_depth: usize,
    /// Most entries in one list or map. Default 100,000.
    pub max_collection_len: usize,
}

impl Limits {
    /// The ceiling on `max_depth`, whatever a caller configures.
    pub const HARD_MAX_DEPTH: usize = 256;

    fn depth(&self) -> usize {
        self.max_depth.min(Self::HARD_MAX_DEPTH)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 1 << 20,
            max_depth: 64,
            max_collection_len: 100_000,
        }
    }
}

/// The strict DAG-CBOR rule an input broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The input is empty.
    Empty,
    /// The input ends inside a value (or a length claims more bytes than remain).
    Truncated,
    /// Bytes follow the complete value.
    TrailingBytes,
    /// An integer, length or tag is not written in its shortest head.
    NonShortestHead,
    /// Additional information 28–30 is reserved in CBOR.
    ReservedAdditionalInfo,
    /// Indefinite-length items (and the break byte) are not allowed.
    IndefiniteLength,
    /// A map key that is not text.
    NonTextKey,
    /// Map keys out of canonical order (length first, then bytewise).
    UnsortedKeys,
    /// The same map key twice.
    DuplicateKey(String),
    /// A 16- or 32-bit float; DAG-CBOR floats are always 64-bit.
    ShortFloat,
    /// NaN or an infinity.
    NonFiniteFloat,
    /// A tag other than 42.
    UnsupportedTag(u64),
    /// Tag 42 whose content is not `0x00` followed by a valid CID.
    InvalidLink(String),
    /// Text that is not valid UTF-8.
    InvalidUtf8,
    /// A simple value other than false, true and null (e.g. undefined).
    UnsupportedSimpleValue(u8),
    /// Nesting deeper than the limit.
    TooDeep(usize),
    /// The object is larger than the limit.
    TooLarge {
        /// The size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A list or map with more entries than the limit.
    TooManyEntries {
        /// The declared number of entries.
        len: u64,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Empty => f.write_str("empty input"),
            Rule::Truncated => f.write_str("truncated: input ends inside a value"),
            Rule::TrailingBytes => f.write_str("trailing bytes after the value"),
            Rule::NonShortestHead => f.write_str("integer or length not in shortest form"),
            Rule::ReservedAdditionalInfo => f.write_str("reserved additional information (28-30)"),
            Rule::IndefiniteLength => f.write_str("indefinite length (or break) not allowed"),
            Rule::NonTextKey => f.write_str("map key is not text"),
            Rule::UnsortedKeys => {
                f.write_str("map keys not in canonical order (length, then bytes)")
            }
            Rule::DuplicateKey(key) => write!(f, "duplicate map key {key:?}"),
            Rule::ShortFloat => f.write_str("float not 64-bit (16- and 32-bit floats not allowed)"),
            Rule::NonFiniteFloat => f.write_str("float is NaN or infinite"),
            Rule::UnsupportedTag(tag) => write!(f, "tag {tag} not allowed (only tag 42)"),
            Rule::InvalidLink(why) => write!(f, "invalid link (tag 42): {why}"),
            Rule::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            Rule::UnsupportedSimpleValue(v) => write!(f, "simple value {v} not allowed"),
            Rule::TooDeep(limit) => write!(f, "nesting deeper than {limit}"),
            Rule::TooLarge { size, limit } => write!(f, "object of {size} bytes exceeds {limit}"),
            Rule::TooManyEntries { len, limit } => {
                write!(f, "collection of {len} entries exceeds {limit}")
            }
        }
    }
}

/// Input that is not canonical DAG-CBOR within the limits. The fault of whoever sent the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not canonical DAG-CBOR at byte {offset}: {rule}")]
pub struct DecodeError {
    /// Byte offset where the broken rule was detected.
    pub offset: usize,
    /// The rule that was broken.
    pub rule: Rule,
}

/// A value that cannot be encoded as DAG-CBOR within the limits. The caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// NaN or an infinity: DAG-CBOR floats are finite.
    #[error("cannot encode a NaN or infinite float")]
    NonFiniteFloat,
    /// Nesting deeper than the limit.
    #[error("value nests deeper than {0}")]
    TooDeep(usize),
    /// A list or map with more entries than the limit.
    #[error("collection of {len} entries exceeds {limit}")]
    TooManyEntries {
        /// Entries in the collection.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The encoding is larger than the limit.
    #[error("encoded object of {size} bytes exceeds {limit}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Encodes `value` as canonical DAG-CBOR under the default [`Limits`].
pub fn encode(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(128);
    encode_into(value, &Limits::default(), &mut out)?;
    Ok(out)
}

/// Appends the canonical DAG-CBOR of `value` to `out`, checking `limits`. On error `out` may
/// hold a partial encoding.
pub fn encode_into(value: &Value, limits: &Limits, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let mut encoder = Encoder {
        out,
        limits,
        max_depth: limits.depth(),
    };
    encoder.value(value, 0)?;
    let size = out.len() - start;
    if size > limits.max_size {
        return Err(EncodeError::TooLarge {
            size,
            limit: limits.max_size,
        });
    }
    Ok(())
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    limits: &'a Limits,
    max_depth: usize,
}

impl Encoder<'_> {
    #[inline]
    fn head(&mut self, major: u8, n: u64) {
        let major = major << 5;
        if n < 24 {
            self.out.push(major | n as u8);
        } else if n <= 0xff {
            self.out.extend_from_slice(&[major | 24, n as u8]);
        } else if n <= 0xffff {
            self.out.push(major | 25);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            self.out.push(major | 26);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }

    fn enter(&self, depth: usize, len: usize) -> Result<usize, EncodeError> {
        if depth >= self.max_depth {
            return Err(EncodeError::TooDeep(self.max_depth));
        }
        if len > self.limits.max_collection_len {
            return Err(EncodeError::TooManyEntries {
                len,
                limit: self.limits.max_collection_len,
            });
        }
        Ok(depth + 1)
    }

    fn value(&mut self, value: &Value, depth: usize) -> Result<(), EncodeError> {
        match value {
            Value::Null => self.out.push(0xf6),
            Value::Bool(false) => self.out.push(0xf4),
            Value::Bool(true) => self.out.push(0xf5),
            Value::Integer(int) => {
                self.head(if int.is_negative() { 1 } else { 0 }, int.cbor_argument())
            }
            Value::Float(float) => {
                if !float.is_finite() {
                    return Err(EncodeError::NonFiniteFloat);
                }
                self.out.push(0xfb);
                self.out.extend_from_slice(&float.to_bits().to_be_bytes());
            }
            Value::Bytes(bytes) => {
                self.head(2, bytes.len() as u64);
                self.out.extend_from_slice(bytes);
            }
            Value::Text(text) => {
                self.head(3, text.len() as u64);
                self.out.extend_from_slice(text.as_bytes());
            }
            Value::List(list) => {
                let depth = self.enter(depth, list.len())?;
                self.head(4, list.len() as u64);
                for item in list {
                    self.value(item, depth)?;
                }
            }
            Value::Map(map) => {
                let depth = self.enter(depth, map.len())?;
                self.head(5, map.len() as u64);
                for (key, item) in map.iter() {
                    self.head(3, key.len() as u64);
                    self.out.extend_from_slice(key.as_bytes());
                    self.value(item, depth)?;
                }
            }
            Value::Link(cid) => {
                let bytes = cid.as_bytes();
                self.out.extend_from_slice(&[0xd8, 42]);
                self.head(2, bytes.len() as u64 + 1);
                self.out.push(0x00);
                self.out.extend_from_slice(bytes);
            }
        }
        Ok(())
    }
}

/// Decodes one value from `bytes` under the default [`Limits`], rejecting anything non-canonical.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    decode_with_limits(bytes, &Limits::default())
}

/// Decodes one value from `bytes` under `limits`, rejecting anything non-canonical.
pub fn decode_with_limits(bytes: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    crate::counters::decoded();
    run::<true>(bytes, limits)
}

/// Checks that `bytes` are exactly one canonical DAG-CBOR value within `limits` — the same
/// rules as [`decode_with_limits`], with the same errors — without building the value. For
/// receivers that verify and store bytes without reading them.
pub fn validate_with_limits(bytes: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    crate::counters::decoded();
    run::<false>(bytes, limits).map(|_| ())
}

/// Decodes (`BUILD`) or only checks (the result is then `Value::Null`) one value.
fn run<const BUILD: bool>(bytes: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    if bytes.len() > limits.max_size {
        return Err(DecodeError {
            offset: 0,
            rule: Rule::TooLarge {
                size: bytes.len(),
                limit: limits.max_size,
            },
        });
    }
    if bytes.is_empty() {
        return Err(DecodeError {
            offset: 0,
            rule: Rule::Empty,
        });
    }
    let mut decoder = Decoder {
        input: bytes,
        pos: 0,
        limits,
        max_depth: limits.depth(),
    };
    let value = decoder.value::<BUILD>(0).map_err(|fail| *fail)?;
    if decoder.pos != bytes.len() {
        return Err(*decoder.error_at(decoder.pos, Rule::TrailingBytes));
    }
    Ok(value)
}

/// Internal failures are boxed so that the hot path's `Result`s stay small.
type Fail = Box<DecodeError>;

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    max_depth: usize,
}

impl<'a> Decoder<'a> {
    #[cold]
    #[inline(never)]
    fn error_at(&self, offset: usize, rule: Rule) -> Fail {
        Box::new(DecodeError { offset, rule })
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len());
        match end {
            Some(end) => {
                let slice = &self.input[self.pos..end];
                self.pos = end;
                Ok(slice)
            }
            None => Err(self.error_at(self.input.len(), Rule::Truncated)),
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Fail> {
        match self.input.get(self.pos) {
            Some(&byte) => {
                self.pos += 1;
                Ok(byte)
            }
            None => Err(self.error_at(self.input.len(), Rule::Truncated)),
        }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Reads the argument of a head whose initial byte had additional information `info`
    /// (major types 0–6), enforcing the shortest form.
    #[inline]
    fn argument(&mut self, info: u8, start: usize) -> Result<u64, Fail> {
        let (value, minimum) = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => (u64::from(self.byte()?), 24),
            25 => (u64::from(u16::from_be_bytes(self.array()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.array()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.array()?), 0x1_0000_0000),
            28..=30 => return Err(self.error_at(start, Rule::ReservedAdditionalInfo)),
            _ => return Err(self.error_at(start, Rule::IndefiniteLength)),
        };
        if value < minimum {
            return Err(self.error_at(start, Rule::NonShortestHead));
        }
        Ok(value)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let slice = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    /// A length that must fit in the remaining input at `min_item` bytes per item.
    #[inline]
    fn length(&mut self, info: u8, start: usize, min_item: usize) -> Result<usize, Fail> {
        let len = self.argument(info, start)?;
        let fits = usize::try_from(len).ok().filter(|&len| {
            len.checked_mul(min_item)
                .is_some_and(|need| need <= self.remaining())
        });
        fits.ok_or_else(|| self.error_at(self.input.len(), Rule::Truncated))
    }

    #[inline]
    fn str(&mut self, info: u8, start: usize) -> Result<&'a str, Fail> {
        let len = self.length(info, start, 1)?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.error_at(start, Rule::InvalidUtf8))
    }

    fn enter(&self, depth: usize, start: usize, len: usize) -> Result<usize, Fail> {
        if depth >= self.max_depth {
            return Err(self.error_at(start, Rule::TooDeep(self.max_depth)));
        }
        if len > self.limits.max_collection_len {
            let rule = Rule::TooManyEntries {
                len: len as u64,
                limit: self.limits.max_collection_len,
            };
            return Err(self.error_at(start, rule));
        }
        Ok(depth + 1)
    }

    /// Decodes one value. Scalars are decoded here, inline in the caller's loop; lists and
    /// maps go through [`Decoder::container`], which is not inlined, so recursion stays a call.
    /// Without `BUILD`, every value is checked the same way but returned as `Value::Null`.
    #[inline(always)]
    fn value<const BUILD: bool>(&mut self, depth: usize) -> Result<Value, Fail> {
        let start = self.pos;
        let initial = self.byte()?;
        let info = initial & 0x1f;
        match initial >> 5 {
            0 => {
                let argument = self.argument(info, start)?;
                Ok(built::<BUILD>(|| Value::Integer(Int::from_u64(argument))))
            }
            1 => {
                let argument = self.argument(info, start)?;
                Ok(built::<BUILD>(|| {
                    Value::Integer(Int::negative_from_cbor(argument))
                }))
            }
            2 => {
                let len = self.length(info, start, 1)?;
                let bytes = self.take(len)?;
                Ok(built::<BUILD>(|| Value::Bytes(bytes.to_vec())))
            }
            3 => {
                let text = self.str(info, start)?;
                Ok(built::<BUILD>(|| Value::Text(text.into())))
            }
            4 | 5 => self.container::<BUILD>(initial, start, depth),
            6 => {
                let tag = self.argument(info, start)?;
                if tag != 42 {
                    return Err(self.error_at(start, Rule::UnsupportedTag(tag)));
                }
                self.link::<BUILD>(start)
            }
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                25 | 26 => Err(self.error_at(start, Rule::ShortFloat)),
                27 => {
                    let float = f64::from_bits(u64::from_be_bytes(self.array()?));
                    if float.is_finite() {
                        Ok(Value::Float(float))
                    } else {
                        Err(self.error_at(start, Rule::NonFiniteFloat))
                    }
                }
                24 => {
                    let simple = self.byte()?;
                    Err(self.error_at(start, Rule::UnsupportedSimpleValue(simple)))
                }
                28..=30 => Err(self.error_at(start, Rule::ReservedAdditionalInfo)),
                31 => Err(self.error_at(start, Rule::IndefiniteLength)),
                simple => Err(self.error_at(start, Rule::UnsupportedSimpleValue(simple))),
            },
        }
    }

    #[inline(never)]
    fn container<const BUILD: bool>(
        &mut self,
        initial: u8,
        start: usize,
        depth: usize,
    ) -> Result<Value, Fail> {
        let info = initial & 0x1f;
        match initial >> 5 {
            4 => {
                let len = self.length(info, start, 1)?;
                let depth = self.enter(depth, start, len)?;
                if !BUILD {
                    for _ in 0..len {
                        self.value::<false>(depth)?;
                    }
                    return Ok(Value::Null);
                }
                let mut list = Vec::with_capacity(len);
                for _ in 0..len {
                    list.push(self.value::<true>(depth)?);
                }
                Ok(Value::List(list))
            }
            5 => {
                let len = self.length(info, start, 2)?;
                let depth = self.enter(depth, start, len)?;
                let mut map = Map::with_capacity(if BUILD { len } else { 0 });
                let mut previous: Option<&str> = None;
                for _ in 0..len {
                    let key_start = self.pos;
                    let key_initial = self.byte()?;
                    if key_initial >> 5 != 3 {
                        return Err(self.error_at(key_start, Rule::NonTextKey));
                    }
                    let key = self.str(key_initial & 0x1f, key_start)?;
                    if let Some(before) = previous {
                        match canonical_key_order(before, key) {
                            std::cmp::Ordering::Less => {}
                            std::cmp::Ordering::Equal => {
                                let rule = Rule::DuplicateKey(key.to_owned());
                                return Err(self.error_at(key_start, rule));
                            }
                            std::cmp::Ordering::Greater => {
                                return Err(self.error_at(key_start, Rule::UnsortedKeys));
                            }
                        }
                    }
                    previous = Some(key);
                    let item = self.value::<BUILD>(depth)?;
                    if BUILD {
                        map.push_sorted(key.into(), item);
                    }
                }
                Ok(built::<BUILD>(|| Value::Map(map)))
            }
            // Only called for major types 4 and 5; anything else is the caller's bug, reported as
            // malformed input rather than a panic.
            _ => Err(self.error_at(start, Rule::Truncated)),
        }
    }

    fn link<const BUILD: bool>(&mut self, start: usize) -> Result<Value, Fail> {
        let content_start = self.pos;
        let initial = self.byte()?;
        if initial >> 5 != 2 {
            return Err(self.error_at(
                content_start,
                Rule::InvalidLink("content is not bytes".into()),
            ));
        }
        let len = self.length(initial & 0x1f, content_start, 1)?;
        let bytes = self.take(len)?;
        match bytes.split_first() {
            Some((0x00, cid)) => Cid::from_bytes(cid)
                .map(|cid| built::<BUILD>(|| Value::Link(cid)))
                .map_err(|error| self.error_at(start, Rule::InvalidLink(error.to_string()))),
            Some(_) => Err(self.error_at(start, Rule::InvalidLink("missing 0x00 prefix".into()))),
            None => Err(self.error_at(start, Rule::InvalidLink("empty".into()))),
        }
    }
}

/// `make()` when building, `Value::Null` when only checking.
#[inline(always)]
fn built<const BUILD: bool>(make: impl FnOnce() -> Value) -> Value {
    if BUILD { make() } else { Value::Null }
}
