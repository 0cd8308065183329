//! A test peer speaking RTMP to a connection core in memory: bytes it sends go straight into
//! the core's receive buffer, and what the core wants written is "written" to it at once.

use super::super::core::RtmpConn;
use crate::evidence::ScriptedKernel;
use bytes::BytesMut;
use rtmp_proto::amf0::Value;
use rtmp_proto::chunk::{ChunkReader, ChunkWriter, MessageHeader, ReaderLimits};
use rtmp_proto::handshake::{ClientHandshake, HandshakeProgress};
use rtmp_proto::message::{Command, Message, UserControl};
use std::time::Instant;

pub(super) struct Peer {
    writer: ChunkWriter,
    reader: ChunkReader,
    inbuf: BytesMut,
    statuses: Vec<String>,
    video: Vec<u32>,
    pings: Vec<u32>,
    next_tid: f64,
}

impl Peer {
    /// Handshake and `connect` to app `live`.
    pub(super) fn connect(core: &mut RtmpConn, now: Instant, kernel: &ScriptedKernel) -> Self {
        let mut peer = Self {
            writer: ChunkWriter::default(),
            reader: ChunkReader::new(ReaderLimits::default()),
            inbuf: BytesMut::new(),
            statuses: Vec::new(),
            video: Vec::new(),
            pings: Vec::new(),
            next_tid: 1.0,
        };
        let mut hs = ClientHandshake::default();
        let mut out = BytesMut::new();
        hs.start(&mut out);
        loop {
            feed(core, &out, now, kernel);
            out.clear();
            peer.inbuf.extend_from_slice(&take_output(core, now));
            if hs.process(&mut peer.inbuf, &mut out).unwrap() == HandshakeProgress::Done {
                feed(core, &out, now, kernel);
                break;
            }
        }
        let obj = Value::object([
            ("app", Value::string("live")),
            ("tcUrl", Value::string("rtmp://192.0.2.1/live")),
        ]);
        peer.call(core, 0, "connect", obj, vec![], now, kernel);
        peer.call(core, 0, "createStream", Value::Null, vec![], now, kernel);
        peer
    }

    pub(super) fn play(
        &mut self,
        core: &mut RtmpConn,
        name: &str,
        now: Instant,
        k: &ScriptedKernel,
    ) {
        let args = vec![Value::string(name), Value::Number(-1000.0)];
        self.call(core, 1, "play", Value::Null, args, now, k);
    }

    pub(super) fn publish(
        &mut self,
        core: &mut RtmpConn,
        name: &str,
        now: Instant,
        k: &ScriptedKernel,
    ) {
        self.send_publish(core, name, now, k);
        self.deliver(core, now);
    }

    /// Sends `publish` without reading the answer (it stays queued in the core).
    pub(super) fn send_publish(
        &mut self,
        core: &mut RtmpConn,
        name: &str,
        now: Instant,
        k: &ScriptedKernel,
    ) {
        let args = vec![Value::string(name), Value::string("live")];
        let msg = Message::Command(Command::new("publish", self.tid(), Value::Null, args));
        self.send(core, 4, 1, &msg, now, k);
    }

    fn tid(&mut self) -> f64 {
        self.next_tid += 1.0;
        self.next_tid - 1.0
    }

    /// Everything the core wants written, parsed.
    pub(super) fn deliver(&mut self, core: &mut RtmpConn, now: Instant) {
        self.inbuf.extend_from_slice(&take_output(core, now));
        while let Some(raw) = self.reader.read(&mut self.inbuf).unwrap() {
            if raw.header.type_id == rtmp_proto::message::type_id::VIDEO {
                self.video.push(raw.header.timestamp);
                continue;
            }
            match Message::parse(&raw) {
                Ok(Message::SetChunkSize(n)) => self.reader.set_chunk_size(n).unwrap(),
                Ok(Message::UserControl(UserControl::PingRequest(ts))) => self.pings.push(ts),
                Ok(Message::Command(c)) if c.name == "onStatus" => {
                    let code = c
                        .args
                        .first()
                        .and_then(|a| a.get("code"))
                        .and_then(Value::as_str);
                    self.statuses.push(code.unwrap_or("").to_owned());
                }
                _ => {}
            }
        }
    }

    /// Answers every ping received so far.
    pub(super) fn answer_pings(&mut self, core: &mut RtmpConn, now: Instant, k: &ScriptedKernel) {
        for ts in std::mem::take(&mut self.pings) {
            let msg = Message::UserControl(UserControl::PingResponse(ts));
            self.send(core, 2, 0, &msg, now, k);
        }
    }

    pub(super) fn statuses(&self) -> Vec<String> {
        self.statuses.clone()
    }

    pub(super) fn pings_received(&self) -> usize {
        self.pings.len()
    }

    pub(super) fn take_video_timestamps(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.video)
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        core: &mut RtmpConn,
        stream_id: u32,
        name: &str,
        obj: Value,
        args: Vec<Value>,
        now: Instant,
        k: &ScriptedKernel,
    ) {
        let tid = self.tid();
        let csid = if stream_id == 0 { 3 } else { 4 };
        let msg = Message::Command(Command::new(name, tid, obj, args));
        self.send(core, csid, stream_id, &msg, now, k);
        self.deliver(core, now);
    }

    fn send(
        &mut self,
        core: &mut RtmpConn,
        csid: u32,
        stream_id: u32,
        msg: &Message,
        now: Instant,
        k: &ScriptedKernel,
    ) {
        let (type_id, payload) = msg.encode();
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        let mut out = BytesMut::new();
        self.writer.write(&header, &payload, &mut out);
        feed(core, &out, now, k);
    }
}

fn feed(core: &mut RtmpConn, bytes: &[u8], now: Instant, kernel: &ScriptedKernel) {
    if bytes.is_empty() {
        return;
    }
    core.recv_buf().extend_from_slice(bytes);
    core.handle_input(now, bytes.len(), kernel).unwrap();
}

/// What the core would write now (as if the socket took all of it).
fn take_output(core: &mut RtmpConn, now: Instant) -> Vec<u8> {
    if !core.wants_write() {
        return Vec::new();
    }
    let bytes: Vec<u8> = core
        .output()
        .slices()
        .iter()
        .flat_map(|s| s.to_vec())
        .collect();
    core.wrote(bytes.len());
    core.write_done(now, !bytes.is_empty());
    bytes
}
