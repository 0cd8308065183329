//! How the generic driver runs a playback connection: the events from outside it waits for
//! (the on_play hook's answer, fan-out messages), and the entry point the accept loop spawns.

use super::conn::{HttpConn, Phase};
use crate::access::PendingHook;
use crate::auth::Denial;
use crate::control::{ConnControl, LentSocket};
use crate::driver::{ConnCore, drive_over, maybe};
use crate::fanout::{OutQueue, Viewer};
use crate::shared::Shared;
use crate::stream::StreamEvent;
use bytes::BytesMut;
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;

/// Bytes read per wake-up: request heads are small, and a live body expects nothing.
const READ_BUDGET: usize = 64 * 1024;

/// Runs a playback connection to its end and returns why it ended.
pub(crate) async fn run(
    socket: LentSocket<Arc<TcpStream>>,
    control: Arc<ConnControl>,
    shared: Arc<Shared>,
    tls: Option<Box<crate::transport::Tls>>,
) -> CloseReason {
    let mut conn = HttpConn::new(shared, control, Instant::now());
    let reason = drive_over(&socket, tls, &mut conn).await;
    let reason = conn.finish(reason, &**socket, Instant::now());
    if reason.wants_reset() {
        let _ = socket2::SockRef::from(&**socket).set_linger(Some(Duration::ZERO));
    }
    reason
}

/// What a playback connection waits for from outside.
pub(crate) enum Outside {
    /// The on_play hook answered.
    Hook(Result<(), Denial>),
    /// A fan-out message (or a lag).
    Fanout(Result<StreamEvent, RecvError>),
    /// The stream's segmenter changed.
    HlsUpdate,
}

impl ConnCore for HttpConn {
    type Outside = Outside;

    fn control(&self) -> &Arc<ConnControl> {
        &self.control
    }

    fn recv_buf(&mut self) -> &mut BytesMut {
        &mut self.inbuf
    }

    fn read_budget(&self) -> usize {
        READ_BUDGET
    }

    fn handle_input(
        &mut self,
        now: Instant,
        n: usize,
        _kernel: &TcpStream,
    ) -> Result<(), CloseReason> {
        HttpConn::handle_input(self, now, n)
    }

    fn wants_read(&self) -> bool {
        HttpConn::wants_read(self)
    }

    fn wants_write(&self) -> bool {
        HttpConn::wants_write(self)
    }

    fn output(&self) -> &OutQueue {
        &self.out
    }

    fn wrote(&mut self, n: usize) {
        HttpConn::wrote(self, n);
    }

    fn write_done(&mut self, now: Instant, progressed: bool) {
        HttpConn::write_done(self, now, progressed);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        HttpConn::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, kernel: &TcpStream) -> Result<(), CloseReason> {
        HttpConn::handle_timeout(self, now, kernel)
    }

    fn poll_close(&self) -> Option<CloseReason> {
        HttpConn::poll_close(self)
    }

    fn observe(&mut self, now: Instant) {
        HttpConn::observe(self, now);
    }

    async fn outside(&mut self) -> Outside {
        let can_take = self.can_take();
        let (mut hook, mut viewer, mut updates) = (None, None, None);
        match &mut self.phase {
            Phase::Hook(_, h) => hook = Some(h),
            Phase::Live(live) if can_take => viewer = Some(&mut live.viewer),
            Phase::Blocked(b) => updates = Some(&mut b.updates),
            Phase::Mp4(live) => updates = Some(&mut live.updates),
            _ => {}
        }
        tokio::select! {
            biased;
            v = maybe(hook.map(PendingHook::answer)) => Outside::Hook(v),
            ev = maybe(viewer.map(Viewer::recv)) => Outside::Fanout(ev),
            // A closed channel (the stream's HLS state ended) wakes once; the core decides.
            _ = maybe(updates.map(|u| u.changed())) => Outside::HlsUpdate,
        }
    }

    fn on_outside(&mut self, now: Instant, event: Outside) -> Result<(), CloseReason> {
        match event {
            Outside::Hook(verdict) => {
                self.hook_answered(now, verdict);
                Ok(())
            }
            Outside::Fanout(ev) => self.on_stream_event(now, ev),
            Outside::HlsUpdate => {
                self.on_hls_update(now);
                Ok(())
            }
        }
    }

    fn sent_after_rx(&self) -> bool {
        self.last_tx > self.last_rx
    }
}
