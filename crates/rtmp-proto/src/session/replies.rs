//! Commands from the client and the server's answers (`_result`, `onStatus`, …).

use super::{
    CSID_COMMAND, CSID_CONTROL, CSID_STREAM, Event, MAX_STREAMS, Phase, ProtocolError, Role,
    ServerSession, Timer,
};
use crate::amf0::Value;
use crate::message::{Command, Message, UserControl};
use std::time::Instant;

/// Commands that need no action: answered with an empty `_result` when they carry a
/// transaction id, otherwise ignored. Clients send these freely; closing on them would break
/// real encoders and players.
const HARMLESS: &[&str] = &[
    "releaseStream",
    "FCPublish",
    "FCUnpublish",
    "FCSubscribe",
    "FCUnsubscribe",
    "getStreamLength",
    "checkBandwidth",
    "_checkbw",
    "setPeerInfo",
    "receiveAudio",
    "receiveVideo",
    "pause",
    "seek",
    "call",
    "_result",
    "_error",
    "onStatus",
    "onBWDone",
    "onFCPublish",
    "onFCUnpublish",
];

/// Splits `name?query` into its parts.
fn split_query(full: &str) -> (String, String) {
    match full.split_once('?') {
        Some((name, query)) => (name.to_owned(), query.to_owned()),
        None => (full.to_owned(), String::new()),
    }
}

fn status(level: &str, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::string(level)),
        ("code", Value::string(code)),
        ("description", Value::string(description)),
    ])
}

impl ServerSession {
    pub(super) fn command(&mut self, stream_id: u32, cmd: Command) -> Result<(), ProtocolError> {
        let connected = matches!(self.phase, Phase::Connected);
        match cmd.name.as_str() {
            "connect" if !connected => self.connect(&cmd),
            "connect" => Err(unexpected(&cmd, "already connected")),
            _ if !connected => Err(unexpected(&cmd, "before connect")),
            "createStream" => self.create_stream(&cmd),
            "publish" => self.publish(stream_id, &cmd),
            "play" => self.play(stream_id, &cmd),
            "deleteStream" | "closeStream" => {
                self.end_stream();
                Ok(())
            }
            name if HARMLESS.contains(&name) => {
                if name == "FCUnpublish" {
                    self.end_stream();
                }
                if cmd.transaction_id != 0.0 && !name.starts_with('_') && !name.starts_with("on") {
                    self.result(cmd.transaction_id, Value::Null, Value::Undefined);
                }
                Ok(())
            }
            name => Err(ProtocolError::UnknownCommand(name.to_owned())),
        }
    }

    fn connect(&mut self, cmd: &Command) -> Result<(), ProtocolError> {
        let app = cmd
            .command_object
            .get("app")
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected(cmd, "connect without an app"))?;
        let (app, _query) = split_query(app.trim_end_matches('/'));
        self.app = app.clone();
        let tc_url = cmd
            .command_object
            .get("tcUrl")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.phase = Phase::Connected;

        let window = self.config.window_ack_size;
        self.send_message(CSID_CONTROL, 0, &Message::WindowAckSize(window));
        self.send_message(
            CSID_CONTROL,
            0,
            &Message::SetPeerBandwidth {
                size: window,
                limit: 2,
            },
        );
        // Announce first, then switch: the peer applies it to everything that follows.
        let chunk_size = self.config.chunk_size;
        self.send_message(CSID_CONTROL, 0, &Message::SetChunkSize(chunk_size));
        self.writer.set_chunk_size(chunk_size);

        let encoding = cmd
            .command_object
            .get("objectEncoding")
            .cloned()
            .unwrap_or(Value::Number(0.0));
        let props = Value::object([
            ("fmsVer", Value::string("FMS/3,0,1,123")),
            ("capabilities", Value::Number(31.0)),
        ]);
        let info = Value::object([
            ("level", Value::string("status")),
            ("code", Value::string("NetConnection.Connect.Success")),
            ("description", Value::string("Connection succeeded.")),
            ("objectEncoding", encoding),
        ]);
        self.result(cmd.transaction_id, props, info);
        self.events.push_back(Event::Connected { app, tc_url });
        Ok(())
    }

    fn create_stream(&mut self, cmd: &Command) -> Result<(), ProtocolError> {
        if self.streams_created >= MAX_STREAMS {
            return Err(ProtocolError::TooManyStreams);
        }
        self.streams_created += 1;
        let id = self.streams_created;
        self.result(
            cmd.transaction_id,
            Value::Null,
            Value::Number(f64::from(id)),
        );
        Ok(())
    }

    fn stream_name(cmd: &Command) -> Result<(String, String), ProtocolError> {
        let full = cmd
            .args
            .first()
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unexpected(cmd, "no stream name"))?;
        Ok(split_query(full))
    }

    fn publish(&mut self, stream_id: u32, cmd: &Command) -> Result<(), ProtocolError> {
        if self.role != Role::Idle {
            return Err(unexpected(cmd, "connection already publishes or plays"));
        }
        if stream_id == 0 || stream_id > self.streams_created {
            return Err(unexpected(cmd, "on a stream that was never created"));
        }
        let (name, query) = Self::stream_name(cmd)?;
        self.role = Role::PublishPending(stream_id);
        self.events.push_back(Event::PublishRequested {
            stream_id,
            name,
            query,
        });
        Ok(())
    }

    fn play(&mut self, stream_id: u32, cmd: &Command) -> Result<(), ProtocolError> {
        if self.role != Role::Idle {
            return Err(unexpected(cmd, "connection already publishes or plays"));
        }
        if stream_id == 0 || stream_id > self.streams_created {
            return Err(unexpected(cmd, "on a stream that was never created"));
        }
        let (name, query) = Self::stream_name(cmd)?;
        self.role = Role::PlayPending(stream_id);
        self.events.push_back(Event::PlayRequested {
            stream_id,
            name,
            query,
        });
        Ok(())
    }

    fn end_stream(&mut self) {
        match self.role {
            Role::Publisher(_) | Role::PublishPending(_) => {
                self.events.push_back(Event::Unpublished);
                self.timers.stop(Timer::PublishIdle);
            }
            Role::Player(_) | Role::PlayPending(_) => self.events.push_back(Event::PlayStopped),
            Role::Idle => return,
        }
        self.role = Role::Idle;
        // Accepting the publish or play disarmed the handshake deadline: a connection back to
        // no role gets it again, or a silent one would linger forever.
        self.timers.stop(Timer::PingSend);
        self.timers.stop(Timer::PingTimeout);
        self.timers.set(
            Timer::Handshake,
            self.last_rx + self.config.timeouts.handshake,
        );
    }

    /// Grants a pending publish: the peer may now send media.
    pub fn accept_publish(&mut self, now: Instant) {
        let Role::PublishPending(id) = self.role else {
            return;
        };
        self.role = Role::Publisher(id);
        self.timers.stop(Timer::Handshake);
        // Counts from now at the latest, so a publisher that never sends media is caught too.
        self.timers
            .set(Timer::PublishIdle, now + self.config.timeouts.publish_idle);
        self.timers.stop(Timer::PingSend);
        self.timers.stop(Timer::PingTimeout);
        self.user_control(UserControl::StreamBegin(id));
        self.on_status(
            id,
            status("status", "NetStream.Publish.Start", "Start publishing."),
        );
    }

    /// Refuses a pending publish with `NetStream.Publish.BadName`; the driver then closes.
    pub fn reject_publish(&mut self, description: &str) {
        let Role::PublishPending(id) = self.role else {
            return;
        };
        self.role = Role::Idle;
        self.on_status(
            id,
            status("error", "NetStream.Publish.BadName", description),
        );
    }

    /// Grants a pending play. `live` says whether a publisher is on the name right now.
    pub fn accept_play(&mut self, name: &str, live: bool) {
        let Role::PlayPending(id) = self.role else {
            return;
        };
        self.role = Role::Player(id);
        self.timers.stop(Timer::Handshake);
        self.arm_ping(self.last_rx);
        self.user_control(UserControl::StreamBegin(id));
        self.on_status(
            id,
            status(
                "status",
                "NetStream.Play.Reset",
                &format!("Playing and resetting {name}."),
            ),
        );
        self.on_status(
            id,
            status(
                "status",
                "NetStream.Play.Start",
                &format!("Started playing {name}."),
            ),
        );
        let access = Message::Data(vec![
            Value::string("|RtmpSampleAccess"),
            Value::Boolean(true),
            Value::Boolean(true),
        ]);
        self.send_message(CSID_STREAM, id, &access);
        if !live {
            self.play_notify(false);
        }
    }

    /// Refuses a pending play (`NetStream.Play.Failed`); the driver then closes.
    pub fn reject_play(&mut self, description: &str) {
        let Role::PlayPending(id) = self.role else {
            return;
        };
        self.role = Role::Idle;
        self.on_status(id, status("error", "NetStream.Play.Failed", description));
    }

    /// Tells a player that the name was (re)published or unpublished.
    pub fn play_notify(&mut self, published: bool) {
        let Role::Player(id) = self.role else { return };
        if published {
            self.user_control(UserControl::StreamBegin(id));
            self.on_status(
                id,
                status(
                    "status",
                    "NetStream.Play.PublishNotify",
                    "Stream is now published.",
                ),
            );
        } else {
            self.on_status(
                id,
                status(
                    "status",
                    "NetStream.Play.UnpublishNotify",
                    "Stream is now unpublished.",
                ),
            );
        }
    }

    fn user_control(&mut self, event: UserControl) {
        self.send_message(CSID_CONTROL, 0, &Message::UserControl(event));
    }

    fn on_status(&mut self, stream_id: u32, info: Value) {
        let cmd = Command {
            name: "onStatus".into(),
            transaction_id: 0.0,
            command_object: Value::Null,
            args: vec![info],
        };
        self.send_command(CSID_STREAM, stream_id, cmd);
    }

    fn result(&mut self, transaction_id: f64, props: Value, info: Value) {
        let cmd = Command {
            name: "_result".into(),
            transaction_id,
            command_object: props,
            args: vec![info],
        };
        self.send_command(CSID_COMMAND, 0, cmd);
    }
}

fn unexpected(cmd: &Command, why: &'static str) -> ProtocolError {
    ProtocolError::UnexpectedCommand {
        name: cmd.name.clone(),
        why,
    }
}
