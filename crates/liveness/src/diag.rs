//! TCP sockets of this network namespace via netlink `sock_diag` (what `ss -tonpie` reads),
//! their owning processes via /proc, and `SOCK_DESTROY` (what `ss -K` does).

use crate::{LivenessError, SocketLiveness, TcpInfo, TcpInfoParts, TcpState};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, nlas::Nla,
    nlas::TcpInfo as NlTcpInfo,
};
use netlink_packet_sock_diag::{AF_INET, AF_INET6, IPPROTO_TCP, SockDiagDestroy, SockDiagMessage};
use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_SOCK_DIAG};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// The timer the kernel has armed on a socket, with the time left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SocketTimer {
    /// Retransmission timer (also the tail-loss probe); `count` = retransmissions so far.
    Retransmit {
        /// Time left, ms.
        remaining_ms: u64,
        /// Consecutive retransmissions.
        count: u8,
    },
    /// Keepalive timer: only armed on idle sockets with `SO_KEEPALIVE`.
    Keepalive {
        /// Time left, ms.
        remaining_ms: u64,
    },
    /// Zero-window probe timer: the peer advertises a zero window.
    ZeroWindowProbe {
        /// Time left, ms.
        remaining_ms: u64,
    },
    /// TIME-WAIT.
    TimeWait,
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Process id.
    pub pid: i32,
    /// File descriptor number in that process.
    pub fd: i32,
    /// Command name (`/proc/PID/comm`).
    pub command: String,
}

/// One TCP socket with everything the kernel reports about its liveness.
#[derive(Debug, Clone, Serialize)]
pub struct SocketEntry {
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (`0.0.0.0:0` / `[::]:0` for listeners).
    pub remote: SocketAddr,
    /// State.
    pub state: TcpState,
    /// Socket inode (links to `/proc/PID/fd`).
    pub inode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Bytes received, not read by the application (listeners: accept backlog).
    pub recv_queue: u32,
    /// Bytes sent and not acknowledged (listeners: backlog limit).
    pub send_queue: u32,
    /// Armed timer, if any.
    pub timer: Option<SocketTimer>,
    /// Kernel `tcp_info`, when the kernel sent it.
    pub tcp_info: Option<TcpInfo>,
    /// Processes holding the socket (empty when unknown or not permitted).
    pub owners: Vec<Owner>,
    /// Keepalive / user timeout as read from the socket itself (needs ptrace access to an
    /// owner); `None` when it could not be read.
    pub liveness: Option<SocketLiveness>,
    /// Kernel socket cookie (hex), stable identity for `SOCK_DESTROY`.
    pub cookie: String,
    #[serde(skip)]
    id: SocketId,
    #[serde(skip)]
    family: u8,
}

impl SocketEntry {
    /// Whether keepalive is on: from the socket option when readable, else from the timer
    /// (a keepalive timer proves "on"; an idle established socket without timer means "off";
    /// a retransmit timer hides it, so `None`).
    pub fn keepalive_on(&self) -> Option<bool> {
        if let Some(l) = &self.liveness {
            return Some(l.keepalive.is_some());
        }
        match (&self.timer, self.state) {
            (Some(SocketTimer::Keepalive { .. }), _) => Some(true),
            (None, TcpState::Established) => Some(false),
            _ => None,
        }
    }
}

fn nl_err(what: &str, e: impl std::fmt::Display) -> LivenessError {
    LivenessError::Netlink(format!("{what}: {e}"))
}

fn open() -> Result<Socket, LivenessError> {
    let mut s = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| nl_err("socket", e))?;
    s.bind_auto().map_err(|e| nl_err("bind", e))?;
    s.connect(&NlAddr::new(0, 0))
        .map_err(|e| nl_err("connect", e))?;
    Ok(s)
}

fn send<T>(s: &Socket, mut msg: NetlinkMessage<T>) -> Result<(), LivenessError>
where
    T: netlink_packet_core::NetlinkSerializable + std::fmt::Debug,
{
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    s.send(&buf, 0).map_err(|e| nl_err("send", e))?;
    Ok(())
}

fn convert_info(t: &NlTcpInfo) -> TcpInfo {
    TcpInfo::from_parts(TcpInfoParts {
        state: t.state,
        rtt_us: t.rtt,
        rttvar_us: t.rttvar,
        rto_us: t.rto,
        unacked: t.unacked,
        retransmits: t.retransmits,
        backoff: t.backoff,
        probes: t.probes,
        total_retrans: t.total_retrans,
        last_data_sent_ms: t.last_data_sent,
        last_data_recv_ms: t.last_data_recv,
        last_ack_recv_ms: t.last_ack_recv,
        notsent_bytes: t.notsent_bytes,
        bytes_acked: t.bytes_acked,
        bytes_received: t.bytes_received,
    })
}

fn entry(r: &InetResponse) -> SocketEntry {
    use netlink_packet_sock_diag::inet::Timer;
    let h = &r.header;
    let ms = |d: &std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let timer = h.timer.as_ref().map(|t| match t {
        Timer::Retransmit(d, n) => SocketTimer::Retransmit {
            remaining_ms: ms(d),
            count: *n,
        },
        Timer::KeepAlive(d) => SocketTimer::Keepalive {
            remaining_ms: ms(d),
        },
        Timer::Probe(d) => SocketTimer::ZeroWindowProbe {
            remaining_ms: ms(d),
        },
        Timer::TimeWait => SocketTimer::TimeWait,
    });
    let tcp_info = r.nlas.iter().find_map(|n| match n {
        Nla::TcpInfo(t) => Some(convert_info(t)),
        _ => None,
    });
    let id = &h.socket_id;
    SocketEntry {
        local: SocketAddr::new(id.source_address, id.source_port),
        remote: SocketAddr::new(id.destination_address, id.destination_port),
        state: TcpState::from_kernel(h.state),
        inode: h.inode,
        uid: h.uid,
        recv_queue: h.recv_queue,
        send_queue: h.send_queue,
        timer,
        tcp_info,
        owners: Vec::new(),
        liveness: None,
        cookie: id.cookie.iter().map(|b| format!("{b:02x}")).collect(),
        id: id.clone(),
        family: h.family,
    }
}

/// Dumps every TCP socket (IPv4 and IPv6, all states) of the caller's network namespace, with
/// `tcp_info`. No privileges needed; owners are filled in by [`fill_owners`].
pub fn dump_tcp() -> Result<Vec<SocketEntry>, LivenessError> {
    let s = open()?;
    let mut out = Vec::new();
    for (family, socket_id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let req = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            states: StateFlags::all(),
            socket_id,
        });
        send(&s, NetlinkMessage::new(hdr, req.into()))?;
        'recv: loop {
            let (buf, _) = s.recv_from_full().map_err(|e| nl_err("recv", e))?;
            let mut off = 0;
            while off < buf.len() {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[off..])
                    .map_err(|e| nl_err("decode", e))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        out.push(entry(&r))
                    }
                    NetlinkPayload::Done(_) => break 'recv,
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(nl_err("dump", e.to_io()));
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }
    Ok(out)
}

/// Maps socket inodes to the processes holding them by scanning `/proc/*/fd` (what `ss -p`
/// does). Processes we may not inspect are skipped silently: run as root to see them all.
pub fn socket_owners() -> HashMap<u64, Vec<Owner>> {
    let mut map: HashMap<u64, Vec<Owner>> = HashMap::new();
    let Ok(procs) = procfs::process::all_processes() else {
        return map;
    };
    for p in procs.flatten() {
        let Ok(fds) = p.fd() else { continue };
        let mut command = None;
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target {
                let command = command
                    .get_or_insert_with(|| p.stat().map(|s| s.comm).unwrap_or_default())
                    .clone();
                map.entry(inode).or_default().push(Owner {
                    pid: p.pid(),
                    fd: fd.fd,
                    command,
                });
            }
        }
    }
    map
}

/// Fills `owners` of each entry, and `liveness` from the socket itself where an owner's fd
/// can be duplicated (root, or same user on a dumpable process).
pub fn fill_owners(entries: &mut [SocketEntry]) {
    let map = socket_owners();
    for e in entries.iter_mut() {
        if let Some(o) = map.get(&u64::from(e.inode)) {
            e.owners = o.clone();
        }
        if e.state != TcpState::Listen {
            e.liveness = e
                .owners
                .iter()
                .find_map(|o| crate::pidfd::read(o.pid, o.fd).ok());
        }
    }
}

/// Destroys the socket with `SOCK_DESTROY`: its owner's pending and next calls fail with
/// `ECONNABORTED`, the peer receives a reset. Needs `CAP_NET_ADMIN` in this namespace and a
/// kernel built with `CONFIG_INET_DIAG_DESTROY`; both refusals are reported as errors (unlike
/// `ss -K`, which exits 0).
pub fn destroy(e: &SocketEntry) -> Result<(), LivenessError> {
    let s = open()?;
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | NLM_F_ACK;
    let req = SockDiagDestroy::new(SockDiagMessage::InetRequest(InetRequest {
        family: e.family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::all(),
        socket_id: e.id.clone(),
    }));
    send(&s, NetlinkMessage::new(hdr, req.into()))?;
    let (buf, _) = s.recv_from_full().map_err(|e| nl_err("recv", e))?;
    let msg =
        NetlinkMessage::<SockDiagDestroy>::deserialize(&buf).map_err(|e| nl_err("decode", e))?;
    let action = format!("SOCK_DESTROY {} -> {}", e.local, e.remote);
    match msg.payload {
        NetlinkPayload::Error(err) => match err.code.map(|c| -c.get()) {
            None => Ok(()),
            Some(libc::EPERM) | Some(libc::EACCES) => Err(LivenessError::PermissionDenied {
                action,
                needs: "CAP_NET_ADMIN in the socket's network namespace (run as root)".into(),
            }),
            Some(libc::EOPNOTSUPP) => Err(LivenessError::Unsupported {
                action,
                needs: "kernel built with CONFIG_INET_DIAG_DESTROY=y".into(),
            }),
            Some(libc::ENOENT) => Err(LivenessError::Process {
                action,
                source: std::io::Error::other("socket no longer exists"),
            }),
            Some(c) => Err(LivenessError::Process {
                action,
                source: std::io::Error::from_raw_os_error(c),
            }),
        },
        other => Err(nl_err(
            "SOCK_DESTROY",
            format!("unexpected reply {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_finds_our_connection_and_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (_s, _) = l.accept().unwrap();
        let mut all = dump_tcp().unwrap();
        fill_owners(&mut all);
        let client = all
            .iter()
            .find(|e| e.local == c.local_addr().unwrap() && e.remote == addr)
            .expect("client socket listed");
        assert_eq!(client.state, TcpState::Established);
        assert!(client.tcp_info.is_some());
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(
            client.owners.iter().any(|o| o.pid == me),
            "{:?}",
            client.owners
        );
        assert_eq!(client.keepalive_on(), Some(false));
        assert!(
            all.iter()
                .any(|e| e.local == addr && e.state == TcpState::Listen)
        );
    }
}
