//! The packed form of one run's results: about four bytes per result.
//!
//! ```text
//! version:u8=1  count:varint  { test_id_delta:varint  flags:u8  [duration_ms:varint] }*
//! flags: bits 0-1 outcome (0 passed, 1 skipped, 2 failed, 3 error), bit 2 mixed,
//!        bit 3 duration present
//! ```
//! Entries are sorted by test id so the deltas stay small.

use omen_core::Outcome;
use omen_core::codec::{Cursor, DecodeError, put_u64};

const VERSION: u8 = 1;

/// One stored result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    /// Row id in the `tests` table.
    pub test_id: i64,
    /// Final outcome.
    pub outcome: Outcome,
    /// Passed and failed within the run.
    pub mixed: bool,
    /// Duration of the last attempt.
    pub duration_ms: Option<u32>,
}

/// Pack results; sorts `results` by test id.
pub fn pack(results: &mut [Packed]) -> Vec<u8> {
    results.sort_unstable_by_key(|r| r.test_id);
    let mut out = Vec::with_capacity(2 + results.len() * 4);
    out.push(VERSION);
    put_u64(&mut out, results.len() as u64);
    let mut prev = 0i64;
    for r in results.iter() {
        put_u64(&mut out, (r.test_id - prev) as u64);
        prev = r.test_id;
        let outcome = match r.outcome {
            Outcome::Passed => 0,
            Outcome::Skipped => 1,
            Outcome::Failed => 2,
            Outcome::Error => 3,
        };
        let flags = outcome | (u8::from(r.mixed) << 2) | (u8::from(r.duration_ms.is_some()) << 3);
        out.push(flags);
        if let Some(ms) = r.duration_ms {
            put_u64(&mut out, ms.into());
        }
    }
    out
}

/// Unpack what [`pack`] wrote.
pub fn unpack(bytes: &[u8]) -> Result<Vec<Packed>, DecodeError> {
    let mut out = Vec::new();
    visit(bytes, |p| out.push(p))?;
    Ok(out)
}

/// Read what [`pack`] wrote without collecting it: `each` is called with every result, in
/// test-id order. A reader that keeps a few fields of millions of results keeps no more.
pub fn visit(bytes: &[u8], mut each: impl FnMut(Packed)) -> Result<(), DecodeError> {
    let mut c = Cursor::new(bytes);
    let version = c.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let n = c.u64()?;
    let mut prev = 0i64;
    for _ in 0..n {
        let test_id = prev + c.u64()? as i64;
        prev = test_id;
        let flags = c.u8()?;
        let outcome = match flags & 0b11 {
            0 => Outcome::Passed,
            1 => Outcome::Skipped,
            2 => Outcome::Failed,
            _ => Outcome::Error,
        };
        let duration_ms = if flags & 0b1000 != 0 {
            Some(c.u32()?)
        } else {
            None
        };
        each(Packed {
            test_id,
            outcome,
            mixed: flags & 0b100 != 0,
            duration_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let mut results: Vec<Packed> = (1..=1000)
            .rev()
            .map(|i| Packed {
                test_id: i,
                outcome: if i % 10 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                },
                mixed: i % 100 == 0,
                duration_ms: (i % 3 != 0).then_some((i * 7) as u32 % 900),
            })
            .collect();
        let bytes = pack(&mut results);
        assert!(bytes.len() < 1000 * 4, "{} bytes", bytes.len());
        assert_eq!(unpack(&bytes).unwrap(), results);
        assert!(unpack(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(unpack(&[2]), Err(DecodeError::Version(2)));
    }
}
