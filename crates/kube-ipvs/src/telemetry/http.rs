//! The small HTTP/1 server behind `/healthz`, `/livez`, `/metrics` and the health-check node
//! ports: a synchronous handler per listener (every answer is computed from in-memory state), one
//! task per listener, one task per connection, all stopped when the [`HttpServer`] is dropped.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Answers one request from its head (bodies are ignored: every route is a GET).
pub type Handler = Arc<dyn Fn(&Parts) -> Response<Full<Bytes>> + Send + Sync>;

/// Health checkers (load balancers, kubelet) that open a connection and never send a request
/// must not hold a task forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (e.g. EMFILE) so a persistent error does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A running server; dropping it closes the listener and every open connection.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Serves `handler` on `listener` (needs a tokio runtime).
    pub fn serve(listener: TcpListener, handler: Handler) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, handler));
        Ok(Self { local_addr, task })
    }

    /// Binds `addr` and serves `handler` on it.
    pub async fn bind(addr: SocketAddr, handler: Handler) -> io::Result<Self> {
        Self::serve(TcpListener::bind(addr).await?, handler)
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops the listener and its JoinSet, which aborts connections.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let handler = handler.clone();
                    conns.spawn(serve_connection(stream, handler));
                }
                Err(e) => {
                    tracing::warn!(addr = ?listener.local_addr().ok(), error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, handler: Handler) {
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let (parts, _body) = req.into_parts();
        let resp = handler(&parts);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// A response with `status`, `content_type` and `body`, marked `nosniff` as stock kube-proxy does.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// 404 for an unknown path.
pub fn not_found() -> Response<Full<Bytes>> {
    respond(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n",
    )
}

#[cfg(test)]
pub(crate) mod test_client {
    //! A minimal HTTP/1.0-style GET for tests (hyper's client is not enabled in this workspace).

    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Status, headers (lower-cased names) and body of one response.
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Reply {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// GETs `path` from `addr` with extra request headers; `Err` when the connection fails.
    pub async fn get_with(
        addr: SocketAddr,
        path: &str,
        extra: &[(&str, &str)],
    ) -> std::io::Result<Reply> {
        let mut s = TcpStream::connect(addr).await?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Reply {
            status,
            headers,
            body: body.to_string(),
        })
    }

    /// Whether `addr` stops accepting within a second (an aborted server closes asynchronously).
    pub async fn closes(addr: SocketAddr) -> bool {
        for _ in 0..100 {
            if get(addr, "/").await.is_err() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    /// GETs `path` from `addr`.
    pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
        get_with(addr, path, &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_handler_and_closes_on_drop() {
        let handler: Handler = Arc::new(|parts: &Parts| match parts.uri.path() {
            "/hello" => respond(StatusCode::OK, "text/plain", "hi"),
            _ => not_found(),
        });
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), handler)
            .await
            .unwrap();
        let addr = server.local_addr();
        let r = test_client::get(addr, "/hello").await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "hi"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(test_client::get(addr, "/nope").await.unwrap().status, 404);

        drop(server);
        assert!(test_client::closes(addr).await);
    }
}
