//! Fan-out to viewers: what every kind of viewer shares, whatever its wire format.
//!
//! A stream's messages arrive on its bounded broadcast ring as [`Frame`]s already encoded for
//! every wire format they are sent in; a [`Viewer`] takes them off the ring in merge windows,
//! skips to the next keyframe when it fell a ring behind, and hands each frame to its [`Sink`],
//! which queues the shared bytes of its format on the connection's [`OutQueue`]. A new kind of
//! viewer adds a sink, not a copy of this loop.
//!
//! [`Frame`]: crate::stream::Frame

mod outq;
mod viewer;

pub(crate) use outq::OutQueue;
pub(crate) use viewer::{Pacing, Sink, Viewer};

/// A viewer takes no more fan-out messages while this much output is queued: the bounded
/// fan-out ring, not this queue, absorbs a slow reader.
pub(crate) const OUT_HIGH_WATER: usize = 512 * 1024;
