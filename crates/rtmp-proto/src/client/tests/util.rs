//! A [`ClientSession`] wired to a [`ServerSession`] in memory: bytes from one are fed to the
//! other, `step` bytes per read, on a clock the test moves by hand. The server answers publish
//! and play requests by a policy, and a tap decodes everything the client sends.

use super::super::{ClientConfig, ClientEvent, ClientSession};
use crate::chunk::{ChunkReader, ChunkWriter, MessageHeader, ReaderLimits};
use crate::handshake::{HANDSHAKE_SIZE, HandshakeRng};
use crate::message::Message;
use crate::session::{Event, Media, MediaKind, ServerSession, SessionConfig};
use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::{Duration, Instant};

/// How the test's server answers a publish or play request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Accept,
    Reject(&'static str),
    /// Say nothing (a server that hangs).
    Hold,
}

pub(super) struct Pair {
    pub(super) t0: Instant,
    pub(super) now: Instant,
    pub(super) client: ClientSession,
    pub(super) server: ServerSession,
    /// Bytes per read, both ways.
    pub(super) step: usize,
    pub(super) publish: Answer,
    pub(super) play: Answer,
    /// Whether the name played is live (`accept_play`'s `live`).
    pub(super) live: bool,
    pub(super) client_events: Vec<ClientEvent>,
    pub(super) server_events: Vec<Event>,
    /// Everything the client sent after C2, decoded.
    pub(super) sent: Vec<(MessageHeader, Message)>,
    /// Every byte the server side delivered to the client, for corpus files.
    pub(super) from_server: Vec<u8>,
    tap: ChunkReader,
    tap_skip: usize,
    tap_buf: bytes::BytesMut,
}

pub(super) fn rng(seed: u64) -> HandshakeRng {
    HandshakeRng::from_rng(StdRng::seed_from_u64(seed))
}

pub(super) fn config() -> ClientConfig {
    ClientConfig::new("live", "rtmp://127.0.0.1:1935/live")
}

pub(super) fn media(len: usize, fill: u8) -> Bytes {
    Bytes::from(vec![fill; len])
}

impl Pair {
    pub(super) fn new(config: ClientConfig) -> Self {
        Self::with_server(config, SessionConfig::default())
    }

    pub(super) fn with_server(config: ClientConfig, server: SessionConfig) -> Self {
        let t0 = Instant::now();
        Self {
            t0,
            now: t0,
            client: ClientSession::with_rng(config, t0, rng(1)),
            server: ServerSession::with_rng(server, t0, rng(2)),
            step: usize::MAX,
            publish: Answer::Accept,
            play: Answer::Accept,
            live: true,
            client_events: Vec::new(),
            server_events: Vec::new(),
            sent: Vec::new(),
            from_server: Vec::new(),
            tap: ChunkReader::new(ReaderLimits::default()),
            tap_skip: 1 + 2 * HANDSHAKE_SIZE,
            tap_buf: bytes::BytesMut::new(),
        }
    }

    pub(super) fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    pub(super) fn advance(&mut self, secs: f64) {
        self.now += Duration::from_secs_f64(secs);
    }

    /// Moves bytes both ways until neither side has anything to say.
    pub(super) fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            if let Some(out) = self.client.take_output() {
                moved = true;
                self.tap(&out);
                for piece in out.chunks(self.step.max(1)) {
                    self.server
                        .feed(self.now, piece)
                        .expect("server accepts the client");
                    self.answer();
                }
            }
            if let Some(out) = self.server.take_output() {
                moved = true;
                self.deliver(&out);
            }
            if !moved {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// Feeds server-side bytes to the client, `step` at a time, collecting its events.
    pub(super) fn deliver(&mut self, bytes: &[u8]) {
        self.from_server.extend_from_slice(bytes);
        for piece in bytes.chunks(self.step.max(1)) {
            self.client
                .feed(self.now, piece)
                .expect("client accepts the server");
            self.client_events
                .extend(std::iter::from_fn(|| self.client.poll_event()));
        }
    }

    fn answer(&mut self) {
        while let Some(event) = self.server.poll_event() {
            match &event {
                Event::PublishRequested { .. } => match self.publish {
                    Answer::Accept => self.server.accept_publish(self.now),
                    Answer::Reject(why) => self.server.reject_publish(why),
                    Answer::Hold => {}
                },
                Event::PlayRequested { name, .. } => match self.play {
                    Answer::Accept => self.server.accept_play(&name.clone(), self.live),
                    Answer::Reject(why) => self.server.reject_play(why),
                    Answer::Hold => {}
                },
                _ => {}
            }
            self.server_events.push(event);
        }
    }

    fn tap(&mut self, out: &[u8]) {
        let skip = self.tap_skip.min(out.len());
        self.tap_skip -= skip;
        self.tap_buf.extend_from_slice(&out[skip..]);
        while let Some(raw) = self
            .tap
            .read(&mut self.tap_buf)
            .expect("client chunks are valid")
        {
            let msg = Message::parse(&raw).expect("client messages parse");
            if let Message::SetChunkSize(size) = msg {
                // A client may announce what a server must refuse; the tap follows what it can.
                let _ = self.tap.set_chunk_size(size);
            }
            self.sent.push((raw.header, msg));
        }
    }

    /// Client events since the last call.
    pub(super) fn events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    /// Server events since the last call.
    pub(super) fn server_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.server_events)
    }

    /// Messages the client sent since the last call.
    pub(super) fn sent(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.sent)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    /// Names of the commands the client sent since the last call.
    pub(super) fn commands_sent(&mut self) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter_map(|m| match m {
                Message::Command(c) => Some(c.name),
                _ => None,
            })
            .collect()
    }

    /// Media from the server's side, encoded the way the server crate fans it out (its chunk
    /// size, the kind's chunk stream, the player's message stream), delivered to the client.
    pub(super) fn server_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) {
        let mut writer = ChunkWriter::default();
        writer.set_chunk_size(self.server.out_chunk_size());
        let header = MessageHeader {
            csid: kind.csid(),
            timestamp,
            type_id: kind.type_id(),
            stream_id: self.client.stream_id().unwrap_or(1),
        };
        let bytes = writer.encode(&header, payload);
        self.deliver(&bytes);
    }

    /// Media events the server reported since the last call.
    pub(super) fn server_media_events(&mut self) -> Vec<Media> {
        self.server_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Media(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Handshake, connect and an accepted publish of `cam`.
    pub(super) fn publishing(config: ClientConfig) -> Self {
        let mut p = Self::new(config);
        p.client.publish(p.now, "cam").unwrap();
        p.pump();
        assert!(p.events().contains(&ClientEvent::Publishing));
        p.server_events();
        p.sent();
        p
    }

    /// Handshake, connect and an accepted play of `cam` (live).
    pub(super) fn playing(config: ClientConfig) -> Self {
        let mut p = Self::new(config);
        p.client.play(p.now, "cam").unwrap();
        p.pump();
        assert!(p.events().contains(&ClientEvent::Playing));
        p.server_events();
        p.sent();
        p
    }
}
