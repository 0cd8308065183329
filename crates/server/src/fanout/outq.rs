//! A connection's output queue: whole encoded messages waiting for the socket, written with
//! as few vectored writes as possible.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Most buffers handed to one `writev` (Linux allows 1024; 64 already amortises the syscall).
const MAX_IOV: usize = 64;

/// Queued output, in order.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    bufs: VecDeque<Bytes>,
    len: usize,
    /// Bytes at the tail pushed since the last [`Self::seal_chunk`] (HTTP chunked bodies).
    open: usize,
    /// Buffers those bytes are in.
    open_bufs: usize,
}

impl OutQueue {
    pub(crate) fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.open += b.len();
            self.open_bufs += 1;
            self.bufs.push_back(b);
        }
    }

    /// Frames what was pushed since the last call as one HTTP/1.1 chunk (`size CRLF data
    /// CRLF`), without copying it: a viewer's whole merge window becomes one chunk.
    pub(crate) fn seal_chunk(&mut self) {
        if self.open == 0 {
            return;
        }
        let head = Bytes::from(format!("{:X}\r\n", self.open));
        let at = self.bufs.len() - self.open_bufs;
        self.len += head.len() + 2;
        self.bufs.insert(at, head);
        self.bufs.push_back(Bytes::from_static(b"\r\n"));
        self.open = 0;
        self.open_bufs = 0;
    }

    /// Forgets the open tail's framing state (what is queued is sent as it is).
    pub(crate) fn seal_raw(&mut self) {
        self.open = 0;
        self.open_bufs = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frees the queue's allocation when nothing is queued (a connection that is quiet for a
    /// while holds no capacity it is not using).
    pub(crate) fn release(&mut self) {
        if self.bufs.is_empty() && self.bufs.capacity() > 0 {
            self.bufs = VecDeque::new();
        }
    }

    /// Takes the front buffer out whole.
    pub(crate) fn pop_front(&mut self) -> Option<Bytes> {
        let b = self.bufs.pop_front()?;
        self.len -= b.len();
        self.open_bufs = self.open_bufs.min(self.bufs.len());
        self.open = self.open.min(self.len);
        Some(b)
    }

    /// Puts the front buffers into `iov` (as many as fit); returns how many.
    pub(crate) fn fill<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, b) in iov.iter_mut().zip(&self.bufs) {
            *slot = IoSlice::new(b);
            n += 1;
        }
        n
    }

    /// The front buffers as I/O slices for one vectored write.
    pub(crate) fn slices(&self) -> Vec<IoSlice<'_>> {
        self.bufs
            .iter()
            .take(MAX_IOV)
            .map(|b| IoSlice::new(b))
            .collect()
    }

    /// Drops `n` written bytes from the front.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.bufs.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.bufs.pop_front();
            // Written bytes were sealed before any write (see `seal_chunk`'s callers); keep
            // the open tail's bookkeeping consistent if they were not.
            if self.bufs.len() < self.open_bufs {
                self.open_bufs = self.bufs.len();
                self.open = self.len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_across_buffers() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"defg"));
        assert_eq!(q.len(), 7);
        q.advance(4);
        assert_eq!(q.len(), 3);
        assert_eq!(&*q.slices()[0], b"efg");
        q.advance(3);
        assert!(q.is_empty());
        assert!(q.slices().is_empty());
    }

    #[test]
    fn chunked_framing_wraps_the_open_tail_without_copying() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
        q.seal_raw();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b"0123456789abcdef"));
        q.seal_chunk();
        q.seal_chunk();
        let all: Vec<u8> = q.slices().iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(
            all,
            b"HTTP/1.1 200 OK\r\n\r\n13\r\nabc0123456789abcdef\r\n".to_vec()
        );
        assert_eq!(q.len(), all.len());
    }
}
