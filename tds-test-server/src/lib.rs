//! A small TDS 7.3/7.4 test server that executes T-SQL statements on SQLite.
//!
//! Dev-only: it speaks enough TDS for the `tiberius` client (no TLS, SQL
//! authentication) and understands a deliberately small T-SQL subset; any
//! other statement gets an ERROR token instead of being guessed at. See
//! `README.md` for the supported statements and conventions (identity
//! columns are columns whose declared type contains `IDENTITY`, e.g.
//! `id BIGINT IDENTITY PRIMARY KEY`).

// Test-only scratch files: the engine's durable_fs rule (clippy.toml) does not apply here.
#![allow(clippy::disallowed_methods)]

pub mod protocol;
pub mod session;
pub mod sql;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use protocol::{Response, SqlError, Value, DONE_ERROR};
use session::{Session, Shared};

/// Server options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Required login name; `None` accepts any.
    pub user: Option<String>,
    /// Required password; `None` accepts any.
    pub password: Option<String>,
    /// Name of the (single) database; logins may ask for it or for none.
    pub database: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            user: Some("sa".into()),
            password: Some("TestServer#1".into()),
            database: "Usercube".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io: {0}")]
    Io(#[from] io::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

type Conns = Arc<Mutex<Vec<(u64, TcpStream)>>>;

/// A running server; stops (and disconnects every client) on drop.
pub struct TestServer {
    addr: SocketAddr,
    options: Options,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    conns: Conns,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 with an ephemeral port. Panics if it
    /// cannot bind or open the database.
    pub fn start(db_path: &Path, options: Options) -> TestServer {
        Self::try_start(db_path, options, 0).expect("start tds-test-server")
    }

    /// Starts a server on 127.0.0.1:`port` (0 = ephemeral).
    pub fn try_start(db_path: &Path, options: Options, port: u16) -> Result<TestServer, Error> {
        // Check the database opens (and switch it to WAL once).
        {
            let c = rusqlite::Connection::open(db_path)?;
            let _: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        }
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(
            db_path.to_path_buf(),
            options.database.clone(),
            options.user.clone(),
            options.password.clone(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Conns = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let stop = stop.clone();
            let conns = conns.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("tds-accept".into())
                .spawn(move || accept_loop(listener, shared, stop, conns))?
        };
        Ok(TestServer {
            addr,
            options,
            stop,
            shared,
            conns,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// ADO.NET connection string for this server.
    pub fn connection_string(&self) -> String {
        format!(
            "Server=tcp:127.0.0.1,{};Database={};User Id={};Password={};TrustServerCertificate=true;Encrypt=false",
            self.port(),
            self.options.database,
            self.options.user.as_deref().unwrap_or("sa"),
            self.options.password.as_deref().unwrap_or("")
        )
    }

    /// Same as [`connection_string`](Self::connection_string) but with
    /// `Encrypt=DANGER_PLAINTEXT`, which `tiberius` (built with a TLS
    /// feature) maps to `EncryptionLevel::NotSupported`; with `Encrypt=false`
    /// it would still attempt TLS, which this server does not speak.
    pub fn tiberius_connection_string(&self) -> String {
        self.connection_string()
            .replace("Encrypt=false", "Encrypt=DANGER_PLAINTEXT")
    }

    /// Blocks the calling thread until the server stops (for the binary).
    pub fn wait(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        self.shared.stopping.store(true, Ordering::SeqCst);
        for (_, s) in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wait (bounded) for the sessions to close their SQLite connections.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.shared.live.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>, conns: Conns) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            conns.lock().unwrap().push((id, clone));
        }
        let shared = shared.clone();
        let conns = conns.clone();
        shared.live.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("tds-conn-{id}"))
            .spawn({
                let shared = shared.clone();
                move || {
                    let _ = handle_connection(stream, shared.clone());
                    conns.lock().unwrap().retain(|(i, _)| *i != id);
                    shared.live.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if spawned.is_err() {
            shared.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn handle_connection(mut stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    use protocol::*;
    let mut packet_size = 4096usize;
    let mut session: Option<Session> = None;
    while let Some((ty, payload)) = read_message(&mut stream)? {
        match ty {
            PKT_PRELOGIN => {
                write_message(&mut stream, PKT_REPLY, &prelogin_response(), packet_size)?;
            }
            PKT_LOGIN7 => {
                let mut resp = Response::default();
                let login = match parse_login7(&payload) {
                    Some(l) => l,
                    None => return Ok(()),
                };
                let user_ok = shared.user.as_ref().is_none_or(|u| *u == login.user)
                    && shared
                        .password
                        .as_ref()
                        .is_none_or(|p| *p == login.password);
                let db_ok = login.database.is_empty()
                    || login.database.eq_ignore_ascii_case(&shared.db_name);
                let fail = if !user_ok {
                    let mut e =
                        SqlError::new(18456, format!("Login failed for user '{}'.", login.user));
                    e.class = 14;
                    Some(e)
                } else if !db_ok {
                    let mut e = SqlError::new(
                        4060,
                        format!(
                            "Cannot open database \"{}\" requested by the login. The login failed.",
                            login.database
                        ),
                    );
                    e.class = 11;
                    Some(e)
                } else {
                    None
                };
                if let Some(e) = fail {
                    resp.error(&e);
                    resp.done(DONE_ERROR, 0);
                    write_message(&mut stream, PKT_REPLY, &resp.buf, packet_size)?;
                    return Ok(());
                }
                let s = match Session::open(shared.clone()) {
                    Ok(s) => s,
                    Err(e) => {
                        resp.error(&SqlError::new(4060, format!("Cannot open database: {e}")));
                        resp.done(DONE_ERROR, 0);
                        write_message(&mut stream, PKT_REPLY, &resp.buf, packet_size)?;
                        return Ok(());
                    }
                };
                let new_size = if login.packet_size >= 512 && login.packet_size <= 32767 {
                    login.packet_size as usize
                } else {
                    4096
                };
                resp.env_string(1, &shared.db_name, "master");
                resp.info(
                    5701,
                    &format!("Changed database context to '{}'.", shared.db_name),
                );
                resp.login_ack();
                resp.env_string(4, &new_size.to_string(), &packet_size.to_string());
                resp.done(0, 0);
                write_message(&mut stream, PKT_REPLY, &resp.buf, packet_size)?;
                packet_size = new_size;
                session = Some(s);
            }
            PKT_SQL_BATCH | PKT_RPC => {
                let Some(s) = session.as_mut() else {
                    return Ok(());
                };
                let mut resp = Response::default();
                // A bug in the server must not look like a network failure:
                // report it as an error and keep the session.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if ty == PKT_SQL_BATCH {
                        let text = parse_sql_batch(&payload);
                        s.run(&text, vec![], false, &mut resp);
                    } else {
                        match parse_rpc(&payload) {
                            Ok(req) => run_rpc(s, req, &mut resp),
                            Err(msg) => {
                                resp.error(&SqlError::new(8009, msg));
                                resp.done_proc(DONE_ERROR, 0);
                            }
                        }
                    }
                }));
                if let Err(panic) = outcome {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    resp = Response::default();
                    resp.error(&SqlError::new(
                        50000,
                        format!("tds-test-server internal error: {what}"),
                    ));
                    resp.done(DONE_ERROR, 0);
                }
                write_message(&mut stream, PKT_REPLY, &resp.buf, packet_size)?;
            }
            PKT_ATTENTION => {
                let mut resp = Response::default();
                resp.done(DONE_ATTN, 0);
                write_message(&mut stream, PKT_REPLY, &resp.buf, packet_size)?;
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

fn run_rpc(s: &mut Session, req: protocol::RpcRequest, resp: &mut Response) {
    let is_executesql = req.proc_id == Some(10)
        || req
            .proc_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("sp_executesql"));
    if !is_executesql {
        let name = req
            .proc_name
            .clone()
            .unwrap_or_else(|| format!("#{}", req.proc_id.unwrap_or(0)));
        resp.error(&SqlError::new(
            2812,
            format!("Could not find stored procedure '{name}'. (tds-test-server only supports sp_executesql over RPC)"),
        ));
        resp.done_proc(DONE_ERROR, 0);
        return;
    }
    let mut params = req.params.into_iter();
    let stmt = match params.next() {
        Some((_, Value::Text(t))) => t,
        _ => {
            resp.error(&SqlError::new(
                214,
                "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.",
            ));
            resp.done_proc(DONE_ERROR, 0);
            return;
        }
    };
    let _decls = params.next();
    let values: Vec<(String, Value)> = params.collect();
    s.run(&stmt, values, true, resp);
}
