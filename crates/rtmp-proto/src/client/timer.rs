//! The client session's deadlines, in the shared [`DeadlineTable`].

use crate::timer::{DeadlineTable, TimerKind};
use std::time::Instant;

/// The deadlines an outgoing connection can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTimer {
    /// Handshake, `connect`, and then any `createStream` / `publish` / `play` asked for must be
    /// answered before this.
    Setup,
    /// A player must receive media before this.
    MediaIdle,
    /// Queued output has not moved for this long.
    WriteStall,
}

impl TimerKind for ClientTimer {
    type Slots = [Option<Instant>; 3];
    const ALL: &'static [Self] = &[Self::Setup, Self::MediaIdle, Self::WriteStall];

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`ClientTimer`].
pub type ClientTimerTable = DeadlineTable<ClientTimer>;
