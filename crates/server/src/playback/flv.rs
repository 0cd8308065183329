//! HTTP-FLV's wire format for fan-out: each message as the FLV tag its `Frame` builds once
//! for every HTTP-FLV viewer, after the HTTP response head and the FLV file header.

use crate::fanout::{OutQueue, Sink};
use crate::stream::Frame;
use bytes::Bytes;

/// FLV file header (audio and video flags set: the publisher may send either) and the first
/// PreviousTagSize, which is 0.
const FLV_HEADER: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

/// Queues FLV tags; the response head goes out with the first of them, so a viewer waiting
/// for a publisher can still be answered 404 instead.
#[derive(Debug)]
pub(crate) struct FlvSink {
    /// The HTTP response head, until the body starts.
    pending_head: Option<Bytes>,
}

impl FlvSink {
    /// A sink whose body starts with `head`.
    pub(crate) fn new(head: Bytes) -> Self {
        Self {
            pending_head: Some(head),
        }
    }

    /// Whether the response (head and FLV header) has been queued.
    pub(crate) fn started(&self) -> bool {
        self.pending_head.is_none()
    }

    /// Queues the response head (outside the chunked body) and the FLV header (its start).
    pub(crate) fn start(&mut self, out: &mut OutQueue) {
        if let Some(head) = self.pending_head.take() {
            out.push(head);
            out.seal_raw();
            out.push(Bytes::from_static(FLV_HEADER));
        }
    }
}

impl Sink for FlvSink {
    fn frame(&mut self, frame: &Frame, out: &mut OutQueue) {
        self.start(out);
        out.push(frame.flv_tag().clone());
    }

    /// A new publisher's sequence headers and rebased timestamps arrive as frames; a viewer
    /// waiting for the first publisher starts its response now.
    fn publisher_changed(&mut self, live: bool, out: &mut OutQueue) -> bool {
        if live && !self.started() {
            self.start(out);
            return true;
        }
        false
    }
}
