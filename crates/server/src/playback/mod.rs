//! Watching in a browser: the playback port. HTTP/1.1 with keep-alive; HTTP-FLV live bodies
//! fed by the same zero-copy fan-out as RTMP players (one FLV tag per message, shared), with
//! the same bounds for dead and slow viewers.
//!
//! Hand-written on `httparse` rather than on hyper: a live body here is the viewer's output
//! queue written with vectored writes on the connection's own socket, which needs the socket
//! (TCP_INFO evidence, write-stall deadline, merge windows) in the connection's core, not
//! behind a server framework that owns the writes.

mod conn;
mod driver;
mod flv;
mod hls;
mod mp4;
mod observe;
pub mod request;
mod response;
#[cfg(test)]
mod tests;

pub(crate) use driver::run;
pub(crate) use hls::reap_sessions;
