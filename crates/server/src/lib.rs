//! The Lifeline RTMP live server: accept loop, one task per connection driving the sans-IO
//! session from `rtmp-proto` through a sans-IO connection core, a registry with one publisher
//! per stream name, and a zero-copy fan-out to viewers.
//!
//! Modules form a one-way graph (checked by `scripts/module-cycles.py`): `util`, `config` and
//! `control` are leaves; `stream` and `takeover` build on them, `registry` on
//! those, `fanout` and `conn` on the registry, `relay` on the registry, fan-out and driver (and
//! under `shared`, which holds its manager), and `server` and `admin` on everything.

mod access;
pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod control;
mod driver;
pub mod evidence;
mod fanout;
pub mod hls;
pub mod hooks;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod playback;
pub mod registry;
pub mod relay;
pub mod server;
pub mod sessions;
pub mod shared;
pub mod stream;
pub mod takeover;
mod timers;
pub mod tls;
mod transport;
mod util;

pub use config::Config;
pub use server::Server;
pub use shared::Shared;
