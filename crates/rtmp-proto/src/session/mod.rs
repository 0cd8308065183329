//! The server side of one RTMP connection as a state machine: bytes in, events and bytes out.
