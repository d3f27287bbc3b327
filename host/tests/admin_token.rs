//! `civic admin token`: an operator locked out of the API issues a city admin token from
//! the store itself, while the server is stopped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

mod common;
use common::start;

fn get(addr: &str, path: &str, token: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out[9..12].parse().unwrap()
}

#[test]
fn an_operator_issues_a_city_admin_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("civic-data");
    drop(start(&data));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the store is private to its owner");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(["admin", "token", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("civic_"), "{token}");
    let server = start(&data);
    // The scheme in lower case is accepted too.
    assert_eq!(get(&server.addr, "/v1/tokens", &token), 200);
    // A running server holds the store: the command says so instead of corrupting it.
    let busy = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(["admin", "token", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!busy.status.success());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(err.contains("stop the server"), "{err}");
    // No store at all: a clear message.
    let none = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(["admin", "token", "--data"])
        .arg(dir.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("holds no store"));
}
