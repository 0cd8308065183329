//! How the generic driver runs an RTMP connection: the events from outside it waits for (a
//! fan-out message, a hook's answer, a newcomer's challenge, evidence that the incumbent we
//! challenge is gone), and the entry point the accept loop spawns.

use super::core::{Held, RtmpConn, Waiting};
use crate::auth::Denial;
use crate::control::{ConnControl, LentSocket};
use crate::driver::{ConnCore, drive_over};
use crate::fanout::OutQueue;
use crate::shared::Shared;
use crate::stream::StreamEvent;
use bytes::BytesMut;
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;

/// Reads per wake-up before giving the other duties a turn, in units of the largest read.
const MAX_READ_PER_WAKE: usize = 16 * 64 * 1024;
/// Chunks parsed per wake-up, roughly: a peer with a tiny chunk size (1 is legal) makes every
/// byte cost a parse, so it gets fewer bytes per turn and yields to the other connections.
const CHUNKS_PER_WAKE: usize = 2048;

/// Runs an RTMP connection to its end and returns why it ended. The socket's loan to the admin
/// API ends with `socket`, whatever way this future ends.
pub(crate) async fn run(
    socket: LentSocket<Arc<TcpStream>>,
    control: Arc<ConnControl>,
    shared: Arc<Shared>,
    tls: Option<Box<crate::transport::Tls>>,
) -> CloseReason {
    let mut conn = RtmpConn::new(shared, control, Instant::now());
    let reason = drive_over(&socket, tls, &mut conn).await;
    let reason = conn.finish(reason, &**socket, Instant::now());
    if reason.wants_reset() {
        // Abortive close: RST now instead of retransmitting into the void.
        let _ = socket2::SockRef::from(&**socket).set_linger(Some(Duration::ZERO));
    }
    reason
}

/// What an RTMP connection waits for from outside.
pub(crate) enum Outside {
    /// A newcomer wants our name.
    Challenged,
    /// The incumbent we challenge was found gone by its own connection.
    IncumbentGone,
    /// The decision hook answered.
    Hook(Result<(), Denial>),
    /// `[cluster]`: the claim of the name in etcd is held (in this lease epoch) or refused.
    Cluster(Result<u64, crate::cluster::Refusal>),
    /// A fan-out message (or a lag).
    Fanout(Result<StreamEvent, RecvError>),
    /// The fan-out writer serving our viewer has news (an end, a full socket, a publisher
    /// change to answer).
    Writer,
}

impl ConnCore for RtmpConn {
    type Outside = Outside;

    fn control(&self) -> &Arc<ConnControl> {
        &self.control
    }

    fn recv_buf(&mut self) -> &mut BytesMut {
        RtmpConn::recv_buf(self)
    }

    fn read_budget(&self) -> usize {
        let chunk_size = usize::try_from(self.session.in_chunk_size()).unwrap_or(usize::MAX);
        chunk_size
            .saturating_mul(CHUNKS_PER_WAKE)
            .clamp(4096, MAX_READ_PER_WAKE)
    }

    fn handle_input(
        &mut self,
        now: Instant,
        n: usize,
        kernel: &TcpStream,
    ) -> Result<(), CloseReason> {
        RtmpConn::handle_input(self, now, n, kernel)
    }

    fn wants_read(&self) -> bool {
        RtmpConn::wants_read(self)
    }

    fn wants_write(&self) -> bool {
        RtmpConn::wants_write(self)
    }

    fn output(&self) -> &OutQueue {
        RtmpConn::output(self)
    }

    fn wrote(&mut self, n: usize) {
        RtmpConn::wrote(self, n);
    }

    fn write_done(&mut self, now: Instant, progressed: bool) {
        RtmpConn::write_done(self, now, progressed);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        RtmpConn::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, kernel: &TcpStream) -> Result<(), CloseReason> {
        RtmpConn::handle_timeout(self, now, kernel)
    }

    fn poll_close(&self) -> Option<CloseReason> {
        RtmpConn::poll_close(self)
    }

    fn observe(&mut self, now: Instant) {
        RtmpConn::observe(self, now);
    }

    async fn outside(&mut self) -> Outside {
        let can_take = self.can_take();
        let RtmpConn {
            control,
            held,
            waiting,
            ..
        } = self;
        let publisher = matches!(held, Held::Name(_));
        // One future per exclusive state, each an `async` block matching on it: the arms'
        // futures share their storage, so every connection's task holds the largest, not
        // the sum of all six (a few hundred bytes per idle connection).
        let waited = async {
            match waiting {
                Waiting::Nothing => std::future::pending().await,
                Waiting::Hook(h) => Outside::Hook(h.answer().await),
                Waiting::Challenge(t) => {
                    t.dead_evidence().await;
                    Outside::IncumbentGone
                }
                Waiting::Cluster(c) => Outside::Cluster(c.answer().await),
            }
        };
        let watched = async {
            match held {
                Held::Stream(v) if can_take => Outside::Fanout(v.recv().await),
                Held::Seated(s) => {
                    s.changed().await;
                    Outside::Writer
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = control.challenged(), if publisher => Outside::Challenged,
            ev = waited => ev,
            ev = watched => ev,
        }
    }

    fn on_outside(&mut self, now: Instant, event: Outside) -> Result<(), CloseReason> {
        match event {
            Outside::Challenged => self.on_challenged(now),
            Outside::IncumbentGone => self.on_incumbent_gone(now),
            Outside::Hook(verdict) => self.hook_answered(now, verdict),
            Outside::Cluster(verdict) => self.cluster_answered(now, verdict),
            Outside::Fanout(ev) => return self.on_stream_event(now, ev),
            Outside::Writer => return self.on_writer(now),
        }
        Ok(())
    }

    fn sent_after_rx(&self) -> bool {
        RtmpConn::sent_after_rx(self)
    }

    fn share_socket(&mut self, target: &Arc<dyn crate::fanout::Target>) {
        if self.handoff {
            self.seat(target.clone(), Instant::now());
        }
    }
}
