//! Stable, non-cryptographic hashing for identities and commits.
//!
//! The values are stored in the history database, so the function must never change: FNV-1a,
//! 64 bit, over UTF-8 bytes.

/// FNV-1a 64-bit hash of `bytes`. Stable across versions and platforms.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    Fnv1a64::default().update(bytes).finish()
}

/// [`fnv1a64`] of bytes given in pieces, without joining them first.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a64 {
    /// Hash `bytes` after what was hashed so far.
    pub fn update(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The hash of everything given.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The hash stored for a commit SHA (case-insensitive, surrounding whitespace ignored).
pub fn commit_hash(sha: &str) -> u64 {
    fnv1a64(sha.trim().to_ascii_lowercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn pieces_hash_like_their_concatenation() {
        let pieces = Fnv1a64::default().update(b"foo").update(b"").update(b"bar");
        assert_eq!(pieces.finish(), fnv1a64(b"foobar"));
    }

    #[test]
    fn commit_hash_ignores_case_and_space() {
        assert_eq!(commit_hash(" ABC123\n"), commit_hash("abc123"));
    }
}
