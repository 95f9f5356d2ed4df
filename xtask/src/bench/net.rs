//! The bench's own networking: the proxy that counts the bytes pushed to the
//! registry, a minimal keep-alive client for the Invoke API, and free ports.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use crate::Result;

/// A TCP proxy to the registry that counts the bytes clients send.
pub(super) struct CountingProxy {
    /// `127.0.0.1:PORT`.
    pub(super) address: String,
    sent: Arc<AtomicU64>,
}

impl CountingProxy {
    pub(super) fn start(upstream: &'static str) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|err| format!("failed to start the counting proxy: {err}"))?;
        let address = listener
            .local_addr()
            .map_err(|err| format!("the counting proxy has no address: {err}"))?
            .to_string();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        // The thread lives as long as the process; the bench exits soon after.
        thread::spawn(move || {
            for client in listener.incoming().map_while(io::Result::ok) {
                if let Err(err) = forward(client, upstream, &counter) {
                    say!("warning: counting proxy: {err}");
                }
            }
        });
        Ok(CountingProxy { address, sent })
    }

    pub(super) fn reset(&self) {
        self.sent.store(0, Ordering::SeqCst);
    }

    pub(super) fn bytes(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Connects `client` to `upstream` with one thread per direction.
fn forward(client: TcpStream, upstream: &str, sent: &Arc<AtomicU64>) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let (client_read, server_write) = (client.try_clone()?, server.try_clone()?);
    let counter = Arc::clone(sent);
    thread::spawn(move || pump(client_read, server_write, Some(&counter)));
    thread::spawn(move || pump(server, client, None));
    Ok(())
}

/// Copies `from` to `to` until either side closes, counting into `count`.
fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<&AtomicU64>) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(count) = count {
            count.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A minimal HTTP/1.1 keep-alive client for the Invoke API.
pub(super) struct InvokeClient {
    address: String,
    connection: Option<BufReader<TcpStream>>,
}

impl InvokeClient {
    pub(super) fn new(address: &str) -> InvokeClient {
        InvokeClient {
            address: address.to_owned(),
            connection: None,
        }
    }

    /// POSTs `body`; returns the status. A failed connection is dropped and
    /// reopened on the next call.
    pub(super) fn invoke(&mut self, body: &[u8]) -> io::Result<u16> {
        let result = self.exchange(body);
        if !matches!(result, Ok((_, true))) {
            self.connection = None;
        }
        result.map(|(status, _)| status)
    }

    /// One request and response; returns the status and whether the
    /// connection can be reused.
    fn exchange(&mut self, body: &[u8]) -> io::Result<(u16, bool)> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect(&self.address)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                self.connection.insert(BufReader::new(stream))
            }
        };
        let head = format!(
            "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        let stream = connection.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        read_response(connection)
    }
}

/// Reads one response (Content-Length or chunked); returns the status and
/// whether the connection stays open.
fn read_response(reader: &mut impl BufRead) -> io::Result<(u16, bool)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    let (mut length, mut chunked, mut keep_alive) = (None, false, true);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("the connection closed in the headers"));
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match (name.trim(), value.trim()) {
                ("content-length", value) => length = value.parse().ok(),
                ("transfer-encoding", value) => chunked = value.contains("chunked"),
                ("connection", "close") => keep_alive = false,
                _ => {}
            }
        }
    }
    if chunked {
        read_chunks(reader)?;
    } else if let Some(length) = length {
        io::copy(&mut reader.take(length), &mut io::sink())?;
    } else {
        io::copy(reader, &mut io::sink())?;
        keep_alive = false;
    }
    Ok((status, keep_alive))
}

/// Skips a chunked body, trailers included.
fn read_chunks(reader: &mut impl BufRead) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        io::copy(&mut reader.take(size + 2), &mut io::sink())?;
    }
}

/// `N` addresses with ports that were free a moment ago (and distinct: they
/// are all held until every one is chosen).
pub(super) fn free_addresses<const N: usize>() -> Result<[String; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|err| format!("no free port: {err}"))?;
    let addresses = listeners
        .iter()
        .map(|listener| listener.local_addr().map(|a| a.to_string()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|err| format!("no free port: {err}"))?;
    addresses.try_into().map_err(|_| "no free port".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_with_length_or_chunks() {
        let mut fixed = io::Cursor::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"[..]);
        assert_eq!(read_response(&mut fixed).ok(), Some((200, true)));
        let mut chunked = io::Cursor::new(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"[..],
        );
        assert_eq!(read_response(&mut chunked).ok(), Some((200, false)));
        assert_eq!(chunked.position() as usize, chunked.get_ref().len());
    }
}
