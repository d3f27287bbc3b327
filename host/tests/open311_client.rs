//! A client nobody here wrote: the `georeport` Python package (installed by `.ci/run`)
//! reads services, a definition and requests from a running `civic serve`, in JSON and XML.

use std::io::{Read, Write};
use std::process::Command;

mod common;

#[test]
fn the_georeport_python_client_works_against_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::start(&data);
    let addr = server.addr.clone();
    {
        let token = std::fs::read_to_string(data.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        let body = format!(
            "api_key={token}&service_code=noise&address_id=jiyang%2Fyuehe%2Fgrid-01&description=loud"
        );
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "POST /open311/v2/requests.json HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 201"), "{out}");
        let json: serde_json::Value =
            serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
        let id = json[0]["service_request_id"].as_str().unwrap().to_owned();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/open311/georeport_client.py"
        );
        let py = Command::new("python3")
            .args([script, &format!("http://{addr}/open311/v2"), &id])
            .output()
            .expect("python3 runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&py.stdout),
            String::from_utf8_lossy(&py.stderr)
        );
        assert!(
            py.status.success(),
            "the georeport client failed (is `pip install georeport==0.3.1` done? .ci/run does it):\n{text}"
        );
        assert!(
            text.contains("georeport client: all checks passed"),
            "{text}"
        );
    }
}
