//! ISO BMFF (ISO/IEC 14496-12) box writing for CMAF: the init segment and `moof`+`mdat`
//! fragments. Written by hand: we emit about twenty fixed-layout boxes, and the box crates
//! (`mp4-atom`, `mp4`) are read/write models of the whole format with their own dependency
//! trees, more than this needs.

mod fragment;
mod init;

pub(crate) use fragment::{FragmentSample, TrackRun, fragment};
pub(crate) use init::{AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID, init_segment};

use bytes::{BufMut, BytesMut};

/// Appends boxes to a buffer, patching each box's size when it is closed.
#[derive(Debug, Default)]
pub(crate) struct BoxWriter {
    pub(crate) buf: BytesMut,
}

/// Where an open box starts, returned by [`BoxWriter::open`].
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(crate) struct Open(usize);

impl BoxWriter {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(n),
        }
    }

    /// Starts a box; its size is written by [`close`](Self::close).
    pub(crate) fn open(&mut self, kind: &[u8; 4]) -> Open {
        let at = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(kind);
        Open(at)
    }

    /// Starts a full box (version and 24-bit flags after the type).
    pub(crate) fn open_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> Open {
        let at = self.open(kind);
        self.buf
            .put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        at
    }

    pub(crate) fn close(&mut self, open: Open) {
        let size = self.buf.len() - open.0;
        // Our boxes are bounded by the segmenter's byte limits, far below 4 GiB.
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        self.patch_u32(open.0, size);
    }

    /// Overwrites four bytes written earlier.
    pub(crate) fn patch_u32(&mut self, at: usize, value: u32) {
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.put_bytes(0, n);
    }
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// A box whose body is exactly `body`.
    pub(crate) fn leaf(&mut self, kind: &[u8; 4], body: &[u8]) {
        let b = self.open(kind);
        self.bytes(body);
        self.close(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_their_sizes() {
        let mut w = BoxWriter::default();
        let outer = w.open(b"moov");
        let inner = w.open_full(b"mvhd", 1, 0x000102);
        w.u8(0xaa);
        w.close(inner);
        w.leaf(b"free", &[]);
        w.close(outer);
        assert_eq!(
            &w.buf[..],
            b"\0\0\0\x1dmoov\0\0\0\x0dmvhd\x01\0\x01\x02\xaa\0\0\0\x08free"
        );
    }
}
