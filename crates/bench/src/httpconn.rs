//! One HTTP/1.1 client connection of the playback viewers: `GET` requests one at a time on a
//! keep-alive `TcpStream`, responses read into the thread's shared buffer and fed to a
//! [`ResponseReader`] and the caller's [`Body`] where they lie.

use crate::http::{Body, Head, HttpError, ResponseReader};
use std::io;
use std::net::SocketAddr;
use std::time::Instant;
use thiserror::Error;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// Why a request got no complete response.
#[derive(Debug, Error)]
pub(crate) enum FetchError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection mid-response")]
    Closed,
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("no response within the timeout")]
    Timeout,
}

/// Where [`HttpConn::pump`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Once the head is in (body bytes read with it are fed too).
    Head,
    /// Once the whole response is in.
    End,
}

/// A keep-alive connection to the playback port.
#[derive(Debug)]
pub(crate) struct HttpConn {
    stream: TcpStream,
    reader: ResponseReader,
    host: String,
}

impl HttpConn {
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            reader: ResponseReader::default(),
            host: addr.to_string(),
        })
    }

    /// Sends `GET path` (the previous response must be complete).
    pub(crate) async fn get(&mut self, path: &str) -> io::Result<()> {
        self.reader.reset();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lifeline-bench\r\n\r\n",
            self.host
        );
        self.stream.write_all(req.as_bytes()).await
    }

    /// Reads the response to the last request into `body` until `until`; returns its head.
    pub(crate) async fn pump(
        &mut self,
        body: &mut impl Body,
        until: Until,
    ) -> Result<Head, FetchError> {
        loop {
            if let Some(head) = self.reader.head()
                && until == Until::Head
            {
                return Ok(head);
            }
            self.stream.readable().await?;
            let done = crate::scratch::with(|buf| -> Result<bool, FetchError> {
                loop {
                    match self.stream.try_read(buf) {
                        Ok(0) if self.reader.done_at_close() => return Ok(true),
                        Ok(0) => return Err(FetchError::Closed),
                        Ok(n) => {
                            body.arrived(n, Instant::now());
                            if self.reader.feed(&buf[..n], body)? {
                                return Ok(true);
                            }
                            if n < buf.len() {
                                return Ok(false);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(e.into()),
                    }
                }
            })?;
            if done {
                return self.reader.head().ok_or(FetchError::Closed);
            }
        }
    }
}
