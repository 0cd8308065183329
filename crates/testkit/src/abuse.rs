//! Hostile peers and leak meters for abuse tests: raw TCP connections that send crafted bytes
//! (or nothing), hand-made chunk headers, and the open-file and RSS readings of a process.

use bytes::BytesMut;
use rtmp_proto::chunk::{ChunkWriter, MessageHeader};
use rtmp_proto::handshake::HANDSHAKE_SIZE;
use rtmp_proto::message::Message;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use crate::player::vm_rss_kib;

/// Raises this process's soft limit on open files to its hard limit (a test holding a thousand
/// sockets needs more than the usual 1024); returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Open file descriptors of process `pid` (entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Established TCP connections to or from `port` on this host (from `/proc/net/tcp`), to see
/// that a server let go of its sockets.
pub fn established_on_port(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let hex = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[3] == "01" && (f[1].ends_with(&hex) || f[2].ends_with(&hex))
        })
        .count()
}

/// A raw TCP connection to the server that sends exactly what the test says.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
}

impl RawConn {
    /// Connects to `addr`.
    pub fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream })
    }

    /// A TCP connection whose receive buffer is set to `bytes` before connecting, so a peer that
    /// never reads fills up after a few kilobytes instead of megabytes.
    pub fn tcp_with_small_rcvbuf(addr: SocketAddr, bytes: usize) -> io::Result<TcpStream> {
        use rustix::net::{AddressFamily, SocketType, connect, socket, sockopt};
        let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
        sockopt::set_socket_recv_buffer_size(&fd, bytes)?;
        connect(&fd, &addr)?;
        Ok(TcpStream::from(fd))
    }

    /// Whether a new connection to `addr` is refused at once: reset (or closed) during
    /// `connect` or within `wait` after it.
    pub fn refused_at_once(addr: SocketAddr, wait: Duration) -> bool {
        match Self::open(addr) {
            Ok(mut c) => c.wait_closed(wait).is_some(),
            Err(_) => true,
        }
    }

    /// Sends `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends `bytes` one at a time, `every` apart, stopping at the first error (the server
    /// closed); returns how many were sent.
    pub fn trickle(&mut self, bytes: &[u8], every: Duration) -> usize {
        for (i, b) in bytes.iter().enumerate() {
            if self.stream.write_all(std::slice::from_ref(b)).is_err() {
                return i;
            }
            std::thread::sleep(every);
        }
        bytes.len()
    }

    /// Reads and discards until the server closes (EOF or reset); returns how long that took,
    /// or `None` if the connection is still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Option<Duration> {
        wait_closed(&mut self.stream, timeout)
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Closes with a reset instead of a FIN (SO_LINGER 0): no TIME_WAIT left on this side.
    pub fn reset(self) {
        let _ = rustix::net::sockopt::set_socket_linger(&self.stream, Some(Duration::ZERO));
    }
}

/// Reads and discards from `stream` until the server closes it; how long that took, or `None`
/// if it is still open after `timeout`.
pub fn wait_closed(stream: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let end = start + timeout;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// C0 + C1 of a plain handshake (version 3, zero time, zero version, zero filler).
pub fn c0c1() -> Vec<u8> {
    let mut v = vec![0u8; 1 + HANDSHAKE_SIZE];
    v[0] = 3;
    v
}

/// A fmt 0 chunk header announcing a message of `len` bytes (at most 2^24 - 1) of type
/// `type_id` on message stream `stream_id`, followed by no payload: the caller sends (or never
/// sends) the body.
pub fn fmt0_header(csid: u32, len: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
    let header = MessageHeader {
        csid,
        timestamp: 0,
        type_id,
        stream_id,
    };
    let mut out = BytesMut::new();
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    ChunkWriter::default().write_header(&header, len, &mut out);
    out.to_vec()
}

/// `msg` as one message on chunk stream `csid`, chunked at the default 128 bytes.
pub fn encode_message(csid: u32, stream_id: u32, msg: &Message) -> Vec<u8> {
    let (type_id, payload) = msg.encode();
    let header = MessageHeader {
        csid,
        timestamp: 0,
        type_id,
        stream_id,
    };
    ChunkWriter::default().encode(&header, &payload).to_vec()
}

/// What a player saw of a live stream over a window of time.
#[derive(Debug, Clone, Copy)]
pub struct RealTime {
    /// Frames decoded in the window.
    pub frames: usize,
    /// Frames a real-time stream delivers in the window.
    pub expected: f64,
    /// `frames / expected`.
    pub ratio: f64,
    /// Longest time without a frame in the window.
    pub max_gap: Duration,
}

impl std::fmt::Display for RealTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {:.0} frames ({:.1} %), longest gap {} ms",
            self.frames,
            self.expected,
            self.ratio * 100.0,
            self.max_gap.as_millis()
        )
    }
}

/// A real ffmpeg publish (25 fps) and a real ffmpeg player of it, running beside an abuse test
/// to show that the abuse does not slow the stream below real time.
#[derive(Debug)]
pub struct LiveCheck {
    _publisher: crate::ChildGuard,
    player: crate::player::Player,
}

/// The shortest window [`LiveCheck::assert_real_time`] judges (100 frames).
pub const MIN_WINDOW: Duration = Duration::from_secs(4);

/// Frames per second of [`crate::rtmp::ffmpeg_publish`].
pub const LIVE_FPS: f64 = 25.0;

impl LiveCheck {
    /// Publishes `path` (e.g. `live/rt`) on `server` for up to `seconds`, plays it, and
    /// returns once the player decodes frames steadily.
    pub fn start(server: &mut crate::rtmp::Lifeline, path: &str, seconds: u32) -> Self {
        let url = server.url(path);
        let log = server
            .dir()
            .join(format!("publish-{}.log", path.replace('/', "_")));
        let publisher =
            crate::ChildGuard::spawn_logged(&mut crate::rtmp::ffmpeg_publish(&url, seconds), &log)
                .expect("start ffmpeg publisher");
        let needle = format!("stream={path}");
        let published = server.wait_line(0, Duration::from_secs(15), |l| {
            l.contains(" publish conn=") && l.contains(&needle)
        });
        assert!(
            published.is_some(),
            "ffmpeg did not publish {path}:\n{}",
            server.log_text()
        );
        let player = crate::player::Player::start_local(&url).expect("start ffmpeg player");
        assert!(
            player.wait_frames(50, Duration::from_secs(20)),
            "the player decoded only {} frames:\n{}",
            player.count(),
            server.log_text()
        );
        Self {
            _publisher: publisher,
            player,
        }
    }

    /// What the player saw between `from` and `to`.
    pub fn window(&self, from: Instant, to: Instant) -> RealTime {
        let frames =
            self.player.count_after(from, |_| true) - self.player.count_after(to, |_| true);
        let expected = (to - from).as_secs_f64() * LIVE_FPS;
        RealTime {
            frames,
            expected,
            ratio: frames as f64 / expected,
            max_gap: self.player.max_gap(from, to),
        }
    }

    /// Asserts that the stream stayed real time from `from` until now (at least
    /// [`MIN_WINDOW`] after `from`, waiting if needed): at least 95 % of the frames and no gap
    /// over a second. Returns the figures.
    pub fn assert_real_time(&self, from: Instant, what: &str) -> RealTime {
        let end = from + MIN_WINDOW;
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let rt = self.window(from, Instant::now());
        assert!(
            rt.ratio >= 0.95 && rt.max_gap <= Duration::from_secs(1),
            "{what}: the concurrent ffmpeg stream fell below real time: {rt}"
        );
        rt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt0_headers_announce_without_a_body() {
        assert_eq!(
            fmt0_header(3, 0xFF_FFFF, 20, 0),
            [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0]
        );
        // Two- and three-byte basic headers for the larger chunk stream ids.
        assert_eq!(fmt0_header(64, 1, 8, 1)[..2], [0x00, 0x00]);
        assert_eq!(fmt0_header(320, 1, 8, 1)[..3], [0x01, 0x00, 0x01]);
        assert_eq!(
            fmt0_header(320, 1, 8, 1)[3..],
            [0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0]
        );
    }
}
