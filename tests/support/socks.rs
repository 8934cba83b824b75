//! A loopback SOCKS5 proxy (RFC 1928, CONNECT only) for the length of a test, with no
//! authentication or with username/password authentication (RFC 1929). It records what each
//! client offered and asked for, and relays bytes both ways.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What one client did.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The authentication methods the client offered (0 none, 2 username/password).
    pub methods: Vec<u8>,
    /// The username and password it sent, when it sent any.
    pub credentials: Option<(String, String)>,
    /// Where it asked to connect, `host:port`.
    pub target: Option<String>,
}

pub struct SocksProxy {
    pub address: String,
    sessions: Arc<Mutex<Vec<Session>>>,
}

impl SocksProxy {
    /// `credentials`: the username and password the proxy requires, or `None` for a proxy
    /// that asks for none.
    pub fn start(credentials: Option<(&str, &str)>) -> SocksProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sessions);
        let required = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                let required = required.clone();
                std::thread::spawn(move || {
                    let mut session = Session::default();
                    let upstream = handshake(&client, required.as_ref(), &mut session);
                    seen.lock().expect("sessions").push(session);
                    if let Some(upstream) = upstream {
                        relay(client, upstream);
                    }
                });
            }
        });
        SocksProxy { address, sessions }
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().expect("sessions").clone()
    }
}

fn read_exact<const N: usize>(mut stream: &TcpStream) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

fn read_vec(mut stream: &TcpStream, length: usize) -> Option<Vec<u8>> {
    let mut bytes = vec![0u8; length];
    stream.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// The greeting, the authentication and the CONNECT request; the upstream connection when
/// all went through.
fn handshake(
    mut client: &TcpStream,
    required: Option<&(String, String)>,
    session: &mut Session,
) -> Option<TcpStream> {
    let [version, count] = read_exact::<2>(client)?;
    if version != 5 {
        return None;
    }
    session.methods = read_vec(client, usize::from(count))?;
    let method = if required.is_some() { 2 } else { 0 };
    if !session.methods.contains(&method) {
        let _ = client.write_all(&[5, 0xFF]);
        return None;
    }
    client.write_all(&[5, method]).ok()?;
    if let Some((user, password)) = required {
        let [_, length] = read_exact::<2>(client)?;
        let given_user = read_vec(client, usize::from(length))?;
        let [length] = read_exact::<1>(client)?;
        let given_password = read_vec(client, usize::from(length))?;
        let given = (
            String::from_utf8_lossy(&given_user).into_owned(),
            String::from_utf8_lossy(&given_password).into_owned(),
        );
        let accepted = given.0 == *user && given.1 == *password;
        session.credentials = Some(given);
        client.write_all(&[1, u8::from(!accepted)]).ok()?;
        if !accepted {
            return None;
        }
    }
    let [_, command, _, kind] = read_exact::<4>(client)?;
    let host = match kind {
        1 => std::net::Ipv4Addr::from(read_exact::<4>(client)?).to_string(),
        3 => {
            let [length] = read_exact::<1>(client)?;
            String::from_utf8_lossy(&read_vec(client, usize::from(length))?).into_owned()
        }
        4 => format!("[{}]", std::net::Ipv6Addr::from(read_exact::<16>(client)?)),
        _ => return None,
    };
    let port = u16::from_be_bytes(read_exact::<2>(client)?);
    let target = format!("{host}:{port}");
    session.target = Some(target.clone());
    let upstream = (command == 1)
        .then(|| TcpStream::connect(&target).ok())
        .flatten();
    // Reply: succeeded (0) or connection refused (5), bound to 0.0.0.0:0.
    let status = if upstream.is_some() { 0 } else { 5 };
    client
        .write_all(&[5, status, 0, 1, 0, 0, 0, 0, 0, 0])
        .ok()?;
    upstream
}

fn relay(client: TcpStream, upstream: TcpStream) {
    let (mut from_client, mut to_upstream) = (
        client.try_clone().expect("clone"),
        upstream.try_clone().expect("clone"),
    );
    std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_upstream));
    let (mut from_upstream, mut to_client) = (upstream, client);
    let _ = std::io::copy(&mut from_upstream, &mut to_client);
}
