//! The per-Service health-check servers on each `healthCheckNodePort` (Services with
//! `externalTrafficPolicy: Local`), as stock kube-proxy serves them (`service_health.go`): cloud
//! load balancers probe them to send traffic only to nodes with a local endpoint.
//!
//! Any path answers 200 when the Service has a local endpoint and the proxy is healthy, else 503,
//! with stock's JSON body. [`HealthCheckServers::sync`] opens and closes listeners as the wanted
//! set changes; endpoint counts change without reopening anything. A port that cannot be bound
//! (another process holds it) is logged and retried later, never fatal.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::ProxyHealth;
use super::http::{Handler, HttpServer, respond};
use crate::desired::HealthCheck;
use crate::types::ServiceName;

/// How often ports that failed to bind are retried while nothing else changes.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// What the health-check servers should look like now.
pub type Wanted = Arc<BTreeMap<ServiceName, HealthCheck>>;

#[derive(Debug)]
struct Instance {
    port: u16,
    endpoints: Arc<AtomicU32>,
    servers: Vec<HttpServer>,
}

/// What one [`HealthCheckServers::sync`] changed.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// Servers opened.
    pub opened: Vec<ServiceName>,
    /// Servers closed (no longer wanted, or their port changed).
    pub closed: Vec<ServiceName>,
    /// Wanted servers whose port could not be bound (retried on the next sync).
    pub failed: Vec<(ServiceName, io::Error)>,
}

/// The set of health-check servers.
#[derive(Debug)]
pub struct HealthCheckServers {
    ips: Vec<IpAddr>,
    health: ProxyHealth,
    open: BTreeMap<ServiceName, Instance>,
    wanted: Wanted,
    retry: Duration,
}

impl HealthCheckServers {
    /// Servers listen on each of `ips` (the node-port addresses), or on every address when empty.
    pub fn new(ips: Vec<IpAddr>, health: ProxyHealth) -> Self {
        HealthCheckServers {
            ips,
            health,
            open: BTreeMap::new(),
            wanted: Arc::default(),
            retry: RETRY_INTERVAL,
        }
    }

    /// Retries ports that failed to bind this often (default [`RETRY_INTERVAL`]).
    pub fn with_retry_interval(mut self, every: Duration) -> Self {
        self.retry = every;
        self
    }

    /// Makes the open servers match `wanted`.
    pub async fn sync(&mut self, wanted: Wanted) -> SyncOutcome {
        let mut out = SyncOutcome::default();
        self.open.retain(|key, inst| {
            let keep = wanted.get(key).is_some_and(|hc| hc.port == inst.port);
            if !keep {
                tracing::info!(service = %key, port = inst.port, "closing health check server");
                out.closed.push(key.clone());
            }
            keep
        });
        for (key, hc) in wanted.iter() {
            if let Some(inst) = self.open.get(key) {
                inst.endpoints.store(hc.local_endpoints, Ordering::Relaxed);
                continue;
            }
            let endpoints = Arc::new(AtomicU32::new(hc.local_endpoints));
            let handler = service_handler(key.clone(), endpoints.clone(), self.health.clone());
            match self.listen(hc.port, handler).await {
                Ok(servers) => {
                    tracing::info!(service = %key, port = hc.port, "opened health check server");
                    self.open.insert(
                        key.clone(),
                        Instance {
                            port: hc.port,
                            endpoints,
                            servers,
                        },
                    );
                    out.opened.push(key.clone());
                }
                Err(e) => {
                    tracing::warn!(service = %key, port = hc.port, error = %e,
                        "cannot open health check server; retrying later");
                    out.failed.push((key.clone(), e));
                }
            }
        }
        self.wanted = wanted;
        out
    }

    /// Binds `port` on every configured address; all or nothing.
    async fn listen(&self, port: u16, handler: Handler) -> io::Result<Vec<HttpServer>> {
        if self.ips.is_empty() {
            // `[::]` takes IPv4 too (bindv6only=0); on hosts without IPv6 fall back to 0.0.0.0.
            let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            return match HttpServer::bind(any6, handler.clone()).await {
                Ok(s) => Ok(vec![s]),
                Err(_) => Ok(vec![HttpServer::bind(any4, handler).await?]),
            };
        }
        let mut servers = Vec::with_capacity(self.ips.len());
        for ip in &self.ips {
            // On error the servers bound so far are dropped, which closes them.
            servers.push(HttpServer::bind(SocketAddr::new(*ip, port), handler.clone()).await?);
        }
        Ok(servers)
    }

    /// Whether some wanted server is not open.
    pub fn has_failures(&self) -> bool {
        self.wanted.keys().any(|k| !self.open.contains_key(k))
    }

    /// The addresses a Service's server listens on (empty when not open).
    pub fn local_addrs(&self, key: &ServiceName) -> Vec<SocketAddr> {
        self.open
            .get(key)
            .map(|i| i.servers.iter().map(HttpServer::local_addr).collect())
            .unwrap_or_default()
    }

    /// Follows `wanted` until its sender is dropped, retrying failed ports periodically. Publishes each sync's open addresses on the returned channel.
    pub fn spawn(
        mut self,
        mut wanted: watch::Receiver<Wanted>,
    ) -> (
        JoinHandle<()>,
        watch::Receiver<BTreeMap<ServiceName, Vec<SocketAddr>>>,
    ) {
        let (open_tx, open_rx) = watch::channel(BTreeMap::new());
        let task = tokio::spawn(async move {
            loop {
                let current = wanted.borrow_and_update().clone();
                self.sync(current).await;
                let _ = open_tx.send(
                    self.open
                        .keys()
                        .map(|k| (k.clone(), self.local_addrs(k)))
                        .collect(),
                );
                let retry = self.has_failures();
                tokio::select! {
                    changed = wanted.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep(self.retry), if retry => {}
                }
            }
        });
        (task, open_rx)
    }
}

/// Stock's response body (`service_health.go`), byte for byte.
fn body(key: &ServiceName, endpoints: u32, proxy_healthy: bool) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {},\n\t\"serviceProxyHealthy\": {}\n}}",
        q(key.namespace()),
        q(key.name()),
        endpoints,
        proxy_healthy
    )
}

fn service_handler(key: ServiceName, endpoints: Arc<AtomicU32>, health: ProxyHealth) -> Handler {
    Arc::new(move |_parts| {
        let n = endpoints.load(Ordering::Relaxed);
        let healthy = health.is_healthy();
        let code = if n > 0 && healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut resp = respond(code, "application/json", body(&key, n, healthy));
        resp.headers_mut().insert(
            "x-load-balancing-endpoint-weight",
            http::HeaderValue::from(n),
        );
        resp
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{ChangeKind, SyncKind};
    use crate::telemetry::health::tests::{ManualClock, report};
    use crate::telemetry::http::test_client::{closes, get};
    use crate::telemetry::metrics::Metrics;
    use crate::types::Family;

    fn health(clock: &ManualClock) -> ProxyHealth {
        ProxyHealth::new(
            Duration::from_secs(60),
            clock.clock(),
            Arc::new(Metrics::new(&[Family::V4])),
        )
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn wanted(entries: &[(&str, u16, u32)]) -> Wanted {
        Arc::new(
            entries
                .iter()
                .map(|(name, port, n)| {
                    (
                        ServiceName::new("ns", name),
                        HealthCheck {
                            port: *port,
                            local_endpoints: *n,
                        },
                    )
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn answers_like_stock_and_follows_the_wanted_set() {
        let clock = ManualClock::at(100);
        let h = health(&clock);
        let localhost = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let mut s = HealthCheckServers::new(localhost, h.clone());
        let (pa, pb) = (free_port(), free_port());
        let a = ServiceName::new("ns", "a");
        let b = ServiceName::new("ns", "b");

        let out = s.sync(wanted(&[("a", pa, 2), ("b", pb, 0)])).await;
        assert_eq!(out.opened, vec![a.clone(), b.clone()]);
        assert!(out.failed.is_empty());
        let addr_a = SocketAddr::from(([127, 0, 0, 1], pa));
        let addr_b = SocketAddr::from(([127, 0, 0, 1], pb));
        assert_eq!(s.local_addrs(&a), vec![addr_a]);

        let r = get(addr_a, "/").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        // Stock's weight hint for load balancers: the local endpoint count.
        assert_eq!(r.header("x-load-balancing-endpoint-weight"), Some("2"));
        assert_eq!(
            r.body,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"ns\",\n\t\t\"name\": \"a\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        let r = get(addr_b, "/any/path").await.unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("x-load-balancing-endpoint-weight"), Some("0"));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["localEndpoints"], 0);

        // Endpoint counts change in place.
        let out = s.sync(wanted(&[("a", pa, 0), ("b", pb, 1)])).await;
        assert!(out.opened.is_empty() && out.closed.is_empty());
        assert_eq!(get(addr_a, "/").await.unwrap().status, 503);
        assert_eq!(get(addr_b, "/").await.unwrap().status, 200);

        // An unhealthy proxy fails every Service, even with local endpoints.
        h.queued(ChangeKind::Service, clock.now());
        clock.set(200);
        let r = get(addr_b, "/").await.unwrap();
        assert_eq!(r.status, 503);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["serviceProxyHealthy"], false);
        h.synced(&report(SyncKind::Full, clock.now()));
        assert_eq!(get(addr_b, "/").await.unwrap().status, 200);

        // b moves to a new port, a goes away.
        let pb2 = free_port();
        let out = s.sync(wanted(&[("b", pb2, 1)])).await;
        assert_eq!(out.closed, vec![a.clone(), b.clone()]);
        assert_eq!(out.opened, vec![b.clone()]);
        assert!(closes(addr_a).await, "a's port still open");
        assert!(closes(addr_b).await, "b's old port still open");
        assert_eq!(
            get(SocketAddr::from(([127, 0, 0, 1], pb2)), "/")
                .await
                .unwrap()
                .status,
            200
        );
    }

    #[tokio::test]
    async fn a_busy_port_is_retried_not_fatal() {
        let clock = ManualClock::at(100);
        let mut s = HealthCheckServers::new(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], health(&clock));
        let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = blocker.local_addr().unwrap().port();
        let ok_port = free_port();

        let out = s
            .sync(wanted(&[("busy", port, 1), ("ok", ok_port, 1)]))
            .await;
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.failed[0].0, ServiceName::new("ns", "busy"));
        assert_eq!(out.opened, vec![ServiceName::new("ns", "ok")]);
        assert!(s.has_failures());

        drop(blocker);
        let out = s
            .sync(wanted(&[("busy", port, 1), ("ok", ok_port, 1)]))
            .await;
        assert_eq!(out.opened, vec![ServiceName::new("ns", "busy")]);
        assert!(!s.has_failures());
        let r = get(SocketAddr::from(([127, 0, 0, 1], port)), "/")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn spawned_task_follows_the_channel_and_retries() {
        let clock = ManualClock::at(100);
        let s = HealthCheckServers::new(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], health(&clock))
            .with_retry_interval(Duration::from_millis(50));
        let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = blocker.local_addr().unwrap().port();
        let (tx, rx) = watch::channel(wanted(&[("a", port, 1)]));
        let (task, mut open) = s.spawn(rx);
        open.changed().await.unwrap();
        assert!(open.borrow_and_update().is_empty());

        // Freed: the retry timer opens it without a new wanted set.
        drop(blocker);
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                open.changed().await.unwrap();
                if !open.borrow_and_update().is_empty() {
                    break;
                }
            }
        })
        .await
        .expect("retry did not open the port");

        tx.send(wanted(&[])).unwrap();
        open.changed().await.unwrap();
        assert!(open.borrow().is_empty());
        drop(tx);
        task.await.unwrap();
    }
}
