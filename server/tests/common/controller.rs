//! Controller tests: OS-chosen ports for a peers list, and blocking
//! RocketMQ remoting calls to a controller port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ferromq_controller::request_code as rc;
use ferromq_server::remoting::codec::{decode_frame, encode};
use ferromq_server::remoting::RemotingCommand;

/// Free ports picked by the OS (bound, then released: the controllers must
/// know each other's addresses before they start).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// `controllerDLegerPeers` for controllers n0, n1, ... on `ports`.
pub fn peers(ports: &[u16]) -> String {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// A connection to a loopback port with a 10 s read timeout.
pub fn connect(port: u16) -> Option<TcpStream> {
    let s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Some(s)
}

/// One request on `s`; `None` when the peer hangs up.
pub fn call_on(s: &mut TcpStream, req: &RemotingCommand) -> Option<RemotingCommand> {
    let mut req = req.clone();
    req.opaque = 7;
    s.write_all(&encode(&req).unwrap()).ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).ok()?;
    let resp = decode_frame(&frame).ok()?;
    assert_eq!(resp.opaque, 7);
    Some(resp)
}

/// One request on a new connection; `None` when the port cannot be reached
/// or the peer hangs up.
pub fn try_call(port: u16, req: &RemotingCommand) -> Option<RemotingCommand> {
    call_on(&mut connect(port)?, req)
}

/// The port of the controller that says it leads (asked in turn, for at
/// most 30 s).
pub fn leader_port(ports: &[u16]) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for &p in ports {
            let req = RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO);
            if let Some(r) = try_call(p, &req) {
                if r.ext_fields.opt_str("isLeader") == Some("true") {
                    return p;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no controller leader within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
