//! A tiny static file server on 127.0.0.1 for the browser tests: it serves one directory (the
//! pages a test writes, the libraries it installed) so that Chromium loads them over HTTP, as
//! a real page would be, rather than from `file://` (where fetch and workers are refused).
//! One thread accepts; each connection gets a short-lived thread; stopped on drop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Serves files under a directory until dropped.
#[derive(Debug)]
pub struct StaticServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl StaticServer {
    /// Serves `root` on an ephemeral port of 127.0.0.1.
    pub fn serve(root: &Path) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let root = Arc::new(root.to_path_buf());
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let root = root.clone();
                std::thread::spawn(move || {
                    let _ = answer(conn, &root);
                });
            }
        });
        Ok(Self {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Answers one `GET` (then closes): the file, 404, or 400 for anything odd.
fn answer(mut conn: TcpStream, root: &Path) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (method, target) = (words.next(), words.next().unwrap_or("/"));
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let file = match (method, safe_path(root, path)) {
        (Some("GET" | "HEAD"), Some(file)) => file,
        _ => return reply(&mut conn, "400 Bad Request", "text/plain", b"bad request\n"),
    };
    match std::fs::read(&file) {
        Ok(body) => reply(&mut conn, "200 OK", content_type(&file), &body),
        Err(_) => reply(&mut conn, "404 Not Found", "text/plain", b"not found\n"),
    }
}

/// `root` joined with the request path, refusing `..` and anything but plain names;
/// `/` is `index.html`.
fn safe_path(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let file = root.join(rel);
    Some(if path.ends_with('/') {
        file.join("index.html")
    } else {
        file
    })
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn reply(conn: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::http;

    #[test]
    fn serves_files_and_nothing_outside() {
        let dir = crate::rtmp::TempDir::new("static-http");
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/a.js"), "1;").unwrap();
        let server = StaticServer::serve(dir.path()).unwrap();
        let addr = server.addr;
        let get = |p: &str| http(addr, "GET", p, None);
        assert_eq!(get("/").body, "<p>hi</p>");
        let js = get("/lib/a.js?v=1");
        assert_eq!((js.status, js.body.as_str()), (200, "1;"));
        assert!(
            js.headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.starts_with("text/javascript"))
        );
        assert_eq!(get("/nope.js").status, 404);
        assert_eq!(get("/../etc/passwd").status, 400);
        assert_eq!(get("/lib/../../x").status, 400);
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }
}
