//! Ops toolkit subcommands: `keepalive …` and `sockets …`, for any process on this host.

use clap::{Args, Subcommand};
use std::process::ExitCode;

/// `lifeline keepalive …`: the kernel's keepalive settings and detection times.
#[derive(Debug, Subcommand)]
pub(crate) enum KeepaliveCommand {
    /// Show net.ipv4.tcp_keepalive_* and tcp_retries2 with the detection times they give.
    Show,
}

/// `lifeline sockets …`: list, judge and kill TCP sockets of this network namespace.
#[derive(Debug, Args)]
pub(crate) struct SocketsArgs {}

/// Runs a `keepalive` subcommand.
pub(crate) fn run_keepalive(cmd: KeepaliveCommand) -> anyhow::Result<ExitCode> {
    let _ = cmd;
    Ok(ExitCode::SUCCESS)
}

/// Runs `sockets` (and `sockets kill`).
pub(crate) fn run_sockets(args: SocketsArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    Ok(ExitCode::SUCCESS)
}
