//! The one deterministic generator (xorshift64) for the sample installation, the demo, tests
//! and benches: the same seed gives the same bytes, at any size, cheaply. Never for secrets
//! (the demo's legacy encryption takes a seeded `rand` generator: it needs a `CryptoRng`).

/// Marsaglia's xorshift64 (shifts 13, 7, 17). The state must not be zero.
#[derive(Clone, Debug)]
pub struct Xorshift64(u64);

/// 2^64 / golden ratio: spreads a small seed (0, 1, 2, ...) over all the bits of the state.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Xorshift64 {
    /// A generator starting from `state` (zero is replaced by one: zero is a fixed point).
    pub fn new(state: u64) -> Self {
        Xorshift64(state.max(1))
    }

    /// A generator for `seed`: neighbouring seeds give unrelated sequences.
    pub fn seeded(seed: u64) -> Self {
        Self::new(seed ^ SPREAD)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `buf` with numbers, eight little-endian bytes each (the last one cut short when
    /// `buf.len()` is not a multiple of 8: fills of whole words continue one stream).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            word.copy_from_slice(&self.next_u64().to_le_bytes()[..word.len()]);
        }
    }
}

/// `len` bytes for `seed`: [`Xorshift64::seeded`]'s numbers, eight little-endian bytes each.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    Xorshift64::seeded(seed).fill(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sequence_and_zero_state() {
        // Marsaglia (2003), xorshift64 13/7/17 from 88172645463325252.
        let mut r = Xorshift64::new(88172645463325252);
        assert_eq!(r.next_u64(), 8748534153485358512);
        assert_eq!(r.next_u64(), 3040900993826735515);
        let mut z = Xorshift64::new(0);
        assert_ne!(z.next_u64(), 0);
        assert_ne!(bytes(64, 1), bytes(64, 2));
    }
}
