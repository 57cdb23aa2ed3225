//! The connection server: accepts TCP connections, serves HTTP/1.1 on them with keep-alive, and
//! drains in-flight requests on shutdown. Requests hyper refuses before routing (malformed, URI
//! or headers too long) are answered in the API's JSON error shape by [`JsonParseErrors`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers; protects against slow-header clients.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing connections anyway.
    pub drain_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits up to
/// `drain_timeout` for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout).keep_alive(true);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let io = TokioIo::new(JsonParseErrors::new(stream));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!("drain timeout passed; closing remaining connections");
        }
    }
}

/// A connection whose writes pass through unchanged, except hyper's own answers to requests it
/// cannot parse: hyper sends those (400 malformed, 414 URI too long, 431 headers too large) as a
/// bare head with `content-length: 0` and offers no hook to change them. Every error the API
/// itself sends has a JSON body, so a bodiless 400, 414 or 431 head is hyper's; it is rewritten
/// into the same head with the JSON error body (`{"error": {"code", "message", "details"}}`).
struct JsonParseErrors<S> {
    inner: S,
    /// A rewritten answer still being written, and how many bytes of hyper's it replaces.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonParseErrors<S> {
    fn new(inner: S) -> Self {
        Self { inner, pending: None }
    }
}

/// hyper's bodiless error answer `head` rewritten with the JSON error body, or `None` for any
/// other bytes.
fn rewrite_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    let (status, code, message) = match head.get(..13)? {
        b"HTTP/1.1 400 " => (400, "invalid_argument", "malformed HTTP request"),
        b"HTTP/1.1 414 " => (414, "uri_too_long", "the request target is too long"),
        b"HTTP/1.1 431 " => (431, "headers_too_large", "the request headers are too large"),
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut headers: Vec<&str> = lines.collect();
    let length = headers.iter().position(|l| l.eq_ignore_ascii_case("content-length: 0"))?;
    if headers.iter().any(|l| l.is_empty()) {
        return None; // more than one head: not a lone error answer
    }
    headers.remove(length);
    let body = serde_json::json!({
        "error": {"code": code, "message": message, "details": {"status": status}}
    })
    .to_string();
    let mut out = format!("{status_line}\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("content-type: application/json\r\n");
    out.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    Some(out.into_bytes())
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite_parse_error(buf) {
                Some(answer) => this.pending = Some((answer, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // hyper offers the same bytes again after `Pending`; they are reported written only
        // once the whole rewritten answer is.
        let (answer, replaces) = this.pending.as_mut().expect("set above");
        while !answer.is_empty() {
            let written = ready!(Pin::new(&mut this.inner).poll_write(cx, answer))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            answer.drain(..written);
        }
        let replaces = *replaces;
        this.pending = None;
        Poll::Ready(Ok(replaces))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // An error head travels alone; anything else goes out vectored as hyper asked.
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(first) if self.pending.is_some() || rewrite_parse_error(first).is_some() => {
                self.poll_write(cx, first)
            }
            _ => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_parse_error_heads_are_rewritten() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(rewrite_parse_error(head).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("date: x") && head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "headers_too_large");

        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(rewrite_parse_error(with_body), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(rewrite_parse_error(ok), None);
    }
}
