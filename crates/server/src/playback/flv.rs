//! HTTP-FLV's wire format for fan-out: each message as the FLV tag its `Frame` builds once
//! for every HTTP-FLV viewer, after the HTTP response head and the FLV file header.

use super::conn::{HttpConn, Phase};
use super::request::{Request, StreamPath};
use super::response::{self, Body};
use crate::control::Protocol;
use crate::evidence::PEER_CHECK_EVERY;
use crate::fanout::{OutQueue, Pacing, Sink, Viewer};
use crate::stream::{Frame, StreamEvent};
use crate::timers::ConnTimer;
use bytes::Bytes;
use rtmp_proto::session::CloseReason;
use std::time::Instant;
use tokio::sync::broadcast::error::RecvError;

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

/// A live body and the viewer feeding it.
#[derive(Debug)]
pub(crate) struct Live {
    pub(super) viewer: Viewer,
    pub(super) sink: FlvSink,
    pub(super) stream: StreamPath,
}

impl HttpConn {
    /// Attaches an HTTP-FLV viewer; its body starts once a publisher is live (at once if one
    /// is), or the request is answered 404 after `[playback] wait_for_publisher`.
    pub(super) fn play(&mut self, req: Request, stream: StreamPath, now: Instant) {
        self.control.set_protocol(Protocol::HttpFlv);
        if req.head_only {
            return self.answer_head_only("video/x-flv", req.keep_alive, now);
        }
        let (guard, sub) = match self.shared.registry.try_play(&stream.app, &stream.name) {
            Ok(attached) => attached,
            Err(limit) => {
                tracing::info!(conn = self.control.id, peer = %self.control.peer, "play refused: {limit}");
                return self.answer_error(503, &limit.to_string(), false, now);
            }
        };
        let live = sub.live;
        let config = &self.shared.config;
        let head = response::head(
            200,
            "video/x-flv",
            Body::Chunked,
            false,
            &config.playback.allow_origin,
            &[],
        );
        let mut sink = FlvSink::new(head);
        if live {
            sink.start(&mut self.out);
        }
        let pacing = Pacing {
            merge_window: config.play.own_window(),
            max_lag_drops: config.play.max_lag_drops,
        };
        let viewer = Viewer::attach(guard, sub, pacing, &mut sink, &mut self.out);
        tracing::info!(conn = self.control.id, peer = %self.control.peer, %stream, live, protocol = "http-flv", "play");
        if !live {
            self.timers.set(
                ConnTimer::WaitPublisher,
                now + config.playback.wait_for_publisher,
            );
        }
        self.timers.put(
            ConnTimer::PeerCheck,
            config
                .liveness
                .user_timeout()
                .map(|u| now + u.min(PEER_CHECK_EVERY)),
        );
        self.played = Some((stream.clone(), now));
        self.phase = Phase::Live(Live {
            viewer,
            sink,
            stream,
        });
    }

    /// Whether the driver should await the fan-out ring now.
    pub(crate) fn can_take(&self) -> bool {
        self.closing.is_none()
            && matches!(self.phase, Phase::Live(_))
            && Viewer::can_take(&self.out, &self.timers)
    }

    /// A fan-out message (or a lag) the driver received.
    pub(crate) fn on_stream_event(
        &mut self,
        now: Instant,
        ev: Result<StreamEvent, RecvError>,
    ) -> Result<(), CloseReason> {
        let result = self.take_fanout(now, Some(ev));
        self.settle(now);
        result
    }

    pub(super) fn take_fanout(
        &mut self,
        now: Instant,
        first: Option<Result<StreamEvent, RecvError>>,
    ) -> Result<(), CloseReason> {
        let Phase::Live(live) = &mut self.phase else {
            return Ok(());
        };
        live.viewer.take(
            first,
            &mut live.sink,
            &mut self.out,
            &mut self.timers,
            now,
            &self.shared.metrics,
        )
    }
}
