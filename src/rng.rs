//! One small seeded random generator for the whole crate: SplitMix64 (Steele, Lea,
//! Flood 2014). Tiny, fast, and good enough for decisions and payloads; written out so
//! the stream for a printed seed never changes with a crate upgrade, and every run that
//! prints its seed can be replayed exactly (the relay, the grader, the latency probes).

/// A seeded stream of random numbers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1), from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi.saturating_sub(lo)).max(1) as u64) as usize
    }

    /// Fills a buffer with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// A random word of `n` lowercase letters.
    pub fn word(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'a' + (self.next_u64() % 26) as u8) as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_first_values_for_seed_zero() {
        // Published SplitMix64 outputs for seed 0: a change here breaks every replay.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn ranges_and_units_stay_in_bounds() {
        let mut r = Rng::new(42);
        for _ in 0..1000 {
            assert!((3..7).contains(&r.range(3, 7)));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        let mut b = [0u8; 13];
        r.fill(&mut b);
        assert_ne!(b, [0u8; 13]);
    }
}
