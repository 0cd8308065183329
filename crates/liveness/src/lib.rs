//! Linux TCP liveness: per-socket keepalive and user timeout, `TCP_INFO`, the kernel's
//! keepalive sysctls, and the exact detection-time formulas.
//!
//! The point of this crate is that a dead peer is *detected by the kernel* in a bounded time.
//! Keepalive alone only covers idle sockets; `TCP_USER_TIMEOUT` covers sockets with data in
//! flight. [`SocketLiveness`] sets both, [`calc`] says when the kernel will give up, and
//! [`tcp_info`] shows the evidence the kernel keeps per socket.

pub mod calc;
mod error;
mod options;
mod tcpinfo;

pub use error::LivenessError;
pub use options::{Keepalive, SocketLiveness};
pub use tcpinfo::{TcpInfo, TcpInfoParts, TcpState, tcp_info};
pub mod diag;
pub mod pidfd;
pub mod probe;
pub mod suspect;
pub mod sysctl;
