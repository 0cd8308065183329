//! The tokio side of every connection, whatever its protocol: it reads, writes, sleeps until
//! the core's next deadline and passes on what other tasks say. Nothing here decides anything;
//! a protocol is a [`ConnCore`], a sans-IO state machine with its deadlines as data.

use crate::control::ConnControl;
use crate::evidence::io_reason;
use crate::fanout::{OutQueue, Target};
use crate::transport::{SharedTls, Tls, TlsRead};
use bytes::BytesMut;
use rtmp_proto::session::CloseReason;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes asked of the kernel per read, at most.
const READ_CHUNK: usize = 64 * 1024;
/// What a new connection asks of the kernel per read; doubled each time a read fills it, up to
/// [`READ_CHUNK`], so idle connections keep a small buffer and busy peers a large one.
const READ_START: usize = 4 * 1024;
/// Sleep target when the core has no deadline at all.
const NO_DEADLINE: Duration = Duration::from_secs(3600);

/// A connection's protocol as the driver sees it: bytes in, bytes out, deadlines, and events
/// from outside the connection (fan-out messages, hook answers, challenges).
pub(crate) trait ConnCore {
    /// Something from outside the connection the core waits for.
    type Outside: Send;

    /// The connection's shared handle (cancellation, counters).
    fn control(&self) -> &Arc<ConnControl>;
    /// Where the driver reads into; each read is followed by [`Self::handle_input`].
    fn recv_buf(&mut self) -> &mut BytesMut;
    /// Most bytes to read in one wake-up before letting other connections run.
    fn read_budget(&self) -> usize;
    /// Processes `n` bytes just read into [`Self::recv_buf`].
    fn handle_input(
        &mut self,
        now: Instant,
        n: usize,
        kernel: &TcpStream,
    ) -> Result<(), CloseReason>;
    /// Whether the driver should read.
    fn wants_read(&self) -> bool;
    /// Whether queued output should be written now.
    fn wants_write(&self) -> bool;
    /// The queued output.
    fn output(&self) -> &OutQueue;
    /// The socket took `n` bytes of [`Self::output`].
    fn wrote(&mut self, n: usize);
    /// This turn's writes are over; `progressed` if any byte went out.
    fn write_done(&mut self, now: Instant, progressed: bool);
    /// The earliest deadline that should wake the connection.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Runs the deadlines due at `now`.
    fn handle_timeout(&mut self, now: Instant, kernel: &TcpStream) -> Result<(), CloseReason>;
    /// The reason to end the connection now, if any.
    fn poll_close(&self) -> Option<CloseReason>;
    /// Refreshes the connection's self-report (cheap; called every turn).
    fn observe(&mut self, now: Instant);
    /// Resolves with the next event from outside (never, if the core waits for none now).
    fn outside(&mut self) -> impl Future<Output = Self::Outside> + Send + '_;
    /// Acts on an event from outside.
    fn on_outside(&mut self, now: Instant, event: Self::Outside) -> Result<(), CloseReason>;
    /// Whether our last write came after the peer's last byte (ETIMEDOUT is then the user
    /// timeout rather than keepalive).
    fn sent_after_rx(&self) -> bool;
    /// Called after every entry point: a core that wants its output written by a fan-out
    /// writer from now on takes a handle of the socket here (most never do): the socket
    /// itself, or the socket through the connection's TLS.
    fn share_socket(&mut self, _target: &Arc<dyn Target>) {}
}

/// Runs `core` over `stream` until it ends, with TLS between the socket and the core when
/// `tls` is given; returns why it ended.
pub(crate) async fn drive_over<C: ConnCore>(
    stream: &Arc<TcpStream>,
    tls: Option<Box<Tls>>,
    core: &mut C,
) -> CloseReason {
    let tls = tls.map(|t| Arc::new(SharedTls::new(stream.clone(), *t)));
    let target: Arc<dyn Target> = match &tls {
        Some(t) => t.clone(),
        None => stream.clone(),
    };
    let mut io = Io {
        target,
        stream,
        tls,
        read_size: READ_START,
        write_blocked: false,
    };
    io.drive(core).await
}

struct Io<'a> {
    /// What a fan-out writer writes to for the core.
    target: Arc<dyn Target>,
    stream: &'a TcpStream,
    /// TLS under the core, if the connection came in on a TLS port.
    tls: Option<Arc<SharedTls>>,
    /// Bytes asked of the kernel per read (adaptive, see [`READ_START`]).
    read_size: usize,
    /// The last write hit a full socket: wait for writability instead of trying again.
    write_blocked: bool,
}

impl Io<'_> {
    async fn drive<C: ConnCore>(&mut self, core: &mut C) -> CloseReason {
        let sleep = tokio::time::sleep(NO_DEADLINE);
        tokio::pin!(sleep);
        // Made once: a fresh cancellation future per turn would lock the token's tree each time.
        let control = core.control().clone();
        let cancelled = control.cancelled();
        tokio::pin!(cancelled);
        let stream = self.stream;
        loop {
            let now = Instant::now();
            if core.poll_timeout().is_some_and(|at| at <= now)
                && let Err(reason) = core.handle_timeout(now, stream)
            {
                return reason;
            }
            core.share_socket(&self.target);
            // Write in the same turn as whatever queued it (a merge window that closed, a
            // reply): one wake-up per batch.
            if (core.wants_write() || self.tls_pending())
                && !self.write_blocked
                && let Err(reason) = self.write(core)
            {
                return reason;
            }
            core.observe(now);
            if let Some(reason) = core.poll_close() {
                return reason;
            }
            let deadline = core.poll_timeout().map_or_else(
                || tokio::time::Instant::now() + NO_DEADLINE,
                tokio::time::Instant::from_std,
            );
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let wants_write = (core.wants_write() || self.tls_pending()) && self.write_blocked;
            let wants_read = core.wants_read();
            let interest = match (wants_read, wants_write) {
                (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
                (true, false) => Some(Interest::READABLE),
                (false, true) => Some(Interest::WRITABLE),
                (false, false) => None,
            };
            tokio::select! {
                biased;
                () = &mut cancelled => {
                    return control.requested_reason().unwrap_or(CloseReason::Shutdown);
                }
                event = core.outside() => {
                    if let Err(reason) = core.on_outside(Instant::now(), event) {
                        return reason;
                    }
                }
                // One readiness future for both directions (not a `readable()` and a
                // `writable()`: each is 152 bytes of every connection's task, idle or not).
                r = stream.ready(interest.unwrap_or(Interest::READABLE)), if interest.is_some() => {
                    let ready = match r {
                        Ok(ready) => ready,
                        Err(e) => return io_reason(&e, core.sent_after_rx()),
                    };
                    if wants_write && ready.is_writable() {
                        self.write_blocked = false;
                        if let Err(reason) = self.write(core) {
                            return reason;
                        }
                    }
                    if wants_read && ready.is_readable() {
                        match self.read(core) {
                            Err(reason) => return reason,
                            // Input is waiting beyond this turn's budget: let the others run first.
                            Ok(true) => tokio::task::yield_now().await,
                            Ok(false) => {}
                        }
                    }
                }
                () = &mut sleep => {}
            }
        }
    }

    /// Whether TLS records (a handshake message, an alert) wait for the socket.
    fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.lock().wants_write())
    }

    /// Reads and processes what the peer sent, up to the core's budget; `Ok(true)` when the
    /// budget ran out with more input possibly waiting.
    fn read<C: ConnCore>(&mut self, core: &mut C) -> Result<bool, CloseReason> {
        if self.tls.is_some() {
            return self.read_tls(core);
        }
        let stream = self.stream;
        let mut budget = core.read_budget();
        while budget > 0 {
            let want = budget.min(self.read_size);
            let buf = core.recv_buf();
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
                        *buf = BytesMut::new();
                    }
                    return Ok(false);
                }
                Err(e) => return Err(io_reason(&e, core.sent_after_rx())),
            };
            budget -= n.min(budget);
            if n == want {
                self.read_size = (self.read_size * 2).min(READ_CHUNK);
            }
            core.handle_input(Instant::now(), n, stream)?;
            if n < want {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// [`Self::read`] through TLS: ciphertext in, plaintext to the core.
    fn read_tls<C: ConnCore>(&mut self, core: &mut C) -> Result<bool, CloseReason> {
        let stream = self.stream;
        let mut budget = core.read_budget();
        while budget > 0 {
            let Some(tls) = self.tls.as_ref() else {
                return Ok(false);
            };
            let got = tls.lock().read(stream, core.recv_buf())?;
            match got {
                TlsRead::Drained => return Ok(false),
                TlsRead::Plain(0) => {}
                TlsRead::Plain(n) => {
                    budget -= n.min(budget);
                    core.handle_input(Instant::now(), n, stream)?;
                }
            }
        }
        Ok(true)
    }

    /// Writes as much of the queued output as the socket takes, in vectored writes.
    fn write<C: ConnCore>(&mut self, core: &mut C) -> Result<(), CloseReason> {
        if self.tls.is_some() {
            return self.write_tls(core);
        }
        let stream = self.stream;
        let mut progressed = false;
        let mut result = Ok(());
        while !core.output().is_empty() {
            let written = stream.try_write_vectored(&core.output().slices());
            match written {
                Ok(n) => {
                    core.wrote(n);
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    break;
                }
                Err(e) => {
                    result = Err(io_reason(&e, core.sent_after_rx()));
                    break;
                }
            }
        }
        core.write_done(Instant::now(), progressed);
        result
    }

    /// [`Self::write`] through TLS: waiting ciphertext first, then the core's output encrypted
    /// as the TLS buffer takes it, until the socket is full or nothing is left.
    fn write_tls<C: ConnCore>(&mut self, core: &mut C) -> Result<(), CloseReason> {
        let stream = self.stream;
        let mut progressed = false;
        let mut result = Ok(());
        if let Some(shared) = self.tls.as_ref() {
            let mut tls = shared.lock();
            loop {
                match tls.flush(stream) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.write_blocked = true;
                        break;
                    }
                    Err(e) => {
                        result = Err(io_reason(&e, core.sent_after_rx()));
                        break;
                    }
                }
                if core.output().is_empty() {
                    break;
                }
                let n = tls.encrypt(&core.output().slices());
                if n == 0 {
                    break;
                }
                core.wrote(n);
                progressed = true;
            }
        }
        core.write_done(Instant::now(), progressed);
        result
    }
}

/// Awaits `f` if there is one, else never resolves (a `select!` branch with nothing to wait
/// for). Not an `async fn`: one would hold both its argument and the awaited future, three
/// times the size of `f` in every connection's task.
pub(crate) fn maybe<F: Future>(f: Option<F>) -> impl Future<Output = F::Output> {
    match f {
        Some(f) => tokio_util::either::Either::Left(f),
        None => tokio_util::either::Either::Right(std::future::pending()),
    }
}
