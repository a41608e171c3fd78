//! `tds-test-server --db FILE --port N [--user U --password P] [--database NAME]`

use std::path::PathBuf;

use tds_test_server::{Options, TestServer};

fn usage() -> ! {
    eprintln!(
        "usage: tds-test-server --db FILE --port N [--user U --password P] [--database NAME]"
    );
    std::process::exit(2)
}

fn main() {
    let mut db: Option<PathBuf> = None;
    let mut port: u16 = 1433;
    let mut options = Options {
        user: None,
        password: None,
        ..Options::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--db" => db = Some(PathBuf::from(val())),
            "--port" => port = val().parse().unwrap_or_else(|_| usage()),
            "--user" => options.user = Some(val()),
            "--password" => options.password = Some(val()),
            "--database" => options.database = val(),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let Some(db) = db else { usage() };
    let server = match TestServer::try_start(&db, options, port) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tds-test-server: {e}");
            std::process::exit(1)
        }
    };
    println!(
        "tds-test-server listening on 127.0.0.1:{} ({})",
        server.port(),
        server.connection_string()
    );
    server.wait();
}
