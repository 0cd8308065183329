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
}

impl OutQueue {
    pub(crate) fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.bufs.push_back(b);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
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
}
