//! The tokio side of an RTMP connection: it reads, writes, sleeps until the core's next
//! deadline and passes on what other tasks say. Nothing here decides anything.

use super::core::RtmpConn;
use crate::control::{ConnControl, LentSocket};
use crate::evidence::io_reason;
use crate::shared::Shared;
use rtmp_proto::session::CloseReason;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// What a new connection asks of the kernel per read; doubled each time a read fills it, up to
/// [`READ_CHUNK`], so idle connections keep a small buffer and busy publishers a large one.
const READ_START: usize = 4 * 1024;
/// Reads per wake-up before giving the other duties a turn.
const READS_PER_WAKE: usize = 16;
/// Chunks parsed per wake-up, roughly: a peer with a tiny chunk size (1 is legal) makes every
/// byte cost a parse, so it gets fewer bytes per turn and yields to the other connections.
const CHUNKS_PER_WAKE: usize = 2048;
/// Sleep target when the core has no deadline at all (it always has one in practice).
const NO_DEADLINE: Duration = Duration::from_secs(3600);

/// Runs a connection to its end and returns why it ended. The socket's loan to the admin API
/// ends with `socket`, whatever way this future ends.
pub async fn run(
    socket: LentSocket<TcpStream>,
    control: Arc<ConnControl>,
    shared: Arc<Shared>,
) -> CloseReason {
    let mut conn = RtmpConn::new(shared, control, std::time::Instant::now());
    let mut io = Io {
        stream: &socket,
        read_size: READ_START,
        write_blocked: false,
    };
    let reason = io.drive(&mut conn).await;
    let reason = conn.finish(reason, &**io.stream, std::time::Instant::now());
    if reason.wants_reset() {
        // Abortive close: RST now instead of retransmitting into the void.
        let _ = socket2::SockRef::from(&**io.stream).set_linger(Some(Duration::ZERO));
    }
    reason
}

struct Io<'a> {
    stream: &'a LentSocket<TcpStream>,
    /// Bytes asked of the kernel per read (adaptive, see [`READ_START`]).
    read_size: usize,
    /// The last write hit a full socket: wait for writability instead of trying again.
    write_blocked: bool,
}

impl Io<'_> {
    async fn drive(&mut self, conn: &mut RtmpConn) -> CloseReason {
        let sleep = tokio::time::sleep(NO_DEADLINE);
        tokio::pin!(sleep);
        // Made once: a fresh cancellation future per turn would lock the token's tree each time.
        let control = conn.control.clone();
        let cancelled = control.cancelled();
        tokio::pin!(cancelled);
        let stream: &TcpStream = self.stream;
        loop {
            let now = std::time::Instant::now();
            if conn.poll_timeout().is_some_and(|at| at <= now)
                && let Err(reason) = conn.handle_timeout(now, stream)
            {
                return reason;
            }
            if conn.wants_write()
                && !self.write_blocked
                && let Err(reason) = self.write(conn)
            {
                return reason;
            }
            conn.observe(now);
            if let Some(reason) = conn.poll_close() {
                return reason;
            }
            let deadline = conn
                .poll_timeout()
                .map_or_else(|| Instant::now() + NO_DEADLINE, Instant::from_std);
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let can_take = conn.can_take();
            let wants_write = conn.wants_write() && self.write_blocked;
            let wants_read = conn.wants_read();
            let publisher = conn.is_publisher();
            let waits = conn.waits();
            let fanout = maybe(waits.viewer.filter(|_| can_take).map(|v| v.recv()));
            let evidence = maybe(waits.challenge.map(|t| t.dead_evidence()));
            let hook = maybe(waits.hook.map(|h| h.answer()));
            tokio::select! {
                biased;
                () = &mut cancelled => {
                    return control.requested_reason().unwrap_or(CloseReason::Shutdown);
                }
                () = control.challenged(), if publisher => {
                    conn.on_challenged(std::time::Instant::now());
                }
                () = evidence => conn.on_incumbent_gone(std::time::Instant::now()),
                verdict = hook => conn.hook_answered(std::time::Instant::now(), verdict),
                ev = fanout => {
                    if let Err(reason) = conn.on_stream_event(std::time::Instant::now(), ev) {
                        return reason;
                    }
                }
                r = stream.writable(), if wants_write => {
                    self.write_blocked = false;
                    if let Err(reason) = r.map_err(|e| io_reason(&e, conn.sent_after_rx())).and_then(|()| self.write(conn)) {
                        return reason;
                    }
                }
                r = stream.readable(), if wants_read => {
                    match r.map_err(|e| io_reason(&e, conn.sent_after_rx())).and_then(|()| self.read(conn)) {
                        Err(reason) => return reason,
                        // Input is waiting beyond this turn's budget: let the others run first.
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => {}
                    }
                }
                () = &mut sleep => {}
            }
        }
    }

    /// Reads and processes what the peer sent, up to a budget; `Ok(true)` when the budget ran
    /// out with more input possibly waiting.
    fn read(&mut self, conn: &mut RtmpConn) -> Result<bool, CloseReason> {
        let stream: &TcpStream = self.stream;
        let chunk_size = usize::try_from(conn.in_chunk_size()).unwrap_or(usize::MAX);
        let mut budget = chunk_size
            .saturating_mul(CHUNKS_PER_WAKE)
            .clamp(4096, READ_CHUNK * READS_PER_WAKE);
        while budget > 0 {
            let want = budget.min(self.read_size);
            let buf = conn.recv_buf();
            buf.reserve(want);
            // A short read means the socket's queue is empty: say so to tokio (a WouldBlock from
            // `try_io` clears the readiness, unless an event came meanwhile), so the next turn
            // waits for data instead of spending a `recv` to find nothing — what tokio's own
            // `poll_read` does, and a syscall saved per wake-up of every publisher.
            let mut short = None;
            let read = stream.try_io(Interest::READABLE, || {
                let n = stream.try_read_buf(&mut bytes::BufMut::limit(&mut *buf, want))?;
                if n > 0 && n < want {
                    short = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            let n = match short.map_or(read, Ok) {
                Ok(0) => return Err(CloseReason::PeerClosed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Nothing there (a full read before, or a stale wake-up): keep no empty
                    // buffer reserved across the wait, or each idle connection holds
                    // `read_size` bytes for nothing.
                    if buf.is_empty() {
                        *buf = bytes::BytesMut::new();
                    }
                    return Ok(false);
                }
                Err(e) => return Err(io_reason(&e, conn.sent_after_rx())),
            };
            budget -= n.min(budget);
            if n == want {
                self.read_size = (self.read_size * 2).min(READ_CHUNK);
            }
            conn.handle_input(std::time::Instant::now(), n, stream)?;
            if n < want {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes as much of the queued output as the socket takes, in vectored writes.
    fn write(&mut self, conn: &mut RtmpConn) -> Result<(), CloseReason> {
        let stream: &TcpStream = self.stream;
        let mut progressed = false;
        let mut result = Ok(());
        while !conn.output().is_empty() {
            let written = stream.try_write_vectored(&conn.output().slices());
            match written {
                Ok(n) => {
                    conn.wrote(n);
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    break;
                }
                Err(e) => {
                    result = Err(io_reason(&e, conn.sent_after_rx()));
                    break;
                }
            }
        }
        conn.write_done(std::time::Instant::now(), progressed);
        result
    }
}

/// Awaits `f` if there is one, else never resolves (a `select!` branch with nothing to wait
/// for).
async fn maybe<F: std::future::Future>(f: Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
