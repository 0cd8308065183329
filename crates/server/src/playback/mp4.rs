//! A live fragmented-MP4 body (`/{app}/{name}.mp4`): the stream's init segment, then every
//! part the segmenter makes, in order, as chunks — what Media Source Extensions take as is,
//! so the dashboard's watch view needs no player library. A viewer that falls behind the
//! kept parts rejoins at the newest keyframe; a new publisher's init is sent before its
//! first part.

use super::conn::{HttpConn, Phase};
use super::request::StreamPath;
use super::response::{self, Body};
use crate::control::Protocol;
use crate::evidence::PEER_CHECK_EVERY;
use crate::fanout::OUT_HIGH_WATER;
use crate::registry::PlayerGuard;
use crate::stream::HlsUse;
use crate::timers::ConnTimer;
use lifeline_hls::{Lookup, NextPart, Status};
use std::time::Instant;
use tokio::sync::watch;

/// A live MP4 body.
#[derive(Debug)]
pub(super) struct Mp4Live {
    pub(super) stream: StreamPath,
    pub(super) hls: HlsUse,
    pub(super) updates: watch::Receiver<u64>,
    /// The last part queued.
    next_after: Option<(u64, u32)>,
    /// The init segment the queued parts need.
    init: Option<u64>,
    /// The response head went out.
    started: bool,
    _player: PlayerGuard,
}

impl Mp4Live {
    /// Whether the response head went out.
    pub(super) fn started(&self) -> bool {
        self.started
    }
}

/// What pumping found.
enum Pumped {
    Fine,
    Unsupported(String),
}

impl HttpConn {
    /// `/{app}/{name}.mp4`, authorised.
    pub(super) fn play_mp4(&mut self, stream: StreamPath, now: Instant) {
        self.control.set_protocol(Protocol::HttpMp4);
        let player = match self.shared.registry.try_watch(&stream.app, &stream.name) {
            Ok(p) => p,
            Err(limit) => return self.answer_error(503, &limit.to_string(), false, now),
        };
        let hls = player.stream().use_hls();
        let updates = hls.hls().subscribe();
        tracing::info!(conn = self.control.id, peer = %self.control.peer, %stream, protocol = "http-mp4", "play");
        let config = &self.shared.config;
        self.timers.set(
            ConnTimer::WaitPublisher,
            now + config.playback.wait_for_publisher,
        );
        self.timers.put(
            ConnTimer::PeerCheck,
            config
                .liveness
                .user_timeout()
                .map(|u| now + u.min(PEER_CHECK_EVERY)),
        );
        self.played = Some((stream.clone(), now));
        self.phase = Phase::Mp4(Mp4Live {
            stream,
            hls,
            updates,
            next_after: None,
            init: None,
            started: false,
            _player: player,
        });
        self.pump_mp4(now);
    }

    /// Queues every part made since the last one, while there is room.
    pub(super) fn pump_mp4(&mut self, now: Instant) {
        let Phase::Mp4(live) = &mut self.phase else {
            return;
        };
        live.updates.mark_unchanged();
        let hls = live.hls.hls().clone();
        let pumped = hls.with(|seg| {
            if let Status::Unsupported(why) = seg.status() {
                return Pumped::Unsupported(why.to_string());
            }
            while self.out.len() < OUT_HIGH_WATER {
                let NextPart::Ready {
                    msn,
                    index,
                    init,
                    bytes,
                } = seg.part_after(live.next_after)
                else {
                    break;
                };
                if !live.started {
                    live.started = true;
                    // The codecs in the type, so a page can create its SourceBuffer from it.
                    let content_type = seg.codecs().map_or_else(
                        || "video/mp4".to_owned(),
                        |c| format!("video/mp4; codecs=\"{c}\""),
                    );
                    self.out.push(response::head(
                        200,
                        &content_type,
                        Body::Chunked,
                        false,
                        &self.shared.config.playback.allow_origin,
                        &[],
                    ));
                    self.out.seal_raw();
                }
                if live.init != Some(init)
                    && let Lookup::Ready(init_bytes) = seg.lookup(&format!("init-{init}.mp4"))
                {
                    self.out.push(init_bytes);
                    live.init = Some(init);
                }
                self.out.push(bytes);
                live.next_after = Some((msn, index));
            }
            Pumped::Fine
        });
        if live.started {
            self.timers.stop(ConnTimer::WaitPublisher);
        }
        match pumped {
            Pumped::Unsupported(why) if !live.started => {
                self.release();
                self.answer_error(415, &why, false, now);
            }
            Pumped::Unsupported(_) | Pumped::Fine => self.out.seal_chunk(),
        }
    }
}
