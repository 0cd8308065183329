//! An FLV stream scanned by its tag headers only: type, body size and timestamp of each tag
//! are reported, and the bodies are skipped where they lie. The only state kept between reads
//! is an 11-byte header in progress and a count of bytes to skip.

/// FLV file header size up to its DataOffset field (signature, version, flags, offset).
const FILE_HEADER: usize = 9;
/// FLV tag header size.
const TAG_HEADER: usize = 11;
/// The PreviousTagSize field after the file header and after every tag.
const PREV_SIZE: u64 = 4;
/// A DataOffset beyond this is not a file header we know.
const MAX_DATA_OFFSET: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the file header into `hdr`.
    FileHeader,
    /// Collecting a tag header into `hdr`.
    TagHeader,
    /// Skipping a body (and its PreviousTagSize) or the rest of the file header.
    Skip(u64),
}

/// One FLV body being scanned.
#[derive(Debug)]
pub(crate) struct FlvScan {
    state: State,
    hdr: [u8; TAG_HEADER],
    have: usize,
}

impl Default for FlvScan {
    fn default() -> Self {
        Self {
            state: State::FileHeader,
            hdr: [0; TAG_HEADER],
            have: 0,
        }
    }
}

impl FlvScan {
    /// Scans `data`, calling `on_tag(type, body size, timestamp in ms)` for each tag header.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        mut on_tag: impl FnMut(u8, u32, u32),
    ) -> Result<(), &'static str> {
        while !data.is_empty() {
            match self.state {
                State::Skip(left) => {
                    let take = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                    data = &data[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::TagHeader
                    } else {
                        State::Skip(left)
                    };
                }
                State::FileHeader | State::TagHeader => {
                    let need = if self.state == State::FileHeader {
                        FILE_HEADER
                    } else {
                        TAG_HEADER
                    };
                    let take = (need - self.have).min(data.len());
                    self.hdr[self.have..self.have + take].copy_from_slice(&data[..take]);
                    self.have += take;
                    data = &data[take..];
                    if self.have < need {
                        return Ok(());
                    }
                    self.have = 0;
                    let h = &self.hdr;
                    if self.state == State::FileHeader {
                        if &h[..3] != b"FLV" {
                            return Err("no FLV signature");
                        }
                        let offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                        if !(FILE_HEADER as u32..=MAX_DATA_OFFSET).contains(&offset) {
                            return Err("FLV DataOffset out of range");
                        }
                        self.state =
                            State::Skip(u64::from(offset) - FILE_HEADER as u64 + PREV_SIZE);
                    } else {
                        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]);
                        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                        on_tag(h[0] & 0x1f, size, ts);
                        self.state = State::Skip(u64::from(size) + PREV_SIZE);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(out: &mut Vec<u8>, type_id: u8, timestamp: u32, body: &[u8]) {
        out.push(type_id);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
        out.push((timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
        out.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }

    #[test]
    fn tags_in_any_split() {
        let mut file = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        tag(&mut file, 18, 0, b"meta");
        tag(&mut file, 9, 0x0100_0021, &[7; 300]);
        tag(&mut file, 8, 40, b"");
        tag(&mut file, 8, 63, b"au");
        for step in 1..=file.len() {
            let mut scan = FlvScan::default();
            let mut got = Vec::new();
            for piece in file.chunks(step) {
                assert_eq!(scan.feed(piece, |t, s, ts| got.push((t, s, ts))), Ok(()));
            }
            assert_eq!(
                got,
                [(18, 4, 0), (9, 300, 0x0100_0021), (8, 0, 40), (8, 2, 63)],
                "step {step}"
            );
        }
    }

    #[test]
    fn not_flv() {
        let mut scan = FlvScan::default();
        assert!(scan.feed(b"HTTP/1.1 200", |_, _, _| {}).is_err());
        let mut scan = FlvScan::default();
        assert!(
            scan.feed(b"FLV\x01\x05\xff\x00\x00\x09", |_, _, _| {})
                .is_err()
        );
    }
}
