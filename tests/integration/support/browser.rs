//! A real browser for the dashboard tests: Debian's headless Chromium in a lab host, driven over
//! the DevTools protocol (CDP) with a minimal WebSocket client of its own, so that a page keeps
//! running in real time while the test changes the world under it (a daemon stopped, a server
//! killed) and then reads its DOM and takes screenshots.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use vipd_lab::http::Client;
use vipd_lab::{Lab, LabProcess};

use super::wait_until;

/// Where Chromium's DevTools listen, inside the browser's own lab host.
const DEVTOOLS: &str = "127.0.0.1:9222";

/// The viewport of every screenshot.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 900;

/// Whether Debian's chromium is installed (tests/run installs it).
pub fn chromium_installed() -> bool {
    Path::new("/usr/bin/chromium").exists()
}

/// A headless Chromium running in one lab host, with one page.
pub struct Browser {
    _process: LabProcess,
    pub page: Page,
}

impl Browser {
    /// Starts Chromium in `host` on `url`; its profile goes to `profile` (a scratch directory).
    pub fn start(lab: &Lab, host: usize, url: &str, profile: &Path) -> Self {
        let profile_arg = format!("--user-data-dir={}", profile.display());
        let window = format!("--window-size={WIDTH},{HEIGHT}");
        let port = format!(
            "--remote-debugging-port={}",
            DEVTOOLS.rsplit(':').next().unwrap_or("9222")
        );
        let log = std::fs::File::create(profile.with_extension("log")).expect("browser log");
        let mut command = lab
            .command_in(
                host,
                &[
                    "/usr/bin/chromium",
                    "--headless",
                    // Root in a test namespace: Chromium's sandbox needs user namespaces it
                    // cannot have here.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--mute-audio",
                    // Nothing but the page: no update, sync, metrics or safe-browsing traffic
                    // (the lab host has no route out anyway).
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-default-apps",
                    "--disable-domain-reliability",
                    "--disable-client-side-phishing-detection",
                    "--no-pings",
                    &port,
                    &profile_arg,
                    &window,
                    url,
                ],
            )
            .expect("host exists");
        command
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("browser log"))
            .stderr(log);
        let process = lab.spawn_command(command).expect("chromium starts");
        let page = Page::attach(lab, host);
        Self {
            _process: process,
            page,
        }
    }
}

/// The DevTools connection to the browser's page.
pub struct Page {
    stream: TcpStream,
    next_id: u64,
}

impl Page {
    /// Waits for the page target and connects to it (from inside `host`).
    fn attach(lab: &Lab, host: usize) -> Self {
        let mut socket_path = None;
        let found = wait_until(Duration::from_secs(20), || {
            let listing = lab.in_host(host, || {
                Client::new()
                    .timeout(Duration::from_secs(2))
                    .get_blocking(DEVTOOLS, "/json/list")
            });
            let Ok(Ok(response)) = listing else {
                return false;
            };
            let targets: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            socket_path = targets.as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|target| target["type"] == "page")
                    .and_then(|target| target["webSocketDebuggerUrl"].as_str())
                    .and_then(|url| url.split_once("/devtools/"))
                    .map(|(_, path)| format!("/devtools/{path}"))
            });
            socket_path.is_some()
        });
        assert!(
            found.is_some(),
            "Chromium never offered a page over DevTools"
        );
        let path = socket_path.expect("found");
        let stream = lab
            .in_host(host, move || connect_websocket(&path))
            .expect("host exists")
            .unwrap_or_else(|error| panic!("DevTools WebSocket: {error}"));
        let mut page = Self { stream, next_id: 1 };
        page.call(
            "Emulation.setDeviceMetricsOverride",
            &json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        );
        page
    }

    /// One CDP command; its `result`. Events that arrive meanwhile are skipped.
    pub fn call(&mut self, method: &str, params: &Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        send_frame(&mut self.stream, message.as_bytes())
            .unwrap_or_else(|error| panic!("sending {method}: {error}"));
        loop {
            let text = receive_message(&mut self.stream)
                .unwrap_or_else(|error| panic!("waiting for {method}: {error}"));
            let answer: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
            if answer["id"] != id {
                continue;
            }
            assert!(answer["error"].is_null(), "{method}: {answer}");
            return answer["result"].clone();
        }
    }

    /// The value of a JavaScript expression (awaited if it is a promise).
    pub fn evaluate(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            &json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true`; panics with `what` and the page's text otherwise.
    pub fn wait_for(&mut self, what: &str, expression: &str, limit: Duration) {
        let held = wait_until(limit, || self.evaluate(expression) == Value::Bool(true));
        if held.is_none() {
            let text = self.evaluate("document.body.innerText");
            panic!("the page never showed {what} ({expression}); it shows:\n{text}");
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", &json!({"url": url}));
    }

    /// A PNG of the viewport, written to `path`; its bytes.
    pub fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", &json!({"format": "png"}));
        let png = decode_base64(shot["data"].as_str().expect("screenshot data"));
        std::fs::write(path, &png).expect("write screenshot");
        png
    }

    /// The colour of pixel (`x`, `y`) of `png` as `[r, g, b, a]`, decoded by the browser itself
    /// (a canvas), so that the test needs no PNG decoder of its own.
    pub fn pixel(&mut self, png: &[u8], x: u32, y: u32) -> [u8; 4] {
        let data = encode_base64(png);
        let value = self.evaluate(&format!(
            "(async () => {{ const image = new Image(); image.src = 'data:image/png;base64,{data}';
               await image.decode(); const canvas = document.createElement('canvas');
               canvas.width = image.width; canvas.height = image.height;
               const context = canvas.getContext('2d'); context.drawImage(image, 0, 0);
               return Array.from(context.getImageData({x}, {y}, 1, 1).data); }})()"
        ));
        let channels: Vec<u8> = value
            .as_array()
            .expect("pixel channels")
            .iter()
            .map(|channel| u8::try_from(channel.as_u64().unwrap_or(0)).unwrap_or(0))
            .collect();
        channels.try_into().expect("four channels")
    }
}

/// Width and height from a PNG's IHDR chunk.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.get(..8)? != b"\x89PNG\r\n\x1a\n" || png.get(12..16)? != b"IHDR" {
        return None;
    }
    let number = |at: usize| Some(u32::from_be_bytes(png.get(at..at + 4)?.try_into().ok()?));
    Some((number(16)?, number(20)?))
}

/// The opening handshake of RFC 6455 section 4.1 (the server's accept key is not checked: it is
/// our own browser on loopback).
fn connect_websocket(path: &str) -> std::io::Result<TcpStream> {
    let address: SocketAddr = DEVTOOLS.parse().expect("a socket address");
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {DEVTOOLS}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101") {
        return Err(std::io::Error::other(format!("no upgrade: {head}")));
    }
    Ok(stream)
}

/// One masked text frame (a client must mask, RFC 6455 section 5.3).
fn send_frame(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mask = [0x5a, 0x17, 0xc3, 0x8e];
    let mut frame = vec![0x81];
    match payload.len() {
        length @ 0..126 => frame.push(0x80 | u8::try_from(length).expect("below 126")),
        length @ 126..65536 => {
            frame.push(0x80 | 0x7e);
            frame.extend(u16::try_from(length).expect("below 65536").to_be_bytes());
        }
        length => {
            frame.push(0x80 | 0x7f);
            frame.extend(u64::try_from(length).unwrap_or(u64::MAX).to_be_bytes());
        }
    }
    frame.extend(mask);
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(index, byte)| byte ^ mask[index % 4]),
    );
    stream.write_all(&frame)
}

/// One whole message: data frames up to the one with FIN; control frames are skipped.
fn receive_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head)?;
        let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
        let mut length = u64::from(head[1] & 0x7f);
        if length == 126 {
            let mut extended = [0u8; 2];
            stream.read_exact(&mut extended)?;
            length = u64::from(u16::from_be_bytes(extended));
        } else if length == 127 {
            let mut extended = [0u8; 8];
            stream.read_exact(&mut extended)?;
            length = u64::from_be_bytes(extended);
        }
        let mut mask = [0u8; 4];
        if head[1] & 0x80 != 0 {
            stream.read_exact(&mut mask)?;
        }
        let mut payload = vec![0u8; usize::try_from(length).map_err(std::io::Error::other)?];
        stream.read_exact(&mut payload)?;
        if head[1] & 0x80 != 0 {
            for (index, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[index % 4];
            }
        }
        match opcode {
            0x8 => return Err(std::io::Error::other("the browser closed DevTools")),
            0x9 | 0xa => continue,
            _ => message.extend(payload),
        }
        if fin {
            return Ok(message);
        }
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn decode_base64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for symbol in text.bytes() {
        let Some(value) = BASE64.iter().position(|&candidate| candidate == symbol) else {
            continue; // padding and line breaks
        };
        bits = (bits << 6) | u32::try_from(value).expect("below 64");
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).expect("one byte"));
        }
    }
    out
}

fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = chunk.iter().enumerate().fold(0u32, |word, (index, &byte)| {
            word | u32::from(byte) << (16 - 8 * index)
        });
        for index in 0..4 {
            if index <= chunk.len() {
                let sextet = usize::try_from(word >> (18 - 6 * index) & 0x3f).unwrap_or(0);
                out.push(char::from(BASE64[sextet]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_round_trips() {
    for sample in [
        &b""[..],
        b"f",
        b"fo",
        b"foo",
        b"foob",
        b"\x89PNG\r\n\x1a\n\xff",
    ] {
        assert_eq!(decode_base64(&encode_base64(sample)), sample);
    }
    assert_eq!(encode_base64(b"foob"), "Zm9vYg==");
}
