//! The Lifeline RTMP live server.

pub mod config;
