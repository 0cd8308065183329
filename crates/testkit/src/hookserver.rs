//! A tiny blocking HTTP server on 127.0.0.1 to stand in for a hook endpoint: it records every
//! request and answers each as the test decides, or never answers at all (a dead endpoint that
//! still accepts connections).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the hook server answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// This status code, empty body.
    Status(u16),
    /// Nothing, ever: the connection stays open until the server is dropped.
    Hang,
}

/// One request received.
#[derive(Debug, Clone)]
pub struct HookRequest {
    /// Request path, e.g. `/on_publish`.
    pub path: String,
    /// Body text (JSON from Lifeline).
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

type Decide = dyn Fn(&str, &str) -> Reply + Send + Sync;

#[derive(Default)]
struct State {
    requests: Mutex<Vec<HookRequest>>,
    hung: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// The running server; stopped on drop.
pub struct HookServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HookServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HookServer {
    /// Listens on an ephemeral port; `decide(path, body)` picks each answer.
    pub fn start(decide: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let decide: Arc<Decide> = Arc::new(decide);
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (st, decide) = (st.clone(), decide.clone());
                std::thread::spawn(move || serve(conn, &st, &*decide));
            }
        });
        Self {
            addr,
            state,
            thread: Some(thread),
        }
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<HookRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits for a request to `path` whose body satisfies `pred`.
    pub fn wait_request(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<HookRequest> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(r) = self
                .requests()
                .into_iter()
                .find(|r| r.path == path && pred(&r.body))
            {
                return Some(r);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.state.hung.lock().unwrap().clear();
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, state: &State, decide: &Decide) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, len) = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                break (end, len);
            }
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_owned();
    let body = String::from_utf8_lossy(&raw[head_end + 4..head_end + 4 + len]).into_owned();
    let reply = decide(&path, &body);
    state.requests.lock().unwrap().push(HookRequest {
        path,
        body,
        at: Instant::now(),
    });
    match reply {
        Reply::Status(code) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Reply::Hang => state.hung.lock().unwrap().push(conn),
    }
}
