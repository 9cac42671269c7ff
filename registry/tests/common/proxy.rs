//! A fault-injecting HTTP/1.1 proxy between the client and the registry.
//!
//! Each client connection carries one request (the proxy adds `Connection: close` upstream
//! and downstream), so a fault applies to exactly the request a rule matches.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every request line seen, with the fault applied to it.
pub type RequestLog = Arc<Mutex<Vec<(String, Option<Fault>)>>>;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 without reaching the registry.
    Status500,
    /// Relay the response headers and this many body bytes, then close.
    DropResponseAfter(usize),
    /// Close right after the response headers (a truncated response).
    TruncateAfterHeaders,
    /// Wait this long before relaying the response.
    Delay(Duration),
    /// Flip one body byte at this offset.
    CorruptByte(usize),
    /// Remove the Range header: the registry then sends the whole blob.
    StripRange,
    /// Relay this many request-body bytes, then close (an upload cut mid-way).
    DropRequestAfter(usize),
}

/// A fault for requests whose method and path match, `times` times (`usize::MAX`: always).
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub path_contains: String,
    pub fault: Fault,
    pub times: usize,
}

/// The proxy; dropped, it stops accepting.
pub struct FaultProxy {
    pub addr: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Every request line seen, with the fault applied (if any).
    pub log: RequestLog,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let log: RequestLog = Arc::default();
        let upstream = upstream.to_string();
        let (r, l) = (rules.clone(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (r, l, up) = (r.clone(), l.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = handle(sock, &up, r, l).await;
                });
            }
        });
        FaultProxy {
            addr,
            rules,
            log,
            task,
        }
    }

    /// Adds a rule.
    pub fn add(&self, method: &'static str, path_contains: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path_contains: path_contains.to_string(),
            fault,
            times,
        });
    }

    /// Removes all rules.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// How many requests got `fault`.
    pub fn applied(&self, fault: &Fault) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, f)| f.as_ref() == Some(fault))
            .count()
    }

    /// Requests seen whose line contains `needle`.
    pub fn requests_matching(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(line, _)| line.contains(needle))
            .count()
    }
}

/// Reads up to the end of the head; returns (head, bytes already read past it).
async fn read_head(sock: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(pos + 4);
            return Ok((buf, rest));
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Rewrites a head: drops `Connection`/`Keep-Alive` (and `Range` when asked), adds close.
fn rewrite_head(head: &[u8], strip_range: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if i > 0
            && (name == "connection" || name == "keep-alive" || (strip_range && name == "range"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

async fn handle(
    mut client: TcpStream,
    upstream: &str,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: RequestLog,
) -> std::io::Result<()> {
    let (head, early_body) = read_head(&mut client).await?;
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let method = line.split(' ').next().unwrap_or("").to_string();
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let fault = {
        let mut rules = rules.lock().unwrap();
        let hit = rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(&r.path_contains));
        hit.map(|r| {
            if r.times != usize::MAX {
                r.times -= 1;
            }
            r.fault.clone()
        })
    };
    log.lock().unwrap().push((line, fault.clone()));
    if fault == Some(Fault::Status500) {
        let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#;
        let resp = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(resp.as_bytes()).await?;
        return client.shutdown().await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    server
        .write_all(&rewrite_head(&head, fault == Some(Fault::StripRange)))
        .await?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Request body: relay (possibly cut) in its own task.
    let request_limit = match fault {
        Some(Fault::DropRequestAfter(n)) => Some(n),
        _ => None,
    };
    let upload = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut pending = early_body;
        let mut chunk = vec![0u8; 65536];
        loop {
            if !pending.is_empty() {
                let take = match request_limit {
                    Some(limit) => pending.len().min(limit.saturating_sub(sent)),
                    None => pending.len(),
                };
                if server_write.write_all(&pending[..take]).await.is_err() {
                    return false;
                }
                sent += take;
                if request_limit.is_some_and(|l| sent >= l) {
                    // Cut the upload: both directions die.
                    return true;
                }
            }
            match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => pending = chunk[..n].to_vec(),
            }
        }
    });
    if request_limit.is_some() {
        if upload.await.unwrap_or(false) {
            // The upload was cut: close the client connection without a response.
            return Ok(());
        }
        return Ok(());
    }
    // Response: head, then body with faults.
    let (resp_head, mut body_start) = match read_head_split(&mut server_read).await {
        Ok(v) => v,
        Err(_) => return Ok(()),
    };
    if let Some(Fault::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    client_write
        .write_all(&rewrite_head(&resp_head, false))
        .await?;
    if fault == Some(Fault::TruncateAfterHeaders) {
        return Ok(());
    }
    let mut offset = 0usize;
    let mut chunk = vec![0u8; 65536];
    loop {
        let mut data = if !body_start.is_empty() {
            std::mem::take(&mut body_start)
        } else {
            match server_read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => chunk[..n].to_vec(),
            }
        };
        match fault {
            Some(Fault::DropResponseAfter(limit)) if offset + data.len() >= limit => {
                let keep = limit.saturating_sub(offset);
                client_write.write_all(&data[..keep]).await?;
                return Ok(());
            }
            Some(Fault::CorruptByte(at)) if at >= offset && at < offset + data.len() => {
                data[at - offset] ^= 0xff;
            }
            _ => {}
        }
        offset += data.len();
        client_write.write_all(&data).await?;
    }
    upload.abort();
    client_write.shutdown().await
}

async fn read_head_split(
    sock: &mut tokio::net::tcp::OwnedReadHalf,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(pos + 4);
            return Ok((buf, rest));
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
