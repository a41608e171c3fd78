//! Every difference between operating systems lives here, and nowhere else: no other module
//! has a `cfg(unix)` or `cfg(windows)`. `unix.rs` (Linux first) and `windows.rs` implement the
//! same functions; the rest of the crate calls them through this module.
//!
//! What each side provides:
//! - durability: folder sync, rename and replace (write-through on Windows), making a batch
//!   of written files durable, recovery's flush of a whole filesystem, early writeback;
//! - file identity and access: modes (POSIX bits; on Windows the read-only attribute),
//!   owner-only folders and files (mode 0700/0600; on Windows a protected DACL for the owner,
//!   SYSTEM and Administrators), keeping an original's owner or ACL on its replacement,
//!   positional reads, symlinks, volume identity, free space;
//! - path names the OS refuses (Windows' reserved device names);
//! - which processes hold files open (Windows' Restart Manager; nothing to ask on Linux,
//!   where an open file never blocks a rename);
//! - the shell that runs the administrator's commands (`sh -c`, `cmd.exe /C`), and the quoting
//!   of a command line printed for them to paste (POSIX single quotes; double quotes for
//!   cmd.exe and PowerShell: `quote.rs`, pure functions tested on every OS);
//! - the Windows service manager (stop, start, query), absent on Linux.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

mod quote;

/// A process holding a file open under a folder the upgrade changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub name: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.name, self.pid)
    }
}

/// The state of an OS service, as the service manager reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Only windows.rs reads a service's state.
#[cfg_attr(not(windows), allow(dead_code))]
pub enum ServiceState {
    Stopped,
    Running,
    /// Start or stop pending, paused, ...
    Changing,
}

/// Whether `path` is `base` or inside it, comparing names as the OS does (case-insensitively
/// on Windows: `runtime` is `Runtime`).
pub fn path_starts_with(path: &std::path::Path, base: &std::path::Path) -> bool {
    let mut p = path.components();
    for b in base.components() {
        match p.next() {
            Some(c)
                if same_name(
                    &c.as_os_str().to_string_lossy(),
                    &b.as_os_str().to_string_lossy(),
                ) => {}
            _ => return false,
        }
    }
    true
}

/// Why the OS cannot hold `path` (a component it refuses), if so.
pub fn refused_path(path: &std::path::Path) -> Option<String> {
    path.components().find_map(|c| match c {
        std::path::Component::Normal(n) => {
            let n = n.to_string_lossy();
            refused_name(&n).map(|why| format!("'{n}' is {why}"))
        }
        _ => None,
    })
}

/// `args` as one line for the administrator to paste into this OS's shell: each argument as
/// `shell_quote` writes it (quoted only where it must be), separated by spaces. An argument
/// that is not Unicode is shown lossily (then the line no longer names it).
pub fn command_line<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| shell_quote(&a.as_ref().to_string_lossy()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which request to stop arrived: an interrupt (SIGINT; Ctrl+C or Ctrl+Break on Windows) or
/// a termination (SIGTERM; the console closing, a log-off or a shutdown on Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt = 1,
    Terminate = 2,
}

impl StopSignal {
    /// The shell convention, 128 + the signal number: 130 (SIGINT), 143 (SIGTERM).
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// A request to stop at the next durable point, set by the OS's signal (or console) handler
/// that [`watch_stop_requests`] installs and read by the engine between steps. Until it is
/// watched it never fires. Clones share the request.
#[derive(Debug, Clone, Default)]
pub struct StopRequest {
    signal: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Set by the first request: a second one ends the process at once.
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StopRequest {
    /// The first request to stop, if one arrived.
    pub fn get(&self) -> Option<StopSignal> {
        match self.signal.load(std::sync::atomic::Ordering::SeqCst) {
            1 => Some(StopSignal::Interrupt),
            2 => Some(StopSignal::Terminate),
            _ => None,
        }
    }
}
