//! Fan-out to viewers: what every kind of viewer shares, whatever its wire format.
//!
//! A stream's messages arrive on its bounded broadcast ring as [`Frame`]s already encoded for
//! every wire format they are sent in; a [`Viewer`] takes them off the ring in merge windows,
//! skips to the next keyframe when it fell a ring behind, and hands each frame to its [`Sink`],
//! which queues the shared bytes of its format on the connection's [`OutQueue`]. A new kind of
//! viewer adds a sink, not a copy of this loop.
//!
//! A connection whose socket the driver can share hands its viewer to a fan-out writer
//! ([`Shards::seat`]): one task per core that takes each stream's events off the ring once for
//! all of its viewers and writes each of them straight from the shared buffers, merging writes
//! as long as the latency budget ([`budget`]) says the load requires. The connection keeps its
//! reads and deadlines and talks to the writer through a [`Seated`] link.
//!
//! [`Frame`]: crate::stream::Frame

mod budget;
mod link;
mod outq;
mod shards;
#[cfg(test)]
mod tests;
mod viewer;
mod writer;

pub(crate) use link::{LinkEnd, Seated};
pub(crate) use outq::OutQueue;
pub(crate) use shards::Shards;
pub(crate) use viewer::{Pacing, Sink, Viewer};
pub(crate) use writer::{Target, WriterConfig};

use crate::stream::Frame;
use rtmp_proto::session::MediaKind;

/// Whether a viewer skipping to a keyframe (it fell a whole ring behind) resumes at `frame`:
/// a video keyframe, or any audio frame of a stream that has shown no video.
pub(crate) fn resumes_at(frame: &Frame, seen_video: bool) -> bool {
    (frame.kind == MediaKind::Video && frame.keyframe)
        || (frame.kind == MediaKind::Audio && !seen_video && !frame.sequence_header)
}

/// A viewer takes no more fan-out messages while this much output is queued: the bounded
/// fan-out ring, not this queue, absorbs a slow reader.
pub(crate) const OUT_HIGH_WATER: usize = 512 * 1024;
