//! The one read buffer of the generator's thread, shared by every connection of every kind.
//!
//! The runtime is single-threaded and no read is held across an await, so ten thousand
//! connections cost their sockets and a few hundred bytes of state each, not ten thousand
//! read buffers; parsers scan what was read where it lies and keep no payload.

use std::cell::RefCell;

/// Size of the buffer: many segments per read at high fan-out.
const READ_BUF: usize = 256 * 1024;

thread_local! {
    static READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// Runs `f` on the thread's read buffer. Not reentrant: `f` must not call it again.
pub(crate) fn with<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_SCRATCH.with_borrow_mut(|buf| f(buf))
}
