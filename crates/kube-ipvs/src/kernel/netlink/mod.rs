//! The real kernel: IPVS over generic netlink (ipvs-netlink), the dummy device, its addresses and
//! the `local` prefix routes (on `lo`) over rtnetlink, ipsets over nfnetlink, conntrack cleanup (nodenet), the
//! iptables rule set through iptables-restore, the sysctls.
//!
//! | file | what |
//! |---|---|
//! | `config` | [`KernelConfig`] and its mapping from the agent's configuration |
//! | `convert` | domain values <-> ipvs-netlink / nodenet values |
//! | `prepare` | dummy device, empty sets, sysctls, IPVS timeouts |
//! | `observe` | full reads (one netlink dump per object kind) -> [`ObservedState`]; partial reads; node addresses |
//! | `apply` | plan ops through the batch paths, failures mapped back to op indices |
//! | `rules` | the iptables rule set per family, written when it changed |
//! | `worker` | the thread kernel reads run on |
//! | `netns` | blocking work in the configured network namespace |
//! | `worker` | the thread kernel reads run on |

mod apply;
mod config;
pub(crate) mod convert;
mod netns;
mod observe;
mod prepare;
mod rules;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;

use ipnet::IpNet;
use nodenet::conntrack::Conntrack;
use nodenet::ipset::IpsetClient;
use nodenet::iptables::{Iptables, RuleSet};
use nodenet::link::Links;

pub use config::KernelConfig;

use super::{ApplyOutcome, Kernel, KernelError, PartialRead, ReadScope};
use crate::desired::IptablesInputs;
use crate::plan::{ObservedState, Op};
use crate::planner_config::NodeRoute;
use crate::types::Family;

/// The node's kernel over netlink. Holds one socket per protocol (IPVS, rtnetlink, ipset;
/// conntrack opened on first use), a second set for reads ([`Reader`]), and the rule sets
/// it last wrote.
pub struct NetlinkKernel {
    cfg: KernelConfig,
    ipvs: ipvs_netlink::Client,
    links: Links,
    ipset: IpsetClient,
    /// The reads' own sockets: opened by the first read, lent to each running read and back when
    /// it is adopted.
    reader: Option<Reader>,
    /// The thread reads run on (started by the first read).
    worker: Option<worker::ReadWorker>,
    conntrack: Option<Conntrack>,
    /// iptables back end per family, detected on the first rule write.
    iptables: BTreeMap<Family, Iptables>,
    /// Whether `MASQUERADE --random-fully` works, per family (detected with the back end).
    random_fully: BTreeMap<Family, bool>,
    /// The rule sets last written, per family.
    written: BTreeMap<Family, RuleSet>,
    /// Set by `prepare`: the next detached read also checks the installed rules.
    rules_due: bool,
    /// Addresses of the dummy device that are not host prefixes (`/24` added by hand), as last
    /// observed: removing one needs its real prefix.
    odd_prefixes: HashMap<IpAddr, IpNet>,
}

/// The sockets and settings a read (full or partial) goes through. Its own sockets (the clients
/// serve one request at a time) let a long read run while the agent applies changes through the others.
struct Reader {
    ipvs: ipvs_netlink::Client,
    links: Links,
    ipset: IpsetClient,
    dummy_device: String,
    families: Vec<Family>,
}

impl Reader {
    async fn connect(cfg: &KernelConfig) -> Result<Self, KernelError> {
        let (ipvs, links, ipset) = sockets(cfg).await?;
        Ok(Self {
            ipvs,
            links,
            ipset,
            dummy_device: cfg.dummy_device.clone(),
            families: cfg.families.clone(),
        })
    }
}

/// A finished detached read (full or partial): the reader back, and what it saw.
pub struct Detached<T> {
    reader: Option<Reader>,
    result: Result<T, KernelError>,
    /// What the rules check run with it found differing ([`rules::RulesCheck`]).
    drifted: Vec<(Family, RuleSet)>,
}

/// A finished full read.
pub type FullRead = Detached<observe::Observation>;

/// A finished partial read.
pub type Read = Detached<observe::PartialObservation>;

impl<T> std::fmt::Debug for Detached<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detached")
            .field("ok", &self.result.is_ok())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NetlinkKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkKernel")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl NetlinkKernel {
    /// Connects the IPVS, rtnetlink and ipset sockets (in `cfg.netns` when set; the reads' own
    /// set opens with the first read). Fails when IPVS is missing (the `ip_vs` module is not
    /// loaded) or the caller lacks CAP_NET_ADMIN for ipsets.
    pub async fn connect(cfg: KernelConfig) -> Result<Self, KernelError> {
        let (ipvs, links, ipset) = sockets(&cfg).await?;
        Ok(Self {
            cfg,
            ipvs,
            links,
            ipset,
            reader: None,
            worker: None,
            conntrack: None,
            iptables: BTreeMap::new(),
            random_fully: BTreeMap::new(),
            written: BTreeMap::new(),
            rules_due: false,
            odd_prefixes: HashMap::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KernelConfig {
        &self.cfg
    }

    /// Changes the Node's pod CIDRs (for `detectLocalMode: NodeCIDR`); the next `sync_rules`
    /// writes rules using them.
    pub fn set_node_pod_cidrs(&mut self, cidrs: Vec<IpNet>) {
        self.cfg.node_pod_cidrs = cidrs;
    }

    /// Runs `work` on the read thread with the reader's sockets (opened on first use, and again
    /// if a read was lost with its task, never taken back): the future borrows nothing.
    fn detached<T, F, Fut>(&mut self, work: F) -> impl Future<Output = Detached<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(Reader) -> Fut + Send + 'static,
        Fut: Future<Output = (Reader, Result<T, KernelError>)> + Send + 'static,
    {
        let reader = self.reader.take();
        let cfg = self.cfg.clone();
        let check = self.take_rules_check();
        let read = async move {
            let r = match reader {
                Some(r) => r,
                None => match Reader::connect(&cfg).await {
                    Ok(r) => r,
                    Err(e) => {
                        return Detached {
                            reader: None,
                            result: Err(e),
                            drifted: Vec::new(),
                        };
                    }
                },
            };
            let (r, result) = work(r).await;
            Detached {
                reader: Some(r),
                result,
                drifted: check.run(cfg.netns.clone()).await,
            }
        };
        let worker = match self.worker.take() {
            Some(w) => Ok(w),
            None => worker::ReadWorker::start(),
        };
        let ran = match worker {
            Ok(w) => {
                let ran = w.run(read);
                self.worker = Some(w);
                futures::future::Either::Left(ran)
            }
            Err(e) => futures::future::Either::Right(std::future::ready(Err(e))),
        };
        async move {
            ran.await.unwrap_or_else(|e| Detached {
                reader: None,
                result: Err(e),
                drifted: Vec::new(),
            })
        }
    }

    /// Takes the reader back from a finished detached read; what it saw.
    fn take_back<T>(&mut self, d: Detached<T>) -> Result<T, KernelError> {
        if let Some(r) = d.reader {
            self.reader = Some(r);
        }
        self.forget_drifted(d.drifted);
        d.result
    }

    /// The dummy device's index, if it exists.
    async fn dummy_index(&mut self) -> Result<Option<u32>, KernelError> {
        dummy_index(&mut self.links, &self.cfg.dummy_device).await
    }

    /// The index of `lo`, which carries our `local` prefix routes.
    async fn loopback_index(&mut self) -> Result<u32, KernelError> {
        loopback_index(&mut self.links).await
    }

    /// The conntrack socket, opened on first use.
    async fn conntrack(&mut self) -> Result<&mut Conntrack, KernelError> {
        if self.conntrack.is_none() {
            let ct = Conntrack::connect_with(&socket_options(&self.cfg))
                .await
                .map_err(|source| KernelError::Conntrack {
                    op: "connect".into(),
                    source,
                })?;
            self.conntrack = Some(ct);
        }
        self.conntrack
            .as_mut()
            .ok_or_else(|| KernelError::Namespace {
                op: "connect conntrack".into(),
                source: std::io::Error::other("no conntrack socket"),
            })
    }
}

/// How the nodenet sockets open: in `cfg.netns`, bounded by the request timeout, under the
/// fault layer when one is configured.
fn socket_options(cfg: &KernelConfig) -> nodenet::SocketOptions {
    nodenet::SocketOptions {
        netns: cfg.netns.clone(),
        timeout: cfg.request_timeout,
        faults: cfg.faults.clone(),
    }
}

/// One IPVS, rtnetlink and ipset socket, in `cfg.netns` when set. Fails when IPVS is missing or
/// the caller lacks CAP_NET_ADMIN for ipsets.
async fn sockets(
    cfg: &KernelConfig,
) -> Result<(ipvs_netlink::Client, Links, IpsetClient), KernelError> {
    let ipvs = ipvs_netlink::Client::with_options(ipvs_netlink::ClientOptions {
        netns: cfg.netns.clone(),
        timeout: cfg.request_timeout,
        faults: cfg.faults.clone(),
        ..ipvs_netlink::ClientOptions::default()
    })
    .await
    .map_err(|source| KernelError::Ipvs {
        op: "connect".into(),
        source,
    })?;
    let links = Links::connect_with(&socket_options(cfg))
        .await
        .map_err(|source| KernelError::Link {
            op: "connect".into(),
            source,
        })?;
    let ipset = IpsetClient::connect_with(nodenet::ipset::Config {
        timeout: cfg.request_timeout,
        netns: cfg.netns.clone(),
        faults: cfg.faults.clone(),
        ..nodenet::ipset::Config::default()
    })
    .await
    .map_err(|source| KernelError::Ipset {
        op: "connect".into(),
        source,
    })?;
    Ok((ipvs, links, ipset))
}

/// The index of the dummy device, if it exists.
async fn dummy_index(links: &mut Links, device: &str) -> Result<Option<u32>, KernelError> {
    links
        .link_index(device)
        .await
        .map_err(|source| KernelError::Link {
            op: format!("look up {device}"),
            source,
        })
}

/// The index of `lo`, which carries our `local` prefix routes: it is always up, while the
/// dummy device stays down and the kernel refuses IPv6 routes through a down device (ENETDOWN).
async fn loopback_index(links: &mut Links) -> Result<u32, KernelError> {
    let op = "look up lo";
    links
        .link_index("lo")
        .await
        .map_err(|source| KernelError::Link {
            op: op.into(),
            source,
        })?
        .ok_or_else(|| KernelError::NoDevice {
            op: op.into(),
            device: "lo".into(),
        })
}

impl Kernel for NetlinkKernel {
    async fn prepare(&mut self) -> Result<(), KernelError> {
        prepare::prepare(self).await
    }

    async fn node_addresses(&mut self) -> Result<Vec<IpAddr>, KernelError> {
        observe::node_addresses(self).await
    }

    async fn node_routes(&mut self) -> Result<Vec<NodeRoute>, KernelError> {
        observe::node_routes(self).await
    }

    type FullRead = FullRead;

    fn read_full(&mut self) -> impl Future<Output = FullRead> + Send + 'static {
        self.detached(|mut r| async move {
            let result = observe::observe(&mut r).await;
            (r, result)
        })
    }

    fn adopt(&mut self, read: FullRead) -> Result<ObservedState, KernelError> {
        let seen = self.take_back(read)?;
        self.odd_prefixes = seen.odd_prefixes;
        Ok(seen.state)
    }

    type Read = Read;

    fn read(&mut self, scope: ReadScope) -> impl Future<Output = Read> + Send + 'static {
        self.detached(move |mut r| async move {
            let result = observe::read(&mut r, &scope).await;
            (r, result)
        })
    }

    fn adopt_read(&mut self, read: Read) -> Result<PartialRead, KernelError> {
        let seen = self.take_back(read)?;
        if let Some(odd) = seen.odd_prefixes {
            self.odd_prefixes = odd;
        }
        Ok(seen.read)
    }

    async fn apply(&mut self, ops: &[Op]) -> ApplyOutcome {
        apply::apply(self, ops).await
    }

    async fn sync_rules(
        &mut self,
        inputs: &BTreeMap<Family, IptablesInputs>,
    ) -> Result<bool, KernelError> {
        rules::sync_rules(self, inputs).await
    }
}
