//! The Lifeline RTMP live server.
