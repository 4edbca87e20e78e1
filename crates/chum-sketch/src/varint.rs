//! Unsigned LEB128 varints in their shortest form, as every chum-sync wire structure uses them.

use crate::sketch::SketchError;

/// Appends `value` as a shortest-form LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint, refusing overlong, non-shortest and truncated forms.
#[inline]
pub fn get_varint(input: &mut &[u8]) -> Result<u64, SketchError> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return Err(SketchError::Malformed("varint overflows 64 bits"));
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(SketchError::Malformed("varint not in shortest form"));
            }
            *input = &input[i + 1..];
            return Ok(value);
        }
    }
    Err(SketchError::Malformed("truncated varint"))
}
