//! Deterministic xorshift64 numbers for the sample installation, the demo, tests and benches:
//! the same seed gives the same tree byte for byte, at any size, cheaply. Never for secrets.

/// Marsaglia's xorshift64 (shifts 13, 7, 17). The state must not be zero.
#[derive(Clone, Debug)]
pub struct Xorshift64(u64);

impl Xorshift64 {
    /// A generator starting from `state` (zero is replaced by one: zero is a fixed point).
    pub fn new(state: u64) -> Self {
        Xorshift64(state.max(1))
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

    /// Fills `buf` with the low byte of one number per byte.
    #[cfg(any(test, feature = "testing"))]
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }

    /// `len` bytes, the low byte of one number each.
    #[cfg(any(test, feature = "testing"))]
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }
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
    }
}
