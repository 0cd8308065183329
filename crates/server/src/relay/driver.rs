//! How the generic driver runs a relay connection: the one event from outside it waits for is
//! a fan-out message for a push (a pull is told to yield through its `ConnControl`, like any
//! connection that is taken over).

use super::core::RelayConn;
use crate::control::ConnControl;
use crate::driver::{ConnCore, maybe};
use crate::fanout::{OutQueue, Viewer};
use crate::stream::StreamEvent;
use bytes::BytesMut;
use rtmp_proto::session::CloseReason;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;

/// Bytes read per wake-up before giving others a turn: a pull's media arrives here.
const READ_BUDGET: usize = 1024 * 1024;

impl ConnCore for RelayConn {
    type Outside = Result<StreamEvent, RecvError>;

    fn control(&self) -> &Arc<ConnControl> {
        &self.control
    }

    fn recv_buf(&mut self) -> &mut BytesMut {
        RelayConn::recv_buf(self)
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
        RelayConn::handle_input(self, now, n)
    }

    fn wants_read(&self) -> bool {
        RelayConn::wants_read(self)
    }

    fn wants_write(&self) -> bool {
        RelayConn::wants_write(self)
    }

    fn output(&self) -> &OutQueue {
        RelayConn::output(self)
    }

    fn wrote(&mut self, n: usize) {
        RelayConn::wrote(self, n);
    }

    fn write_done(&mut self, now: Instant, progressed: bool) {
        RelayConn::write_done(self, now, progressed);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        RelayConn::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, kernel: &TcpStream) -> Result<(), CloseReason> {
        RelayConn::handle_timeout(self, now, kernel)
    }

    fn poll_close(&self) -> Option<CloseReason> {
        RelayConn::poll_close(self)
    }

    fn observe(&mut self, now: Instant) {
        RelayConn::observe(self, now);
    }

    async fn outside(&mut self) -> Self::Outside {
        let viewer = if self.can_take() {
            self.viewer_mut()
        } else {
            None
        };
        maybe(viewer.map(Viewer::recv)).await
    }

    fn on_outside(&mut self, now: Instant, event: Self::Outside) -> Result<(), CloseReason> {
        self.on_stream_event(now, event)
    }

    fn sent_after_rx(&self) -> bool {
        RelayConn::sent_after_rx(self)
    }
}
