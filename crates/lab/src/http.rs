//! The one HTTP/1.1 client of vipd's tools: `vipd status`, the `vipd lab` demo (its node status
//! view and its client through the VIP) and the end-to-end tests talk to vipd's control server
//! and to backends through it. Built on hyper, which the daemon's control server (axum) compiles
//! already, so chunked bodies, `Connection: close` and bodies read to EOF are handled by a real
//! HTTP implementation instead of hand-written parsers.
//!
//! One request per fresh connection (`Connection: close`), to a `HOST:PORT` address. The async
//! functions run on the caller's tokio runtime; the `_blocking` ones build a current-thread
//! runtime of their own, for plain threads such as those [`crate::Lab::in_host`] runs inside a
//! lab namespace (the socket is made by the calling thread, so it lives in that namespace).

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Bodies larger than this are refused unless [`Client::max_body`] says otherwise: a status of a
/// few hundred servers is well under a megabyte.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No TCP connection (refused, unreachable, or not within the connect timeout).
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The whole exchange did not finish within [`Client::timeout`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke, or the answer was not HTTP.
    #[error("HTTP exchange failed: {0}")]
    Exchange(String),
    /// The body was larger than [`Client::max_body`].
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The server answered with a status other than 200 (see [`Response::success`]).
    #[error("HTTP {status} {reason}: {body}")]
    Status {
        status: u16,
        reason: String,
        body: String,
    },
    /// The method, path or a header is not valid HTTP.
    #[error("invalid request: {0}")]
    Request(String),
    /// The blocking functions could not start their runtime.
    #[error("cannot start a runtime for the request: {0}")]
    Runtime(#[source] std::io::Error),
}

/// An answer: its status code and whole body (chunked encoding undone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body of a `200 OK` answer; [`HttpError::Status`] with the trimmed body otherwise.
    pub fn success(self) -> Result<Vec<u8>, HttpError> {
        if self.status == 200 {
            Ok(self.body)
        } else {
            Err(HttpError::Status {
                status: self.status,
                body: self.text().trim().to_owned(),
                reason: self.reason,
            })
        }
    }
}

/// Request settings: timeouts, body limit, extra headers (a bearer token). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    max_body: usize,
    headers: Vec<(String, String)>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// No timeouts, [`DEFAULT_MAX_BODY`], no extra header.
    pub fn new() -> Self {
        Self {
            connect_timeout: None,
            timeout: None,
            max_body: DEFAULT_MAX_BODY,
            headers: Vec::new(),
        }
    }

    /// Bounds the TCP connect alone (a SYN sent to a dead host's MAC is lost without an error).
    #[must_use]
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = Some(limit);
        self
    }

    /// Bounds the whole request, connect included.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Refuses bodies larger than `bytes`.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Sends `name: value` with every request.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `Authorization: Bearer TOKEN` (the control server's `/api/v1` token).
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// `GET path` on `address` (`HOST:PORT`).
    pub async fn get(&self, address: &str, path: &str) -> Result<Response, HttpError> {
        self.send("GET", address, path, &[]).await
    }

    /// `POST path` on `address` with `body`.
    pub async fn post(
        &self,
        address: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        self.send("POST", address, path, body).await
    }

    /// `method path` on `address` with `body`, on a fresh connection.
    pub async fn send(
        &self,
        method: &str,
        address: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let exchange = self.exchange(method, address, path, body);
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or(Err(HttpError::Timeout(limit))),
            None => exchange.await,
        }
    }

    /// [`Client::get`] on a runtime of its own, for plain threads.
    pub fn get_blocking(&self, address: &str, path: &str) -> Result<Response, HttpError> {
        self.send_blocking("GET", address, path, &[])
    }

    /// [`Client::send`] on a runtime of its own, for plain threads.
    pub fn send_blocking(
        &self,
        method: &str,
        address: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(HttpError::Runtime)?
            .block_on(self.send(method, address, path, body))
    }

    async fn exchange(
        &self,
        method: &str,
        address: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, address)
            .header(hyper::header::CONNECTION, "close");
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|error| HttpError::Request(error.to_string()))?;

        let connect = TcpStream::connect(address);
        let connected = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {limit:?}"),
                    ))
                }),
            None => connect.await,
        };
        let stream = connected.map_err(|source| HttpError::Connect {
            address: address.to_owned(),
            source,
        })?;
        let exchange_error = |error: hyper::Error| HttpError::Exchange(error.to_string());
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(exchange_error)?;
        // The connection is driven beside the request; it ends with the answer (Connection: close).
        let driver = async move { connection.await.map_err(exchange_error) };
        let answer = async {
            let response = sender.send_request(request).await.map_err(exchange_error)?;
            let status = response.status();
            let body = Limited::new(response.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|error| {
                    if error.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge(self.max_body)
                    } else {
                        HttpError::Exchange(error.to_string())
                    }
                })?
                .to_bytes();
            Ok(Response {
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or_default().to_owned(),
                body: body.to_vec(),
            })
        };
        // A connection error after a whole answer (a reset instead of a FIN) loses nothing.
        let (answer, _connection_end) = tokio::join!(answer, driver);
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    use super::*;

    /// Answers one connection with the bytes of `answer`; yields the request head it read.
    fn serve_once(answer: &'static [u8]) -> (String, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback");
        let address = listener.local_addr().expect("bound").to_string();
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("a connection");
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut stream = reader.into_inner();
            let _ = stream.write_all(answer);
            head
        });
        (address, thread)
    }

    #[test]
    fn a_plain_answer_and_the_request_it_came_from() {
        let (address, server) = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        let response = Client::new()
            .bearer("sesame")
            .get_blocking(&address, "/status")
            .expect("an answer");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"{}"[..])
        );
        let head = server.join().expect("server thread").to_ascii_lowercase();
        assert!(head.starts_with("get /status http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: {address}\r\n")), "{head}");
        assert!(head.contains("authorization: bearer sesame\r\n"), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
    }

    #[test]
    fn a_chunked_answer_is_decoded() {
        let (address, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n",
        );
        let body = Client::new()
            .get_blocking(&address, "/")
            .and_then(Response::success)
            .expect("an answer");
        assert_eq!(body, b"{\"a\":1}");
        server.join().expect("server thread");
    }

    #[test]
    fn an_http_1_0_answer_is_read_to_eof() {
        let (address, server) = serve_once(b"HTTP/1.0 200 OK\r\n\r\nhello from b1\n");
        let response = Client::new()
            .get_blocking(&address, "/")
            .expect("an answer");
        assert_eq!(response.text(), "hello from b1\n");
        server.join().expect("server thread");
    }

    #[test]
    fn an_error_status_carries_the_body() {
        let (address, server) = serve_once(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 24\r\n\r\n{\"error\":\"no such path\"}",
        );
        let error = Client::new()
            .get_blocking(&address, "/nowhere")
            .and_then(Response::success)
            .expect_err("404")
            .to_string();
        assert!(
            error.contains("404") && error.contains("no such path"),
            "{error}"
        );
        server.join().expect("server thread");
    }

    #[test]
    fn broken_answers_are_errors() {
        for broken in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab",
        ] {
            let answer: &'static [u8] = Box::leak(broken.to_vec().into_boxed_slice());
            let (address, server) = serve_once(answer);
            let result = Client::new().get_blocking(&address, "/");
            assert!(result.is_err(), "{result:?} for {broken:?}");
            server.join().expect("server thread");
        }
    }

    #[test]
    fn a_body_over_the_limit_is_refused() {
        let (address, server) =
            serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789");
        let error = Client::new()
            .max_body(4)
            .get_blocking(&address, "/")
            .expect_err("too large");
        assert!(matches!(error, HttpError::TooLarge(4)), "{error}");
        server.join().expect("server thread");
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let unused = TcpListener::bind("127.0.0.1:0").expect("loopback");
        let address = unused.local_addr().expect("bound").to_string();
        drop(unused);
        let error = Client::new()
            .get_blocking(&address, "/")
            .expect_err("refused");
        assert!(matches!(error, HttpError::Connect { .. }), "{error}");
    }
}
