//! The little HTTP the client needs (a session token, the room list), over a
//! plain TCP connection: HTTP/1.1, one request per connection.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ClientError, ServerUrl};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `method path` with an optional JSON body, as the holder of the
/// socket token `bearer` when one is given; parses a JSON 2xx response (an
/// empty one as JSON `null`, for `T = ()`).
pub async fn request<T: DeserializeOwned>(
    server: &ServerUrl,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&impl Serialize>,
) -> Result<T, ClientError> {
    let body = body
        .map(|b| serde_json::to_string(b).expect("request bodies serialize"))
        .unwrap_or_default();
    let authorization = bearer
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let exchange = async {
        let mut stream = TcpStream::connect(server.authority()).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n\
             {authorization}Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n",
            host = server.authority(),
            len = body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            return Err(ClientError::Unreachable {
                server: server.to_string(),
                cause: error.to_string(),
            });
        }
        Err(_) => {
            return Err(ClientError::Unreachable {
                server: server.to_string(),
                cause: "no answer within 10 s".into(),
            });
        }
    };
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| ClientError::Protocol("HTTP response without a header end".into()))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ClientError::Protocol(format!(
                "malformed HTTP status line: {}",
                head.lines().next().unwrap_or("")
            ))
        })?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    if !(200..300).contains(&status) {
        return Err(ClientError::Http {
            status,
            body: body.chars().take(300).collect(),
        });
    }
    let body = if body.trim().is_empty() {
        "null"
    } else {
        &body
    };
    serde_json::from_str(body)
        .map_err(|e| ClientError::Protocol(format!("unexpected JSON from {path}: {e}")))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dechunks_bodies() {
        assert_eq!(
            super::dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
