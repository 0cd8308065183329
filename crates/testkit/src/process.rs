//! Child processes that cannot outlive the test that started them.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (by its pid, never by name) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    /// Spawns `cmd`; `name` is for messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { child, name: name.to_owned() }
    }

    /// Spawns `cmd` with stdin closed and stdout/stderr appended to `log`.
    pub fn spawn_logged(name: &str, cmd: &mut Command, log: &std::path::Path) -> Self {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        Self::spawn(name, cmd)
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child (by pid).
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on a pid we spawned and have not reaped yet; no memory is involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Freezes the child (SIGSTOP), as a crashed host would be.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws a frozen child (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Asks the child to stop (SIGTERM) and waits up to `timeout`, then kills it.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if !self.is_running() {
            return self.child.try_wait().unwrap();
        }
        self.thaw();
        self.signal(libc::SIGTERM);
        self.wait_timeout(timeout)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("(stopped {} pid {})", self.name, self.child.id());
        }
    }
}
