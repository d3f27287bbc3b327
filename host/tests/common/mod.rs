//! Starting the real `civic serve` on a free loopback port for a test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// A running server; killed and waited for when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The "admin token ..." line, printed on first start only.
    pub token_line: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Stops the server as a service manager does (SIGTERM) and waits for it to exit.
    #[allow(dead_code)] // not every test binary sharing this module calls it
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        self.child.wait().unwrap()
    }
}

/// Starts `civic serve --data DATA --listen 127.0.0.1:0` and waits until it listens.
#[allow(dead_code)] // not every test binary sharing this module calls it
pub fn start(data: &std::path::Path) -> Server {
    start_with(data, &[])
}

/// `civic serve --data DATA --listen 127.0.0.1:0`, not yet run.
pub fn serve_command(data: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_civic"));
    cmd.args(["serve", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"]);
    cmd
}

/// [`start`] with more options.
pub fn start_with(data: &std::path::Path, extra: &[&str]) -> Server {
    let child = serve_command(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned by `Server` at once, so it is killed and waited for even if reading fails.
    let mut server = Server {
        child,
        addr: String::new(),
        token_line: None,
    };
    let mut lines = BufReader::new(server.child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if line.starts_with("admin token") {
            server.token_line = Some(line);
        } else if let Some(addr) = line.strip_prefix("civic-rules listening on http://") {
            server.addr = addr.to_owned();
            return server;
        }
    }
}

/// One HTTP/1.1 request with a bearer token; the status and the body as JSON (`Null` when
/// it is not JSON).
#[allow(dead_code)] // not every test binary sharing this module calls it
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Runs `civic ARGS` to the end.
#[allow(dead_code)] // not every test binary sharing this module calls it
pub fn civic(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("civic runs")
}
