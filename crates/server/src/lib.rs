//! The Lifeline RTMP live server: accept loop, one task per connection driving the sans-IO
//! session from `rtmp-proto`, a registry with one publisher per stream name, and a zero-copy
//! fan-out to players.

pub mod admin;
pub mod auth;
pub mod config;
pub mod conn;
pub mod hooks;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod stream;

pub use config::Config;
pub use server::Server;
