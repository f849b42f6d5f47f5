//! Reading the node for the cleanup plan, and running its steps: the only I/O of cleanup.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use ipvs_netlink::{Client, VirtualServiceKey};
use nodenet::AddressFamily;
use nodenet::ipset::{IpsetClient, IpsetError};
use nodenet::iptables::render::{CHAINS, builtin_chains, jumps_in_order};
use nodenet::iptables::save::normalize;
use nodenet::iptables::{Backend, Iptables, IptablesError, Table};
use nodenet::link::{LinkError, Links};

use super::CleanupOptions;
use super::plan::{Observed, ObservedDummy, ObservedIptables, ObservedRoute, Plan, Step, plan};
use crate::owners::Owners;
use crate::progress::Progress;

/// A cleanup operation failed; each variant keeps the operation and the errno of its source.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// IPVS.
    #[error(transparent)]
    Ipvs(#[from] ipvs_netlink::Error),
    /// Links, addresses, routes.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// ipsets.
    #[error(transparent)]
    Ipset(#[from] IpsetError),
    /// iptables.
    #[error(transparent)]
    Iptables(#[from] IptablesError),
    /// A blocking task could not be joined.
    #[error("{op}: {reason}")]
    Task {
        /// What ran.
        op: &'static str,
        /// Why it did not finish.
        reason: String,
    },
    /// A file of ours.
    #[error("{op} {}: {source}", path.display())]
    File {
        /// What was done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What [`execute`] did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Steps done (including those found already done).
    pub done: Vec<Step>,
    /// Steps that failed, with why. Later steps still ran.
    pub failed: Vec<(Step, CleanupError)>,
}

/// Our jumps and chains in one family and back end; `Err` if its tools cannot run.
fn observe_iptables(
    family: AddressFamily,
    backend: Backend,
    timeout: Duration,
) -> Result<ObservedIptables, IptablesError> {
    let ipt = Iptables::new(backend, family, timeout);
    let mut out = ObservedIptables {
        family,
        backend,
        jumps: Vec::new(),
        chains: Vec::new(),
    };
    for table in [Table::Nat, Table::Filter] {
        let saved = ipt.save(table)?;
        for from in builtin_chains(table) {
            for j in jumps_in_order(table, from) {
                let want = normalize(&j.rule());
                if saved.rules(from).iter().any(|r| normalize(r) == want) {
                    out.jumps
                        .push(format!("{}/{from} -> {}", table.name(), j.to));
                }
            }
        }
        for c in CHAINS.iter().filter(|c| c.table == table) {
            if saved.has_chain(c.name) {
                out.chains.push(format!("{}/{}", table.name(), c.name));
            }
        }
    }
    Ok(out)
}

/// Whether this network namespace has legacy (x_tables) tables: the kernel lists them in
/// `/proc/net/ip_tables_names` (`ip6_tables_names`) once the module is loaded and used.
fn legacy_tables_in_use(family: AddressFamily) -> bool {
    let file = match family {
        AddressFamily::Inet => "/proc/net/ip_tables_names",
        AddressFamily::Inet6 => "/proc/net/ip6_tables_names",
    };
    std::fs::read_to_string(file).is_ok_and(|t| !t.trim().is_empty())
}

async fn observe_all_iptables(timeout: Duration) -> (Vec<ObservedIptables>, Vec<String>) {
    let res = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        let mut warnings = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut errors = Vec::new();
            for backend in [Backend::Nft, Backend::Legacy] {
                if backend == Backend::Legacy && !legacy_tables_in_use(family) {
                    // Nothing there; and running iptables-legacy-save would load x_tables.
                    continue;
                }
                match observe_iptables(family, backend, timeout) {
                    Ok(o) => found.push(o),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            for e in errors {
                warnings.push(format!("iptables ({family}): not checked: {e}"));
            }
        }
        (found, warnings)
    })
    .await;
    res.unwrap_or_else(|e| (Vec::new(), vec![format!("iptables: not checked: {e}")]))
}

/// Reads everything cleanup decides on. IPVS missing (module not loaded) is not an error:
/// there is then nothing to remove there.
pub async fn observe(opts: &CleanupOptions) -> Result<Observed, CleanupError> {
    let ipvs = match Client::with_options(ipvs_netlink::ClientOptions {
        timeout: opts.timeout,
        ..Default::default()
    })
    .await
    {
        Ok(mut c) => Some(
            c.list_services()
                .await?
                .into_iter()
                .map(|s| s.key)
                .collect::<Vec<VirtualServiceKey>>(),
        ),
        Err(ipvs_netlink::Error::ModuleNotLoaded) => None,
        Err(e) => return Err(e.into()),
    };
    let mut links = Links::connect(opts.timeout).await?;
    let dummy = match links.link_index(&opts.dummy_device).await? {
        Some(ifindex) => Some(ObservedDummy {
            name: opts.dummy_device.clone(),
            ifindex,
            addresses: links.addresses(ifindex).await?,
        }),
        None => None,
    };
    let loopback = links.link_index("lo").await?;
    let local_routes = links
        .local_prefix_routes()
        .await?
        .into_iter()
        .map(|r| ObservedRoute {
            prefix: r.prefix,
            ifindex: r.ifindex,
            protocol: r.protocol,
        })
        .collect();
    let node_addresses: BTreeSet<_> = links
        .node_addresses(dummy.as_ref().map(|d| d.ifindex))
        .await?;
    let (iptables, mut warnings) = observe_all_iptables(opts.timeout).await;
    let ipsets = IpsetClient::connect().await?.list_names().await?;
    let (owners, owners_file) = match &opts.owners_file {
        Some(p) if p.exists() => match Owners::read(p) {
            Ok(o) => (Some(o), Some(p.clone())),
            Err(e) => {
                warnings.push(format!("owners file ignored: {e}"));
                (None, Some(p.clone()))
            }
        },
        _ => (None, None),
    };
    Ok(Observed {
        ipvs,
        dummy,
        loopback,
        local_routes,
        node_addresses,
        iptables,
        warnings,
        ipsets,
        owners,
        owners_file,
    })
}

/// Lazily opened clients: a step only connects what it needs.
#[derive(Default)]
struct Clients {
    ipvs: Option<Client>,
    links: Option<Links>,
    ipset: Option<IpsetClient>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clients")
    }
}

impl Clients {
    async fn ipvs(&mut self, timeout: Duration) -> Result<&mut Client, CleanupError> {
        if self.ipvs.is_none() {
            let opts = ipvs_netlink::ClientOptions {
                timeout,
                ..Default::default()
            };
            self.ipvs = Some(Client::with_options(opts).await?);
        }
        self.ipvs.as_mut().ok_or(CleanupError::Task {
            op: "connect to IPVS",
            reason: "no client".into(),
        })
    }

    async fn links(&mut self, timeout: Duration) -> Result<&mut Links, CleanupError> {
        if self.links.is_none() {
            self.links = Some(Links::connect(timeout).await?);
        }
        self.links.as_mut().ok_or(CleanupError::Task {
            op: "connect to rtnetlink",
            reason: "no client".into(),
        })
    }

    async fn ipset(&mut self) -> Result<&mut IpsetClient, CleanupError> {
        if self.ipset.is_none() {
            self.ipset = Some(IpsetClient::connect().await?);
        }
        self.ipset.as_mut().ok_or(CleanupError::Task {
            op: "connect to ipset",
            reason: "no client".into(),
        })
    }
}

async fn run_step(step: &Step, c: &mut Clients, timeout: Duration) -> Result<(), CleanupError> {
    match step {
        Step::DeleteVirtualServer { key, .. } => {
            match c.ipvs(timeout).await?.delete_service(key).await {
                Ok(()) | Err(ipvs_netlink::Error::NoSuchService { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Step::FlushIpvs { .. } => Ok(c.ipvs(timeout).await?.flush().await?),
        Step::RemoveIptables {
            family, backend, ..
        } => {
            let ipt = Iptables::new(*backend, *family, timeout);
            tokio::task::spawn_blocking(move || ipt.remove())
                .await
                .map_err(|e| CleanupError::Task {
                    op: "iptables remove",
                    reason: e.to_string(),
                })?
                .map_err(CleanupError::from)
        }
        Step::DestroyIpset { name } => match c.ipset().await?.destroy(name).await {
            Ok(()) | Err(IpsetError::SetMissing { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Step::DeleteLocalRoute {
            prefix, ifindex, ..
        } => c
            .links(timeout)
            .await?
            .remove_local_route(*prefix, *ifindex)
            .await
            .map(|_| ())
            .map_err(CleanupError::from),
        Step::DeleteLink { name, .. } => c
            .links(timeout)
            .await?
            .delete_link(name)
            .await
            .map(|_| ())
            .map_err(CleanupError::from),
        Step::RemoveOwnersFile { path } => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CleanupError::File {
                op: "remove",
                path: path.clone(),
                source,
            }),
        },
    }
}

/// Runs the steps in order. A failed step does not stop the others (a later step may still
/// succeed, e.g. deleting the dummy device after one route failed); all failures are returned.
///
/// A large node (100,000 virtual servers, one step each) takes a while: progress is logged every
/// few seconds, and the total and rate at the end.
pub async fn execute(plan: &Plan, opts: &CleanupOptions) -> Outcome {
    let mut clients = Clients::default();
    let mut out = Outcome::default();
    let mut progress = Progress::new(plan.steps.len());
    for step in &plan.steps {
        match run_step(step, &mut clients, opts.timeout).await {
            Ok(()) => out.done.push(step.clone()),
            Err(e) => out.failed.push((step.clone(), e)),
        }
        if progress.advance(1) {
            tracing::info!(
                done = progress.done(),
                steps = progress.total(),
                failed = out.failed.len(),
                steps_per_second = progress.per_second(),
                "cleaning up"
            );
        }
    }
    if progress.was_long() {
        tracing::info!(
            steps = progress.total(),
            failed = out.failed.len(),
            seconds = progress.seconds(),
            steps_per_second = progress.per_second(),
            "cleaned up"
        );
    }
    out
}

/// Observe, plan and (unless `dry_run`) execute: what `kube-ipvs cleanup` and
/// `kube-ipvs run --cleanup` do. Returns the plan and, when executed, the outcome.
pub async fn cleanup(
    opts: &CleanupOptions,
    dry_run: bool,
) -> Result<(Plan, Option<Outcome>), CleanupError> {
    let observed = observe(opts).await?;
    let p = plan(&observed, opts);
    if dry_run {
        return Ok((p, None));
    }
    let outcome = execute(&p, opts).await;
    Ok((p, Some(outcome)))
}
