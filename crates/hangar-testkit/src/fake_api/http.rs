//! A small HTTP/1.1 server on tokio: enough for a Kubernetes client (keep-alive, GET requests,
//! `Content-Length` bodies), with every request recorded before it is answered.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::RecordedRequest;
use super::catalogue::Catalogue;
use super::routes::{Response, respond};

/// Requests whose head is larger than this are dropped: clients never send such heads.
const MAX_HEAD: usize = 64 * 1024;

pub(crate) async fn serve(
    listener: TcpListener,
    address: SocketAddr,
    catalogue: Arc<Catalogue>,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
) {
    let address = address.to_string();
    while let Ok((stream, _)) = listener.accept().await {
        // Small responses must not wait on Nagle's algorithm; failing to set it only slows.
        let _ = stream.set_nodelay(true);
        let catalogue = Arc::clone(&catalogue);
        let requests = Arc::clone(&requests);
        let address = address.clone();
        tokio::spawn(async move {
            // A broken connection only ends that connection; the client sees the error.
            let _ = serve_connection(stream, &address, &catalogue, &requests).await;
        });
    }
}

/// A parsed request head.
struct Head {
    request: RecordedRequest,
    content_length: usize,
    close: bool,
}

async fn serve_connection(
    mut stream: TcpStream,
    address: &str,
    catalogue: &Catalogue,
    requests: &Mutex<Vec<RecordedRequest>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let Some(head_end) = read_head(&mut stream, &mut buffer).await? else {
            return Ok(());
        };
        let head = match parse_head(&buffer[..head_end]) {
            Some(head) => head,
            None => {
                write_response(&mut stream, &bad_request(), true).await?;
                return Ok(());
            }
        };
        // Skip the body: the fake server answers reads only.
        let wanted = head_end + 4 + head.content_length;
        while buffer.len() < wanted {
            if read_more(&mut stream, &mut buffer).await? == 0 {
                return Ok(());
            }
        }
        buffer.drain(..wanted);
        requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(head.request.clone());
        let response = respond(catalogue, &head.request, address);
        write_response(&mut stream, &response, head.close).await?;
        if head.close {
            return Ok(());
        }
    }
}

/// Reads until `buffer` holds a whole request head; returns where the blank line starts, or
/// `None` when the client closed the connection.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(end));
        }
        if buffer.len() > MAX_HEAD || read_more(stream, buffer).await? == 0 {
            return Ok(None);
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?;
    let version = request_line.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut accept = None;
    let mut content_length = 0;
    let mut close = version == "HTTP/1.0";
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "accept" => accept = Some(value.to_owned()),
            "content-length" => content_length = value.parse().ok()?,
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    Some(Head {
        request: RecordedRequest {
            method,
            path: percent_decode(path),
            query: parse_query(query),
            accept,
        },
        content_length,
        close,
    })
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (form encoding, as kube writes query strings).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

fn bad_request() -> Response {
    Response {
        status: 400,
        text: None,
        body: serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "malformed HTTP request", "reason": "BadRequest", "code": 400
        }),
    }
}

async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    close: bool,
) -> std::io::Result<()> {
    let (body, content_type) = match &response.text {
        Some(text) => (text.clone(), "text/plain"),
        None => (
            serde_json::to_vec(&response.body).map_err(std::io::Error::other)?,
            "application/json",
        ),
    };
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        response.status,
        reason_phrase(response.status),
        body.len()
    );
    // One write: a head and a body in two segments would wait on Nagle and delayed ACKs.
    let mut message = head.into_bytes();
    message.extend_from_slice(&body);
    stream.write_all(&message).await?;
    stream.flush().await
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let query = parse_query("limit=2&continue=offset%3D4&labelSelector=a+b");
        assert_eq!(query[1], ("continue".to_owned(), "offset=4".to_owned()));
        assert_eq!(query[2].1, "a b");
    }

    #[test]
    fn heads_are_parsed() {
        let head = parse_head(
            b"GET /api/v1/secrets?limit=500 HTTP/1.1\r\nHost: x\r\naccept: application/json;as=PartialObjectMetadataList",
        )
        .unwrap();
        assert_eq!(head.request.path, "/api/v1/secrets");
        assert!(head.request.is_metadata_only());
        assert!(!head.close);
    }
}
