//! A lean chunk-stream scanner for the receiving side of the load generator.
//!
//! `rtmp_proto::chunk::ChunkReader` reassembles every message into a `Bytes`, which is right
//! for a server but would make the load generator allocate and copy every media byte it
//! receives — for thousands of players it would then measure itself. This scanner walks chunk
//! headers in place and only counts media messages (type, timestamp, length); the bodies of the
//! rare control and command messages are collected so they can be parsed with `rtmp-proto`.
//!
//! Only the few header bytes that straddle two reads are carried over; payload bytes are
//! consumed wherever they lie in the caller's buffer.

/// Message types whose bodies are skipped, not collected.
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const AGGREGATE: u8 = 22;
/// Longest chunk header: 3-byte basic, 11-byte message header, 4-byte extended timestamp.
const MAX_HEADER: usize = 18;
/// Chunk stream ids beyond this are refused (servers use a handful of small ones).
const MAX_CSID: usize = 1024;
/// Largest non-media body collected (commands and control messages are small).
const MAX_COLLECTED: usize = 1 << 20;

/// Why the server's byte stream could not be followed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("chunk stream {0} continues a message it never started")]
    NoPreviousHeader(u32),
    #[error("chunk stream id {0} out of range")]
    CsidOutOfRange(u32),
    #[error("invalid chunk size {0}")]
    BadChunkSize(u32),
    #[error("control message of {0} bytes")]
    TooLarge(u32),
}

/// What the scanner reports, message by message.
pub(crate) trait Sink {
    /// A complete audio, video or aggregate message.
    fn media(&mut self, type_id: u8, timestamp: u32, len: u32);
    /// A complete message of any other type, with its body.
    fn other(&mut self, type_id: u8, stream_id: u32, body: &[u8]);
}

#[derive(Debug, Default, Clone)]
struct ChunkStream {
    started: bool,
    timestamp: u32,
    delta: u32,
    len: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// Bytes of the current message still to come (0: no message in progress).
    left: u32,
    body: Vec<u8>,
}

/// Incremental scanner state; feed it every byte the server sends after the handshake.
#[derive(Debug)]
pub(crate) struct Scanner {
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    carry: [u8; MAX_HEADER],
    carry_len: usize,
    /// The chunk whose payload is being consumed, and its bytes still to come.
    current: Option<(usize, u32)>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            chunk_size: 128,
            streams: vec![ChunkStream::default(); 16],
            carry: [0; MAX_HEADER],
            carry_len: 0,
            current: None,
        }
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

fn u32be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Scanner {
    /// Consumes `data` entirely, reporting each completed message to `sink`.
    pub(crate) fn feed(&mut self, mut data: &[u8], sink: &mut impl Sink) -> Result<(), WireError> {
        loop {
            if let Some((idx, chunk_left)) = self.current {
                let n = (chunk_left as usize).min(data.len());
                let st = &mut self.streams[idx];
                if !is_media(st.type_id) {
                    st.body.extend_from_slice(&data[..n]);
                }
                data = &data[n..];
                // n <= chunk_left <= st.left, both u32.
                let n = n as u32;
                st.left -= n;
                if n < chunk_left {
                    self.current = Some((idx, chunk_left - n));
                    return Ok(());
                }
                self.current = None;
                if st.left == 0 {
                    self.complete(idx, sink)?;
                }
                continue;
            }
            if data.is_empty() {
                return Ok(());
            }
            if self.carry_len > 0 {
                let had = self.carry_len;
                let take = (MAX_HEADER - had).min(data.len());
                let mut buf = self.carry;
                buf[had..had + take].copy_from_slice(&data[..take]);
                match self.header(&buf[..had + take])? {
                    Some(hlen) => {
                        self.carry_len = 0;
                        data = &data[hlen - had..];
                    }
                    None => {
                        self.carry = buf;
                        self.carry_len = had + take;
                        return Ok(());
                    }
                }
            } else {
                match self.header(data)? {
                    Some(hlen) => data = &data[hlen..],
                    None => {
                        self.carry[..data.len()].copy_from_slice(data);
                        self.carry_len = data.len();
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Parses one chunk header at the front of `buf` and makes its payload current; `None`
    /// when the header is not all there yet.
    fn header(&mut self, buf: &[u8]) -> Result<Option<usize>, WireError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match buf.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(b) => (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3),
                None => return Ok(None),
            },
            low => (u32::from(low), 1),
        };
        let idx = csid as usize;
        if idx >= MAX_CSID {
            return Err(WireError::CsidOutOfRange(csid));
        }
        if idx >= self.streams.len() {
            self.streams.resize(idx + 1, ChunkStream::default());
        }
        let st = &self.streams[idx];
        if fmt != 0 && !st.started {
            return Err(WireError::NoPreviousHeader(csid));
        }
        let mlen = [11, 7, 3, 0][usize::from(fmt)];
        let Some(m) = buf.get(pos..pos + mlen) else {
            return Ok(None);
        };
        pos += mlen;
        let ts_field = if fmt < 3 { u24(m) } else { 0 };
        let extended = if fmt < 3 {
            ts_field == 0x00FF_FFFF
        } else {
            st.extended
        };
        let ext = if extended {
            let Some(e) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some(u32be(e))
        } else {
            None
        };
        let st = &mut self.streams[idx];
        let starts = fmt < 3 || st.left == 0;
        if starts {
            match fmt {
                0 => {
                    st.timestamp = ext.unwrap_or(ts_field);
                    st.delta = st.timestamp;
                    st.len = u24(&m[3..]);
                    st.type_id = m[6];
                    st.stream_id = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
                }
                1 | 2 => {
                    st.delta = ext.unwrap_or(ts_field);
                    st.timestamp = st.timestamp.wrapping_add(st.delta);
                    if fmt == 1 {
                        st.len = u24(&m[3..]);
                        st.type_id = m[6];
                    }
                }
                _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
            st.started = true;
            st.extended = extended;
            st.left = st.len;
            st.body.clear();
            if !is_media(st.type_id) && st.len as usize > MAX_COLLECTED {
                return Err(WireError::TooLarge(st.len));
            }
        }
        let chunk = st.left.min(self.chunk_size);
        self.current = Some((idx, chunk));
        if chunk == 0 {
            // A zero-length message: complete at once (the payload loop sees 0 bytes left).
            self.current = Some((idx, 0));
        }
        Ok(Some(pos))
    }

    fn complete(&mut self, idx: usize, sink: &mut impl Sink) -> Result<(), WireError> {
        let st = &self.streams[idx];
        if is_media(st.type_id) {
            sink.media(st.type_id, st.timestamp, st.len);
            return Ok(());
        }
        if st.type_id == 1 && st.body.len() >= 4 {
            let size = u32be(&st.body) & 0x7FFF_FFFF;
            if size == 0 {
                return Err(WireError::BadChunkSize(size));
            }
            self.chunk_size = size;
        }
        sink.other(st.type_id, st.stream_id, &st.body);
        Ok(())
    }
}

fn is_media(type_id: u8) -> bool {
    matches!(type_id, AUDIO | VIDEO | AGGREGATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rtmp_proto::chunk::{ChunkWriter, MessageHeader};

    #[derive(Default)]
    struct Log(Vec<(u8, u32, u32)>);

    impl Sink for Log {
        fn media(&mut self, type_id: u8, timestamp: u32, len: u32) {
            self.0.push((type_id, timestamp, len));
        }
        fn other(&mut self, type_id: u8, _: u32, body: &[u8]) {
            self.0.push((type_id, 0, body.len() as u32));
        }
    }

    #[test]
    fn follows_chunk_size_changes_at_any_split() {
        let mut w = ChunkWriter::default();
        let mut bytes = BytesMut::new();
        let h = |type_id, timestamp, csid| MessageHeader {
            csid,
            timestamp,
            type_id,
            stream_id: 1,
        };
        w.write(&h(9, 0, 6), &[0x17; 300], &mut bytes);
        w.write(&h(1, 0, 2), &4096u32.to_be_bytes(), &mut bytes);
        w.set_chunk_size(4096);
        w.write(&h(8, 23, 4), &[0xaf; 5000], &mut bytes);
        w.write(&h(9, 0x0100_0000, 70), &[0x27; 9000], &mut bytes);
        w.write(&h(20, 0, 3), &[5; 10], &mut bytes);
        let want = vec![
            (9, 0, 300),
            (1, 0, 4),
            (8, 23, 5000),
            (9, 0x0100_0000, 9000),
            (20, 0, 10),
        ];
        for split in [1, 2, 7, 17, 18, 19, 1000, bytes.len()] {
            let mut s = Scanner::default();
            let mut log = Log::default();
            for piece in bytes.chunks(split) {
                s.feed(piece, &mut log).unwrap_or_else(|e| panic!("{e}"));
            }
            assert_eq!(log.0, want, "split {split}");
        }
    }

    #[test]
    fn compressed_headers_add_deltas() {
        // fmt 0 at ts 100, then fmt 2 (delta 40), then fmt 3 starting a new message (delta again).
        let mut b = vec![0x06, 0, 0, 100, 0, 0, 2, 9, 1, 0, 0, 0, 0xaa, 0xbb];
        b.extend_from_slice(&[0x86, 0, 0, 40, 0xcc, 0xdd]);
        b.extend_from_slice(&[0xc6, 0xee, 0xff]);
        let mut s = Scanner::default();
        let mut log = Log::default();
        s.feed(&b, &mut log).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.0, vec![(9, 100, 2), (9, 140, 2), (9, 180, 2)]);
    }
}
