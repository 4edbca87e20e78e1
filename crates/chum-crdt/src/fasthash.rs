//! A fast hasher for maps keyed by CIDs, whose bytes are already uniformly distributed hashes.
//! Only lookups use it; nothing iterates a hash map into a result, so order never leaks.

use std::hash::{BuildHasherDefault, Hasher};

/// Folds the bytes written into 64 bits with a multiply-rotate mix.
#[derive(Debug, Default, Clone, Copy)]
pub struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        for &byte in chunks.remainder() {
            self.mix(u64::from(byte));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A `HashMap` keyed by CIDs.
pub type CidMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FoldHasher>>;
/// A `HashSet` of CIDs.
pub type CidSet<K> = std::collections::HashSet<K, BuildHasherDefault<FoldHasher>>;
