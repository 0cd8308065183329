//! The requests the client makes (`connect`, `createStream`, `publish`, `play`, …) and what it
//! makes of the server's answers (`_result`, `_error`, `onStatus`).

use super::{
    CONNECT_TID, ClientError, ClientEvent, ClientSession, ClientTimer, Goal, Phase, Stream,
    StreamEnd,
};
use crate::amf0::Value;
use crate::message::{Command, Message, UserControl};
use crate::session::{CSID_COMMAND, CSID_CONTROL, CSID_STREAM, ProtocolError};
use std::time::Instant;

/// `play`'s start argument: live if there is one, else recorded (what ffmpeg sends by default).
const PLAY_START_ANY: f64 = -2000.0;

/// `{level, code, description}` of a status object, empty where absent.
fn status_of(cmd: &Command) -> (String, String, String) {
    let info = cmd.args.first();
    let field = |key| {
        info.and_then(|i| i.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("level"), field("code"), field("description"))
}

impl ClientSession {
    /// Asks for a message stream now, before any publish or play (which would ask for one
    /// themselves), so its id is known early; answered by [`ClientEvent::StreamCreated`].
    pub fn create_stream(&mut self, now: Instant) -> Result<(), ClientError> {
        self.check_open()?;
        if self.stream == Stream::None && !self.want_stream {
            self.want_stream = true;
            self.arm_setup(now);
            self.advance();
        }
        Ok(())
    }

    /// Publishes `name` (a `?query` included, where stream keys travel) as soon as the
    /// connection is ready; answered by [`ClientEvent::Publishing`] or
    /// [`ClientEvent::Refused`].
    pub fn publish(&mut self, now: Instant, name: &str) -> Result<(), ClientError> {
        self.start(now, Goal::Publish, name)
    }

    /// Plays `name` as soon as the connection is ready; answered by [`ClientEvent::Playing`]
    /// or [`ClientEvent::Refused`], then media.
    pub fn play(&mut self, now: Instant, name: &str) -> Result<(), ClientError> {
        self.start(now, Goal::Play, name)
    }

    fn start(&mut self, now: Instant, goal: Goal, name: &str) -> Result<(), ClientError> {
        self.check_open()?;
        if self.pending.is_some()
            || matches!(self.stream, Stream::Starting(..) | Stream::Active(..))
        {
            return Err(ClientError::Busy);
        }
        self.pending = Some((goal, name.to_owned()));
        self.arm_setup(now);
        self.advance();
        Ok(())
    }

    /// Ends publishing or playing cleanly (`FCUnpublish` for a publisher, then
    /// `deleteStream`); the connection stays up and may publish or play again.
    pub fn close_stream(&mut self) -> Result<(), ClientError> {
        self.check_open()?;
        let (id, goal) = match self.stream {
            Stream::Starting(id, goal) | Stream::Active(id, goal) => (id, Some(goal)),
            Stream::Ready(id) => (id, None),
            Stream::None | Stream::Creating => return Ok(()),
        };
        if goal == Some(Goal::Publish) {
            let name = Value::string(self.name.as_str());
            self.call(0, "FCUnpublish", Value::Null, vec![name]);
        }
        self.call(0, "deleteStream", Value::Null, vec![Value::number(id)]);
        self.stream = Stream::None;
        self.want_stream = false;
        self.announced = false;
        self.timers.stop(ClientTimer::MediaIdle);
        self.settle_setup();
        Ok(())
    }

    fn check_open(&self) -> Result<(), ClientError> {
        match self.phase {
            Phase::Refused => Err(ClientError::Refused),
            _ => Ok(()),
        }
    }

    /// Sends whatever the requests made so far are waiting for and the connection allows.
    pub(super) fn advance(&mut self) {
        if !matches!(self.phase, Phase::Connected) {
            return;
        }
        match (self.stream, self.pending.take()) {
            (Stream::None, pending) if pending.is_some() || self.want_stream => {
                if let Some((Goal::Publish, name)) = &pending {
                    // What OBS and ffmpeg send first; some CDNs refuse a publish without it.
                    self.announce_publish(name);
                }
                self.pending = pending;
                self.create_tid = self.call(0, "createStream", Value::Null, Vec::new());
                self.stream = Stream::Creating;
            }
            (Stream::Ready(id), Some((goal, name))) => {
                if goal == Goal::Publish && !self.announced {
                    self.announce_publish(&name);
                }
                self.send_start(id, goal, &name);
                self.name = name;
            }
            (_, pending) => self.pending = pending,
        }
    }

    fn announce_publish(&mut self, name: &str) {
        for command in ["releaseStream", "FCPublish"] {
            self.call(0, command, Value::Null, vec![Value::string(name)]);
        }
        self.announced = true;
    }

    fn send_start(&mut self, id: u32, goal: Goal, name: &str) {
        let name_arg = Value::string(name);
        self.start_tid = match goal {
            Goal::Publish => self.call(
                id,
                "publish",
                Value::Null,
                vec![name_arg, Value::string("live")],
            ),
            Goal::Play => {
                let tid = self.call(
                    id,
                    "play",
                    Value::Null,
                    vec![name_arg, Value::Number(PLAY_START_ANY)],
                );
                let buffer = UserControl::SetBufferLength {
                    stream_id: id,
                    millis: self.config.buffer_length_ms,
                };
                self.send_message(CSID_CONTROL, 0, &Message::UserControl(buffer));
                tid
            }
        };
        self.stream = Stream::Starting(id, goal);
        self.ended = false;
    }

    /// The setup deadline covers every request in flight; a request made while none is
    /// counts from `now`.
    fn arm_setup(&mut self, now: Instant) {
        if self.timers.get(ClientTimer::Setup).is_none()
            && let Some(at) = now.checked_add(self.config.timeouts.setup)
        {
            self.timers.set(ClientTimer::Setup, at);
        }
    }

    /// Clears the setup deadline once nothing asked for is still unanswered.
    pub(super) fn settle_setup(&mut self) {
        let waiting = match self.phase {
            Phase::Handshake(_) | Phase::Connecting => true,
            Phase::Refused => false,
            Phase::Connected => {
                self.pending.is_some()
                    || matches!(self.stream, Stream::Creating | Stream::Starting(..))
            }
        };
        if !waiting {
            self.timers.stop(ClientTimer::Setup);
        }
    }

    pub(super) fn send_connect(&mut self) {
        let mut object = vec![
            ("app".to_owned(), Value::string(self.config.app.as_str())),
            ("type".to_owned(), Value::string("nonprivate")),
            (
                "flashVer".to_owned(),
                Value::string(self.config.flash_ver.as_str()),
            ),
            (
                "tcUrl".to_owned(),
                Value::string(self.config.tc_url.as_str()),
            ),
        ];
        for (key, value) in &self.config.connect_properties {
            match object.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.clone(),
                None => object.push((key.clone(), value.clone())),
            }
        }
        let connect = Command::new("connect", CONNECT_TID, Value::Object(object), Vec::new());
        self.send_message(CSID_COMMAND, 0, &Message::Command(connect));
    }

    /// Sends a command with the next transaction id; returns it.
    fn call(&mut self, stream_id: u32, name: &str, object: Value, args: Vec<Value>) -> f64 {
        let tid = self.next_tid;
        self.next_tid += 1.0;
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        let cmd = Command::new(name, tid, object, args);
        self.send_message(csid, stream_id, &Message::Command(cmd));
        tid
    }

    pub(super) fn command(&mut self, now: Instant, cmd: Command) -> Result<(), ProtocolError> {
        match cmd.name.as_str() {
            "_result" => self.on_result(&cmd),
            "_error" => {
                let ours = [CONNECT_TID, self.create_tid, self.start_tid];
                if cmd.transaction_id != 0.0 && ours.contains(&cmd.transaction_id) {
                    let (_, code, description) = status_of(&cmd);
                    self.refused(code, description);
                }
                Ok(())
            }
            "onStatus" => {
                self.on_status(now, &cmd);
                Ok(())
            }
            // Servers also call onBWDone, onFCPublish, _checkbw, …: none needs an answer from
            // a live client (ffmpeg ignores them too).
            _ => Ok(()),
        }
    }

    fn on_result(&mut self, cmd: &Command) -> Result<(), ProtocolError> {
        let tid = cmd.transaction_id;
        if tid == CONNECT_TID && matches!(self.phase, Phase::Connecting) {
            self.phase = Phase::Connected;
            let server_version = cmd
                .command_object
                .get("fmsVer")
                .and_then(Value::as_str)
                .map(str::to_owned);
            self.events
                .push_back(ClientEvent::Connected { server_version });
            self.advance();
            self.settle_setup();
        } else if tid == self.create_tid && self.stream == Stream::Creating {
            // The id is the first argument; a few servers leave out the null command object,
            // so it arrives in that place instead.
            let id = cmd
                .args
                .iter()
                .find_map(Value::as_f64)
                .or(cmd.command_object.as_f64())
                .filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= f64::from(u32::MAX))
                .ok_or(ProtocolError::UnexpectedCommand {
                    name: cmd.name.clone(),
                    why: "createStream answered without a valid stream id",
                })?;
            // In range and integral, checked just above.
            let id = id as u32;
            self.stream = Stream::Ready(id);
            self.events.push_back(ClientEvent::StreamCreated(id));
            self.advance();
            self.settle_setup();
        }
        Ok(())
    }

    fn on_status(&mut self, now: Instant, cmd: &Command) {
        let (level, code, description) = status_of(cmd);
        if level == "error" {
            self.refused(code, description);
            return;
        }
        match (code.as_str(), self.stream) {
            ("NetStream.Publish.Start", Stream::Starting(id, Goal::Publish)) => {
                self.stream = Stream::Active(id, Goal::Publish);
                self.events.push_back(ClientEvent::Publishing);
                self.settle_setup();
            }
            ("NetStream.Play.Start", Stream::Starting(id, Goal::Play)) => {
                self.stream = Stream::Active(id, Goal::Play);
                self.events.push_back(ClientEvent::Playing);
                self.arm_media_idle(now);
                self.settle_setup();
            }
            ("NetStream.Play.UnpublishNotify", _) => self.stream_ended(StreamEnd::Unpublished),
            ("NetStream.Play.Stop" | "NetStream.Play.Complete", _) => {
                self.stream_ended(StreamEnd::Stopped);
            }
            _ => {
                if code == "NetStream.Play.PublishNotify" {
                    self.ended = false;
                }
                self.events.push_back(ClientEvent::Status {
                    level,
                    code,
                    description,
                });
            }
        }
    }

    fn refused(&mut self, code: String, description: String) {
        self.phase = Phase::Refused;
        self.pending = None;
        self.timers.stop(ClientTimer::Setup);
        self.timers.stop(ClientTimer::MediaIdle);
        self.events
            .push_back(ClientEvent::Refused { code, description });
    }

    pub(super) fn arm_media_idle(&mut self, now: Instant) {
        // A bound too far out to represent is no bound.
        if let Some(at) = self
            .config
            .timeouts
            .media_idle
            .and_then(|idle| now.checked_add(idle))
        {
            self.timers.set(ClientTimer::MediaIdle, at);
        }
    }
}
