//! Sans-IO RTMP for a live server: bytes in, events and bytes out; no sockets, no runtime.
//!
//! ```text
//!  socket bytes ──► handshake ──► chunk::ChunkReader ──► message::Message ──► session::ServerSession ──► Event
//!                                                                                  │
//!  socket bytes ◄──────────────── chunk::ChunkWriter ◄──── replies, media ◄───────┘
//! ```
//!
//! [`client::ClientSession`] is the mirror image, for outgoing connections (relays, the load
//! generator, test clients): it drives the handshake, `connect`, `createStream` and
//! `publish`/`play` itself and reports the server's answers and media as events.
//!
//! Every length read off the wire is checked against what is actually buffered and against a
//! named limit before anything is allocated; no input makes this crate panic or recurse without
//! bound. Specs: Adobe RTMP 1.0 (2012), AMF0 (2006), Enhanced RTMP v1/v2 (Veovera).
#![forbid(unsafe_code)]

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod flv;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
pub mod handshake;
pub mod message;
pub mod session;
pub mod timer;
