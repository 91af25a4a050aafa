//! Requests and responses as tests write and read them, and a minimal HTTP/1.1
//! client that sends them over TCP: one request per connection
//! (`Connection: close`), the whole response read into memory. Enough to speak to
//! our own server without pulling a full client library into the build. The
//! same requests go to the router in-process through [`Request::to_http`] and
//! [`Response::from_http`].

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct Request {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    pub fn new(method: &'static str, path: &str) -> Request {
        Request {
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    pub fn post(path: &str) -> Request {
        Request::new("POST", path)
    }

    pub fn put(path: &str) -> Request {
        Request::new("PUT", path)
    }

    pub fn delete(path: &str) -> Request {
        Request::new("DELETE", path)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends a cookie, given as `name=value` (what [`Response::cookie`] returns).
    pub fn cookie(self, cookie: &str) -> Request {
        self.header("Cookie", cookie)
    }

    pub fn json(self, value: &Value) -> Request {
        self.raw_body("application/json", value.to_string().as_bytes())
    }

    /// A form body, `application/x-www-form-urlencoded`, as a browser sends it.
    pub fn form(self, fields: &[(&str, &str)]) -> Request {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.raw_body("application/x-www-form-urlencoded", body.as_bytes())
    }

    pub fn raw_body(mut self, content_type: &str, body: &[u8]) -> Request {
        self.headers
            .push(("Content-Type".into(), content_type.into()));
        self.body = body.to_vec();
        self
    }

    /// The request as the router takes it in-process, naming `host` as its
    /// `Host`, with the headers the TCP client would send.
    pub fn to_http(&self, host: &str) -> axum::http::Request<axum::body::Body> {
        let mut builder = axum::http::Request::builder()
            .method(self.method)
            .uri(&self.path)
            .header("Host", host)
            .header("Content-Length", self.body.len());
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(axum::body::Body::from(self.body.clone()))
            .unwrap_or_else(|e| panic!("{} {}: not a valid request: {e}", self.method, self.path))
    }

    pub async fn send(&self, addr: SocketAddr) -> Response {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to the test server");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&self.body).await.unwrap();
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .expect("read the response");
        Response::parse(&raw).unwrap_or_else(|e| {
            panic!(
                "{} {}: unreadable response ({e}): {:?}",
                self.method,
                self.path,
                String::from_utf8_lossy(&raw)
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The full `Set-Cookie` header that sets cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.headers_named("set-cookie")
            .find(|v| v.starts_with(&prefix))
    }

    /// `name=value` of a cookie this response sets, ready for [`Request::cookie`].
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookie(name)
            .map(|header| header.split(';').next().unwrap_or_default().to_string())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// A response the router gave in-process, its whole body read.
    pub async fn from_http(response: axum::response::Response) -> Response {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read the response body");
        let body = String::from_utf8(body.to_vec())
            .unwrap_or_else(|e| panic!("a {status} response's body is not UTF-8: {e}"));
        Response {
            status,
            headers,
            body,
        }
    }

    fn parse(raw: &[u8]) -> Result<Response, String> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of headers")?;
        let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or("no status line")?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no status code")?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        if chunked {
            body = dechunk(&body)?;
        }
        let body = String::from_utf8(body).map_err(|e| e.to_string())?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|e| e.to_string())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
