//! Fletcher-4, the checksum of ZFS send streams.
//!
//! Four u64 sums over the little-endian u32 words of the data, all modulo
//! 2^64: for each word `a += w; b += a; c += b; d += c`. The state carries
//! over from one buffer to the next, so the checksum of a concatenation is
//! one pass over all its bytes (FORMAT.md section 4).
//!
//! The bulk of a buffer is summed in four interleaved lanes (word i goes to
//! lane i mod 4), which has no carried dependency between neighbouring
//! words and so runs several times faster than the plain loop; the lanes
//! are then folded into the serial result with the closed forms derived in
//! [`Fletcher4::update`]. The plain loop handles the tail and is the
//! reference the unit tests compare against.

/// A running fletcher-4 checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fletcher4 {
    /// The four sums `[a, b, c, d]`.
    pub words: [u64; 4],
}

impl Fletcher4 {
    /// A checksum of nothing (all sums zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `data`. Stream records and payloads are whole u32 words; a
    /// ragged tail (only possible in raw sends) is left out.
    pub fn update(&mut self, data: &[u8]) {
        let data = &data[..data.len() / 4 * 4];
        let bulk = data.len() / 16 * 16;
        if bulk > 0 {
            self.update_lanes(&data[..bulk]);
        }
        self.update_serial(&data[bulk..]);
    }

    /// The reference loop, one word at a time.
    pub fn update_serial(&mut self, data: &[u8]) {
        let [mut a, mut b, mut c, mut d] = self.words;
        for w in data.chunks_exact(4) {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
            a = a.wrapping_add(w);
            b = b.wrapping_add(a);
            c = c.wrapping_add(b);
            d = d.wrapping_add(c);
        }
        self.words = [a, b, c, d];
    }

    /// Four lanes over `data` (a multiple of 16 bytes), folded into the state.
    ///
    /// With N = 4M words, word i = 4k + j (lane j, k = 0..M) and m = M - k,
    /// the serial sums from zero are
    ///   a = Σ w,  b = Σ (N-i) w,  c = Σ C(N-i+1, 2) w,  d = Σ C(N-i+2, 3) w
    /// and N - i = 4m - j. Each lane j sums from zero
    ///   A = Σ w, B = Σ m w, C = Σ C(m+1, 2) w, D = Σ C(m+2, 3) w,
    /// so Σ m² w = 2C - B and Σ m³ w = 6D - 6C + B, and expanding the
    /// binomials in m gives
    ///   b = Σ_j 4B - jA
    ///   c = Σ_j 16C - (6 + 4j)B + (j(j-1)/2)A
    ///   d = Σ_j 64D - (48 + 16j)C + (4 + 4j + 2j²)B - (j(j-1)(j-2)/6)A.
    /// A prior state (a0, b0, c0, d0) adds N·a0 to b, N·c0 + C(N+1,2)·b0 +
    /// C(N+2,3)·a0 to d, and so on, as every word adds a to b, b to c, c to d.
    fn update_lanes(&mut self, data: &[u8]) {
        let mut a = [0u64; 4];
        let mut b = [0u64; 4];
        let mut c = [0u64; 4];
        let mut d = [0u64; 4];
        for chunk in data.chunks_exact(16) {
            for j in 0..4 {
                let w = u32::from_le_bytes([
                    chunk[4 * j],
                    chunk[4 * j + 1],
                    chunk[4 * j + 2],
                    chunk[4 * j + 3],
                ]) as u64;
                a[j] = a[j].wrapping_add(w);
                b[j] = b[j].wrapping_add(a[j]);
                c[j] = c[j].wrapping_add(b[j]);
                d[j] = d[j].wrapping_add(c[j]);
            }
        }
        let (mut sa, mut sb, mut sc, mut sd) = (0u64, 0u64, 0u64, 0u64);
        for j in 0..4usize {
            let jj = j as u64;
            sa = sa.wrapping_add(a[j]);
            sb = sb
                .wrapping_add(b[j].wrapping_mul(4))
                .wrapping_sub(a[j].wrapping_mul(jj));
            sc = sc
                .wrapping_add(c[j].wrapping_mul(16))
                .wrapping_sub(b[j].wrapping_mul(6 + 4 * jj))
                .wrapping_add(a[j].wrapping_mul(jj * jj.saturating_sub(1) / 2));
            let a_coef = if j == 3 { 1 } else { 0 }; // j(j-1)(j-2)/6
            sd = sd
                .wrapping_add(d[j].wrapping_mul(64))
                .wrapping_sub(c[j].wrapping_mul(48 + 16 * jj))
                .wrapping_add(b[j].wrapping_mul(4 + 4 * jj + 2 * jj * jj))
                .wrapping_sub(a[j].wrapping_mul(a_coef));
        }
        // Fold into the previous state.
        let n = (data.len() / 4) as u128;
        let t2 = (n * (n + 1) / 2) as u64; // C(N+1, 2)
        let t3 = (n * (n + 1) * (n + 2) / 6) as u64; // C(N+2, 3)
        let n = n as u64;
        let [a0, b0, c0, d0] = self.words;
        self.words = [
            a0.wrapping_add(sa),
            b0.wrapping_add(n.wrapping_mul(a0)).wrapping_add(sb),
            c0.wrapping_add(n.wrapping_mul(b0))
                .wrapping_add(t2.wrapping_mul(a0))
                .wrapping_add(sc),
            d0.wrapping_add(n.wrapping_mul(c0))
                .wrapping_add(t2.wrapping_mul(b0))
                .wrapping_add(t3.wrapping_mul(a0))
                .wrapping_add(sd),
        ];
    }

    /// The checksum as zstream prints it: `a/b/c/d` in lower-case hex.
    pub fn to_hex(&self) -> String {
        let [a, b, c, d] = self.words;
        format!("{a:x}/{b:x}/{c:x}/{d:x}")
    }

    /// The 32 bytes of a `zio_cksum_t` (little-endian words).
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, w) in self.words.iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Parse the 32 bytes of a `zio_cksum_t`.
    pub fn from_bytes(b: &[u8]) -> Self {
        let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap());
        Self {
            words: [w(0), w(1), w(2), w(3)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn lanes_match_the_serial_loop() {
        for (len, seed) in [
            (0, 1),
            (4, 2),
            (16, 3),
            (20, 4),
            (312, 5),
            (4096, 6),
            (131_076, 7),
        ] {
            let data = pseudo_random(len, seed);
            for start in [[0u64; 4], [1, 2, 3, 4], [u64::MAX, 7, u64::MAX - 3, 99]] {
                let mut fast = Fletcher4 { words: start };
                fast.update(&data);
                let mut slow = Fletcher4 { words: start };
                slow.update_serial(&data);
                assert_eq!(fast, slow, "len {len} start {start:?}");
            }
        }
    }

    #[test]
    fn all_ones_words_overflow_like_the_reference() {
        let data = vec![0xffu8; 1 << 16];
        let mut fast = Fletcher4::new();
        fast.update(&data);
        let mut slow = Fletcher4::new();
        slow.update_serial(&data);
        assert_eq!(fast, slow);
    }

    #[test]
    fn concatenation_is_one_pass() {
        let data = pseudo_random(10_000, 9);
        let mut whole = Fletcher4::new();
        whole.update(&data);
        let mut parts = Fletcher4::new();
        parts.update(&data[..312]);
        parts.update(&data[312..4000]);
        parts.update(&data[4000..]);
        assert_eq!(whole, parts);
    }

    #[test]
    fn known_small_value() {
        // words 1 and 2: a = 3, b = 1 + 3, c = 1 + 4, d = 1 + 6
        let mut f = Fletcher4::new();
        f.update(&[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(f.words, [3, 4, 5, 6]);
        assert_eq!(Fletcher4::from_bytes(&f.to_bytes()), f);
        assert_eq!(f.to_hex(), "3/4/5/6");
    }
}
