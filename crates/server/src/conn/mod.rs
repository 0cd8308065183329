//! An RTMP connection: a sans-IO core (`core.rs`, with the publisher's and the player's sides
//! in `publish.rs` and `play.rs`, a player served by a fan-out writer in `seated.rs`, access decisions in `access.rs` and the self-report in
//! `observe.rs`) and the tokio driver that only moves its bytes (`driver.rs`).

mod access;
mod core;
mod driver;
mod observe;
mod play;
mod publish;
mod seated;
#[cfg(test)]
mod tests;

pub(crate) use driver::run;
