//! LEB128 varints and zigzag integers: the building blocks of Omen's compact stored formats.

/// Why stored bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end in the middle of a value.
    #[error("truncated data at byte {0}")]
    Truncated(usize),
    /// A varint is longer than 10 bytes.
    #[error("overlong varint at byte {0}")]
    Overlong(usize),
    /// The format version is not one this build reads.
    #[error("unsupported format version {0}")]
    Version(u8),
}

/// Append `v` as an unsigned LEB128 varint.
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append `v` zigzag-encoded.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Append `v` as 4 little-endian bytes.
pub fn put_f32(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Append `v` as 8 little-endian bytes.
pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A cursor over encoded bytes.
#[derive(Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Start reading `bytes` from the beginning.
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Read one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// Read an unsigned varint.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(DecodeError::Overlong(start));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Overlong(start))
    }

    /// Read a varint that must fit in `u32` (larger values saturate).
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::try_from(self.u64()?).unwrap_or(u32::MAX))
    }

    /// Read a zigzag varint.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Read 4 little-endian bytes as `f32`.
    pub fn f32(&mut self) -> Result<f32, DecodeError> {
        let end = self.pos + 4;
        let bytes = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos = end;
        Ok(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Read 8 little-endian bytes as `f64`.
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let end = self.pos + 8;
        let bytes: [u8; 8] = self
            .bytes
            .get(self.pos..end)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos = end;
        Ok(f64::from_le_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut out = Vec::new();
        let values = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        for v in values {
            put_u64(&mut out, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 1_700_000_000] {
            put_i64(&mut out, v);
        }
        put_f32(&mut out, 1.25);
        put_f64(&mut out, -0.1);
        let mut c = Cursor::new(&out);
        for v in values {
            assert_eq!(c.u64(), Ok(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 1_700_000_000] {
            assert_eq!(c.i64(), Ok(v));
        }
        assert_eq!(c.f32(), Ok(1.25));
        assert_eq!(c.f64(), Ok(-0.1));
        assert!(c.is_empty());
        assert_eq!(c.u8(), Err(DecodeError::Truncated(out.len())));
    }

    #[test]
    fn rejects_overlong() {
        let bytes = [0xffu8; 11];
        assert!(matches!(
            Cursor::new(&bytes).u64(),
            Err(DecodeError::Overlong(0))
        ));
    }
}
