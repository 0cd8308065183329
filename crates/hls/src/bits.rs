//! A bounds-checked big-endian bit reader for the few header fields we read out of parameter
//! sets (H.264/HEVC SPS, AV1 sequence header, AAC AudioSpecificConfig). Every read returns
//! `Err(Truncated)` past the end instead of panicking, and Exp-Golomb codes are capped at 32
//! leading zeros so hostile input cannot make a read loop long or overflow.

/// The input ended before the field did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

pub(crate) type Bits<T> = Result<T, Truncated>;

/// Reads bits MSB first.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn bit(&mut self) -> Bits<bool> {
        let byte = self.data.get(self.pos / 8).ok_or(Truncated)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Bits<u32> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n.min(32) {
            v = (v << 1) | u64::from(self.bit()?);
        }
        u32::try_from(v).map_err(|_| Truncated)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Bits<()> {
        let end = self.pos.checked_add(n).ok_or(Truncated)?;
        if end > self.data.len().saturating_mul(8) {
            return Err(Truncated);
        }
        self.pos = end;
        Ok(())
    }

    /// Unsigned Exp-Golomb `ue(v)` (H.264 9.1).
    pub(crate) fn ue(&mut self) -> Bits<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Truncated);
            }
        }
        let rest = self.bits(zeros)?;
        // (1 << zeros) - 1 + rest, without overflow for zeros == 31.
        let base = (1u64 << zeros) - 1;
        u32::try_from(base + u64::from(rest)).map_err(|_| Truncated)
    }

    /// Signed Exp-Golomb `se(v)`.
    pub(crate) fn se(&mut self) -> Bits<i32> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| Truncated)
    }

    /// AV1 `uvlc()` (AV1 spec 4.10.3); values past 32 bits are refused.
    pub(crate) fn uvlc(&mut self) -> Bits<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                return Err(Truncated);
            }
        }
        let rest = self.bits(zeros)?;
        u32::try_from(((1u64 << zeros) - 1) + u64::from(rest)).map_err(|_| Truncated)
    }
}

/// A NAL unit's payload with emulation-prevention bytes (`00 00 03`) removed, as the bit
/// syntax is defined over the RBSP.
pub(crate) fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads a big-endian u16 at `at`.
pub(crate) fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        let got: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        let mut r = BitReader::new(&data);
        let got: Vec<i32> = (0..5).map(|_| r.se().unwrap()).collect();
        assert_eq!(got, [0, 1, -1, 2, -2]);
    }

    #[test]
    fn reads_past_the_end_are_errors() {
        let mut r = BitReader::new(&[0x00, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(r.ue(), Err(Truncated));
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.bits(8), Ok(0xff));
        assert_eq!(r.bit(), Err(Truncated));
        assert_eq!(r.skip(1), Err(Truncated));
        assert_eq!(BitReader::new(&[]).uvlc(), Err(Truncated));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(rbsp(&[0, 0, 3, 1, 0, 0, 3]), [0, 0, 1, 0, 0]);
        assert_eq!(rbsp(&[0, 3, 0]), [0, 3, 0]);
    }
}
