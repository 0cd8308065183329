//! Building, encoding and decoding [`Command`] bodies.

use super::{Command, MessageError, type_id};
use crate::amf0::{self, Value};
use bytes::{Bytes, BytesMut};

impl Command {
    /// A command with every field given.
    pub fn new(
        name: impl Into<String>,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) -> Self {
        Self {
            name: name.into(),
            transaction_id,
            command_object,
            args,
        }
    }

    /// `_result` for the request with `transaction_id`: `properties` is the command object
    /// (e.g. `fmsVer`/`capabilities` for `connect`, `Null` otherwise) and `information` the
    /// single argument (the status object, or the new stream id for `createStream`).
    pub fn result(transaction_id: f64, properties: Value, information: Value) -> Self {
        Self::new("_result", transaction_id, properties, vec![information])
    }

    /// `_error` for the request with `transaction_id`, shaped like [`Command::result`].
    pub fn error(transaction_id: f64, properties: Value, information: Value) -> Self {
        Self::new("_error", transaction_id, properties, vec![information])
    }

    /// `onStatus` with the conventional info object; it is unsolicited, so its transaction id
    /// is 0 and its command object `Null`. Further properties (`details`, `clientid`) can be
    /// pushed onto `args[0]` if a client needs them.
    pub fn on_status(level: &str, code: &str, description: &str) -> Self {
        Self::new(
            "onStatus",
            0.0,
            Value::Null,
            vec![Self::status_info(level, code, description)],
        )
    }

    /// The `{level, code, description}` object used by `onStatus` and `_error` replies.
    pub fn status_info(level: &str, code: &str, description: &str) -> Value {
        Value::object([
            ("level", Value::string(level)),
            ("code", Value::string(code)),
            ("description", Value::string(description)),
        ])
    }

    /// `onBWDone`, which Flash-lineage clients wait for after `connect` before they consider
    /// bandwidth detection finished; others ignore it.
    pub fn on_bw_done() -> Self {
        Self::new("onBWDone", 0.0, Value::Null, Vec::new())
    }

    /// The `i`-th argument after the command object (for `publish`, 0 is the stream name and
    /// 1 the publishing type).
    pub fn arg(&self, i: usize) -> Option<&Value> {
        self.args.get(i)
    }

    /// The `i`-th argument if it is a string.
    pub fn str_arg(&self, i: usize) -> Option<&str> {
        self.arg(i).and_then(Value::as_str)
    }

    /// The AMF0 body (message type 20).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode_into(&mut out);
        out.freeze()
    }

    /// Appends the AMF0 body to `out`, for callers assembling several messages in one buffer.
    pub fn encode_into(&self, out: &mut BytesMut) {
        amf0::encode(&Value::String(self.name.clone()), out);
        amf0::encode(&Value::Number(self.transaction_id), out);
        amf0::encode(&self.command_object, out);
        amf0::encode_all(&self.args, out);
    }

    /// Decodes an AMF0 command body (type 20, or type 17 after its leading format byte).
    pub fn decode(body: &[u8]) -> Result<Self, MessageError> {
        Self::decode_with_type(type_id::COMMAND_AMF0, body)
    }

    /// Builds a command from already decoded values: a name, a transaction id, then an
    /// optional command object (`Null` when absent, as some clients send bare `call`s) and the
    /// arguments.
    pub fn from_values(values: Vec<Value>) -> Result<Self, MessageError> {
        let mut it = values.into_iter();
        let name = match it.next() {
            Some(Value::String(s)) => s,
            _ => return Err(MessageError::MalformedCommand),
        };
        let transaction_id = match it.next() {
            Some(Value::Number(n)) => n,
            _ => return Err(MessageError::MalformedCommand),
        };
        let command_object = it.next().unwrap_or(Value::Null);
        Ok(Self {
            name,
            transaction_id,
            command_object,
            args: it.collect(),
        })
    }

    pub(super) fn decode_with_type(type_id: u8, body: &[u8]) -> Result<Self, MessageError> {
        let values =
            amf0::decode_all(body).map_err(|source| MessageError::Amf0 { type_id, source })?;
        Self::from_values(values)
    }
}
