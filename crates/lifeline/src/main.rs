//! The `lifeline` binary: the RTMP server (`serve`, `config`) and the ops toolkit
//! (`keepalive`, `sockets`, `sockets probe`).

mod ops;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Lifeline: an RTMP live server where a dead TCP connection never holds a stream hostage,
/// and a toolkit to find and free dead connections of any server.
#[derive(Debug, Parser)]
#[command(name = "lifeline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the RTMP server (embedded defaults unless --config is given).
    Serve(ServeArgs),
    /// Print the full default configuration, with a comment on every key.
    Config,
    /// See and tune the kernel's TCP keepalive, or arm it on a running process.
    #[command(subcommand)]
    Keepalive(ops::KeepaliveCommand),
    /// List TCP sockets with kernel liveness evidence; probe their peers now; kill dead ones.
    Sockets(ops::SocketsArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file; keys not given keep their defaults.
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
    /// RTMP listen address, overriding the configuration (e.g. 127.0.0.1:1935).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Admin HTTP listen address (API, /metrics, dashboard), overriding `[http] listen`.
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
    /// Playback listen address (HTTP-FLV, HLS, MP4), overriding `[playback] listen`.
    #[arg(long)]
    playback: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Config => {
            print!("{}", lifeline_server::config::DEFAULT_CONFIG_TOML);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keepalive(cmd) => ops::run_keepalive(cmd),
        Command::Sockets(args) => ops::run_sockets(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lifeline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = match &args.config {
        Some(path) => lifeline_server::Config::load(path)?,
        None => lifeline_server::Config::default(),
    };
    if let Some(listen) = args.listen {
        config.rtmp.listen = listen;
    }
    if let Some(http) = args.http {
        config.http.listen = http;
    }
    if let Some(playback) = args.playback {
        config.playback.listen = playback;
    }
    raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (listen, playback) = (config.rtmp.listen, config.playback.listen);
        let server = lifeline_server::Server::bind(config)
            .await
            .with_context(|| {
                format!("cannot listen on {listen} (RTMP) or {playback} (playback)")
            })?;
        tracing::info!(addr = %server.local_addr()?, "RTMP listening");
        if let Some(addr) = server.playback_addr() {
            tracing::info!(addr = %addr?, "playback listening");
        }
        if let Some(addr) = server.rtmps_addr() {
            tracing::info!(addr = %addr?, "RTMPS listening");
        }
        if let Some(tls) = server.shared().tls.get().cloned() {
            tokio::spawn(reload_on_sighup(tls));
        }
        let shutdown = server.shutdown_token();
        if server.shared().config.http.enabled {
            let http_listen = server.shared().config.http.listen;
            let admin = lifeline_server::admin::AdminServer::bind(server.shared())
                .await
                .with_context(|| format!("cannot listen for HTTP on {http_listen}"))?;
            tracing::info!(addr = %admin.local_addr()?, "HTTP listening");
            let admin_shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = admin.run(admin_shutdown).await {
                    tracing::error!("admin HTTP server failed: {e}");
                }
            });
        }
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        });
        server.run().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Raises the soft limit on open files to the hard limit, as a server holding up to
/// `limits.max_connections` sockets needs (the soft limit is often 1024).
fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum || (limit.current.is_some() && limit.maximum.is_none()) {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("cannot raise the open-files limit: {e}");
        }
    }
    let soft = getrlimit(Resource::Nofile).current;
    tracing::debug!(?soft, "open-files limit");
}

/// Reloads the TLS certificate and key on every SIGHUP; connections already open keep theirs,
/// and a bad file keeps the configuration in force.
async fn reload_on_sighup(tls: std::sync::Arc<lifeline_server::tls::TlsStore>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the certificate cannot be reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::warn!("TLS certificate not reloaded, the old one stays: {e}"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
