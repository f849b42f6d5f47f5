//! The ipset client: one NETLINK_NETFILTER socket through the shared transport (every request
//! bounded by a timeout, the socket rebuilt after a fault), batches of many entries per message,
//! and set-level `sync` and `replace`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use netlink_transport::{
    Ack, BatchOptions, BatchOutcome, DumpPart, Failure, Faults, NETLINK_NETFILTER, Transport,
};

use super::constants::{IPSET_ERR_HASH_FULL, IPSET_PROTOCOL, IPSET_PROTOCOL_MIN};
use super::entry::{Entry, Member, SetType};
use super::error::{DecodeError, EncodeError, IpsetError, IpsetOp};
use super::reply::{self, ListDecoder, ListedSet, Reply, SetHeader};
use super::request::{self, AdtOp, BatchHeader, CreateSpec, ListMode, Request};
use crate::AddressFamily;

/// Client settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bound on every request and on each receive of a dump.
    pub timeout: Duration,
    /// Receive buffer asked of the kernel (SO_RCVBUF).
    pub socket_rcvbuf: usize,
    /// Network namespace to open the socket in; `None`: the calling thread's.
    pub netns: Option<PathBuf>,
    /// The fault-injecting layer under the socket (tests).
    pub faults: Option<Faults>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(10),
            socket_rcvbuf: 4 << 20,
            netns: None,
            faults: None,
        }
    }
}

/// What a `sync` changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub added: usize,
    pub removed: usize,
}

/// Entries to add and delete to turn `observed` into `wanted` (pure; both sides normalized
/// by the caller).
pub fn diff<'a>(
    observed: &'a BTreeSet<Entry>,
    wanted: &'a BTreeSet<Entry>,
) -> (Vec<&'a Entry>, Vec<&'a Entry>) {
    let add = wanted.difference(observed).collect();
    let del = observed.difference(wanted).collect();
    (add, del)
}

/// One entry of a batch, with its comment.
pub type Item<'a> = (&'a Entry, Option<&'a str>);
/// A batch operation over entries.
pub type Job<'a, 'b> = (AdtOp, &'b [Item<'a>]);

/// The op and entry of entry `i` numbered across `jobs`.
fn locate<'a>(jobs: &[Job<'a, '_>], mut i: usize) -> (IpsetOp, Option<&'a Entry>) {
    for (op, items) in jobs {
        if i < items.len() {
            return (adt_op(*op), items.get(i).map(|(e, _)| *e));
        }
        i -= items.len();
    }
    (IpsetOp::Add, None)
}

/// ADT batches: up to three 64 KiB messages per `sendmsg` (the transport lowers that to what
/// the socket's send buffer takes: the default, 212992, holds three), every message
/// acknowledged, the echo of a refused one kept (its LINENO names the failing entry).
const BATCH: BatchOptions = BatchOptions {
    window: 64,
    ack: Ack::Every,
    max_datagram: 200 << 10,
    keep_echo: true,
};

/// An ipset client bound to one network namespace.
pub struct IpsetClient {
    sock: Transport,
    protocol: u8,
    revisions: BTreeMap<(SetType, Option<AddressFamily>), u8>,
}

/// A failure inside an exchange: the transport's, or ours.
enum Fail {
    Transport(netlink_transport::Error),
    Client(IpsetError),
}

impl From<netlink_transport::Error> for Fail {
    fn from(e: netlink_transport::Error) -> Self {
        Fail::Transport(e)
    }
}

impl Fail {
    fn into_error(self, op: IpsetOp, set: &str, entry: Option<String>) -> IpsetError {
        match self {
            Fail::Transport(e) => transport_error(op, set, e, entry),
            Fail::Client(e) => e,
        }
    }
}

/// The error of `op` on `set` for a transport failure.
fn transport_error(
    op: IpsetOp,
    set: &str,
    e: netlink_transport::Error,
    entry: Option<String>,
) -> IpsetError {
    match e {
        netlink_transport::Error::Kernel(errno) => IpsetError::from_errno(op, set, errno, entry),
        netlink_transport::Error::Timeout(after) => IpsetError::Timeout {
            op,
            set: set.to_string(),
            after,
        },
        source => IpsetError::Transport {
            op,
            set: set.to_string(),
            source,
        },
    }
}

/// One pre-encoded ADT message of a batch: its bytes in the shared buffer and the entries
/// (indices into the batch's items) it carries, in LINENO order.
struct AdtMessage {
    bytes: std::ops::Range<usize>,
    job: usize,
    entries: std::ops::Range<usize>,
}

impl IpsetClient {
    /// Opens the socket and negotiates the protocol (7, or 6 on older kernels).
    pub async fn connect() -> Result<Self, IpsetError> {
        Self::connect_with(Config::default()).await
    }

    /// Opens the socket as `config` says and negotiates the protocol.
    pub async fn connect_with(config: Config) -> Result<Self, IpsetError> {
        let sock = Transport::connect(netlink_transport::Options {
            netns: config.netns.clone(),
            timeout: config.timeout,
            rcvbuf: config.socket_rcvbuf,
            faults: config.faults.clone(),
            ..netlink_transport::Options::new(NETLINK_NETFILTER)
        })
        .await
        .map_err(|e| transport_error(IpsetOp::Protocol, "", e, None))?;
        let mut client = IpsetClient {
            sock,
            protocol: IPSET_PROTOCOL,
            revisions: BTreeMap::new(),
        };
        match client
            .request_reply(IpsetOp::Protocol, "", &Request::Protocol)
            .await?
        {
            Reply::Protocol { version, .. } => match negotiate(version) {
                Some(protocol) => {
                    client.protocol = protocol;
                    Ok(client)
                }
                None => Err(IpsetError::Unsupported {
                    op: IpsetOp::Protocol,
                    set: String::new(),
                    kernel: version,
                }),
            },
            other => Err(unexpected(IpsetOp::Protocol, "", &other)),
        }
    }

    /// The negotiated ipset protocol version.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// `ipset create` (fails with `SetExists` if the name is taken).
    pub async fn create(&mut self, spec: &CreateSpec) -> Result<(), IpsetError> {
        self.create_inner(spec, false).await
    }

    /// `ipset -exist create`: succeeds if an identical set exists.
    pub async fn ensure(&mut self, spec: &CreateSpec) -> Result<(), IpsetError> {
        self.create_inner(spec, true).await
    }

    async fn create_inner(&mut self, spec: &CreateSpec, exist_ok: bool) -> Result<(), IpsetError> {
        let revision = self
            .revision(&spec.set_type, spec.wire_family(), &spec.name)
            .await?;
        let req = Request::Create {
            spec: spec.clone(),
            revision,
            exist_ok,
        };
        self.request_ack(IpsetOp::Create, &spec.name, &req, None)
            .await
    }

    /// The revision to create `set_type` with: the highest both we and the kernel know.
    async fn revision(
        &mut self,
        set_type: &SetType,
        family: Option<AddressFamily>,
        set: &str,
    ) -> Result<u8, IpsetError> {
        if let Some(rev) = self.revisions.get(&(set_type.clone(), family)) {
            return Ok(*rev);
        }
        let req = Request::Type {
            set_type: set_type.clone(),
            family,
        };
        match self.request_reply(IpsetOp::Type, set, &req).await? {
            Reply::Type {
                revision,
                revision_min,
                ..
            } => {
                let rev = revision.min(set_type.max_revision());
                if rev < revision_min {
                    return Err(IpsetError::UnsupportedRevision {
                        op: IpsetOp::Create,
                        set: set.to_string(),
                        set_type: set_type.to_string(),
                        kernel_min: revision_min,
                        ours: rev,
                    });
                }
                self.revisions.insert((set_type.clone(), family), rev);
                Ok(rev)
            }
            other => Err(unexpected(IpsetOp::Type, set, &other)),
        }
    }

    /// `ipset destroy NAME`.
    pub async fn destroy(&mut self, name: &str) -> Result<(), IpsetError> {
        self.request_ack(
            IpsetOp::Destroy,
            name,
            &Request::Destroy {
                name: name.to_string(),
                exist_ok: false,
            },
            None,
        )
        .await
    }

    /// `ipset flush NAME`.
    pub async fn flush(&mut self, name: &str) -> Result<(), IpsetError> {
        self.request_ack(
            IpsetOp::Flush,
            name,
            &Request::Flush {
                name: name.to_string(),
            },
            None,
        )
        .await
    }

    /// `ipset rename FROM TO` (fails with `InUse` while iptables references FROM).
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), IpsetError> {
        let req = Request::Rename {
            from: from.to_string(),
            to: to.to_string(),
        };
        self.request_ack(IpsetOp::Rename, from, &req, None).await
    }

    /// `ipset swap FROM TO`: atomically exchanges the contents behind two names; iptables
    /// references stay with the names.
    pub async fn swap(&mut self, from: &str, to: &str) -> Result<(), IpsetError> {
        let req = Request::Swap {
            from: from.to_string(),
            to: to.to_string(),
        };
        self.request_ack(IpsetOp::Swap, from, &req, None).await
    }

    /// `ipset list NAME`: header and members.
    pub async fn list(&mut self, name: &str) -> Result<ListedSet, IpsetError> {
        self.list_one(name, ListMode::Full).await
    }

    /// `ipset list -t NAME`: the header only.
    pub async fn header(&mut self, name: &str) -> Result<SetHeader, IpsetError> {
        let set = self.list_one(name, ListMode::Header).await?;
        set.header.ok_or_else(|| IpsetError::Decode {
            op: IpsetOp::List,
            set: name.to_string(),
            source: DecodeError::Missing { what: "set header" },
        })
    }

    /// `ipset list -n`: the names of all sets.
    pub async fn list_names(&mut self) -> Result<Vec<String>, IpsetError> {
        let sets = self.dump(None, ListMode::Names).await?;
        Ok(sets.into_iter().map(|s| s.name).collect())
    }

    /// `ipset list`: every set with its members.
    pub async fn list_all(&mut self) -> Result<Vec<ListedSet>, IpsetError> {
        self.dump(None, ListMode::Full).await
    }

    /// The members of a set, without comments.
    pub async fn members(&mut self, name: &str) -> Result<BTreeSet<Entry>, IpsetError> {
        Ok(self
            .list(name)
            .await?
            .members
            .into_iter()
            .map(|m| m.entry)
            .collect())
    }

    async fn list_one(&mut self, name: &str, mode: ListMode) -> Result<ListedSet, IpsetError> {
        let mut sets = self.dump(Some(name), mode).await?;
        match sets.pop() {
            Some(set) if sets.is_empty() && set.name == name => Ok(set),
            _ => Err(IpsetError::Decode {
                op: IpsetOp::List,
                set: name.to_string(),
                source: DecodeError::Invalid {
                    what: "list dump",
                    detail: "expected exactly the requested set".to_string(),
                },
            }),
        }
    }

    /// `ipset add SET ENTRY` (fails with `ElementExists` if present).
    pub async fn add(&mut self, set: &str, entry: &Entry) -> Result<(), IpsetError> {
        self.adt_one(
            AdtOp::Add,
            set,
            Member {
                entry: *entry,
                comment: None,
            },
            false,
        )
        .await
    }

    /// `ipset add SET ENTRY comment TEXT` (the set must have been created with `comment`).
    pub async fn add_with_comment(
        &mut self,
        set: &str,
        entry: &Entry,
        comment: &str,
    ) -> Result<(), IpsetError> {
        self.adt_one(
            AdtOp::Add,
            set,
            Member {
                entry: *entry,
                comment: Some(comment.to_string()),
            },
            false,
        )
        .await
    }

    /// `ipset del SET ENTRY` (fails with `ElementMissing` if absent).
    pub async fn del(&mut self, set: &str, entry: &Entry) -> Result<(), IpsetError> {
        self.adt_one(
            AdtOp::Del,
            set,
            Member {
                entry: *entry,
                comment: None,
            },
            false,
        )
        .await
    }

    /// `ipset test SET ENTRY`: whether the entry is a member.
    pub async fn test(&mut self, set: &str, entry: &Entry) -> Result<bool, IpsetError> {
        match self
            .adt_one(
                AdtOp::Test,
                set,
                Member {
                    entry: *entry,
                    comment: None,
                },
                false,
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(IpsetError::ElementMissing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn adt_one(
        &mut self,
        op: AdtOp,
        set: &str,
        member: Member,
        exist_ok: bool,
    ) -> Result<(), IpsetError> {
        let entry = member.entry.to_string();
        let req = Request::Adt {
            op,
            name: set.to_string(),
            exist_ok,
            members: vec![member],
            batch: None,
        };
        self.request_ack(adt_op(op), set, &req, Some(&[entry]))
            .await
    }

    /// `ipset -exist restore` of `add` lines: adds all entries, many per message; entries
    /// already present are fine. Returns how many entries were sent.
    pub async fn add_batch<'a>(
        &mut self,
        set: &str,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<usize, IpsetError> {
        let items: Vec<(&Entry, Option<&str>)> = entries.into_iter().map(|e| (e, None)).collect();
        self.batch(set, &[(AdtOp::Add, &items)]).await?;
        Ok(items.len())
    }

    /// Adds members with comments (the set must have been created with `comment`).
    pub async fn add_batch_members(
        &mut self,
        set: &str,
        members: &[Member],
    ) -> Result<usize, IpsetError> {
        let items: Vec<(&Entry, Option<&str>)> = members
            .iter()
            .map(|m| (&m.entry, m.comment.as_deref()))
            .collect();
        self.batch(set, &[(AdtOp::Add, &items)]).await?;
        Ok(items.len())
    }

    /// Deletes all entries, many per message; absent entries are fine.
    pub async fn del_batch<'a>(
        &mut self,
        set: &str,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<usize, IpsetError> {
        let items: Vec<(&Entry, Option<&str>)> = entries.into_iter().map(|e| (e, None)).collect();
        self.batch(set, &[(AdtOp::Del, &items)]).await?;
        Ok(items.len())
    }

    /// Applies a known change: deletes `remove`, then adds `add`, idempotently, in as few
    /// `sendmsg` calls as the socket allows (one for a small change).
    pub async fn update<'a>(
        &mut self,
        set: &str,
        remove: impl IntoIterator<Item = &'a Entry>,
        add: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<SyncStats, IpsetError> {
        let del: Vec<(&Entry, Option<&str>)> = remove.into_iter().map(|e| (e, None)).collect();
        let add: Vec<(&Entry, Option<&str>)> = add.into_iter().map(|e| (e, None)).collect();
        self.batch(set, &[(AdtOp::Del, &del), (AdtOp::Add, &add)])
            .await?;
        Ok(SyncStats {
            added: add.len(),
            removed: del.len(),
        })
    }

    /// Runs every job (op + entries) as ADT batch messages of up to 64 KiB, pipelined, and
    /// reports the first failure in entry order.
    async fn batch(&mut self, set: &str, jobs: &[Job<'_, '_>]) -> Result<(), IpsetError> {
        let outcome = self.batch_each(set, jobs).await?;
        let Some((i, failure)) = outcome.failed.into_iter().next() else {
            return Ok(());
        };
        let (op, entry) = locate(jobs, i);
        let entry = entry.map(|e| e.to_string());
        Err(match failure {
            Failure::Refused { errno, .. } => IpsetError::from_errno(op, set, errno, entry),
            Failure::Lost(e) | Failure::NotSent(e) => transport_error(op, set, e, entry),
        })
    }

    /// The jobs' entries (numbered across jobs in order) as pipelined ADT batch messages,
    /// answered per entry: which failed and why. A message the kernel refuses stops at the
    /// failing entry, which its LINENO names; the entries after it go again in a next round,
    /// except adds to a set that is full (`IPSET_ERR_HASH_FULL`), which fail with it unsent. The
    /// kernel treats present (add) and absent (del) entries as done (no `NLM_F_EXCL`).
    pub async fn batch_each(
        &mut self,
        set: &str,
        jobs: &[Job<'_, '_>],
    ) -> Result<BatchOutcome, IpsetError> {
        let offsets: Vec<usize> = jobs
            .iter()
            .scan(0, |n, (_, items)| {
                let at = *n;
                *n += items.len();
                Some(at)
            })
            .collect();
        // Entries still to send, per job (indices into the job's items).
        let mut pending: Vec<Vec<usize>> =
            jobs.iter().map(|(_, it)| (0..it.len()).collect()).collect();
        let mut failed: Vec<(usize, Failure)> = Vec::new();
        let mut full = false;
        while pending.iter().any(|p| !p.is_empty()) {
            let (buf, msgs) = self.encode_round(set, jobs, &pending)?;
            let outcome = self
                .sock
                .batch(msgs.len(), &BATCH, |i, b| {
                    if let Some(m) = msgs.get(i) {
                        b.extend_from_slice(buf.get(m.bytes.clone()).unwrap_or_default());
                    }
                    Ok::<_, std::convert::Infallible>(())
                })
                .await;
            let mut next: Vec<Vec<usize>> = jobs.iter().map(|_| Vec::new()).collect();
            for (m, f) in outcome.failed {
                let Some(msg) = msgs.get(m) else { continue };
                let Some(round) = pending.get(msg.job) else {
                    continue;
                };
                let items = round.get(msg.entries.clone()).unwrap_or_default();
                let global = |k: usize| offsets.get(msg.job).copied().unwrap_or(0) + k;
                let is_add = jobs.get(msg.job).is_some_and(|(op, _)| *op == AdtOp::Add);
                match f {
                    Failure::Refused { errno, echo } => {
                        // LINENO counts from the round's first pending entry of the job.
                        let at = reply::lineno_of(&echo)
                            .and_then(|l| usize::try_from(l).ok())
                            .and_then(|l| l.checked_sub(1 + msg.entries.start))
                            .filter(|p| *p < items.len());
                        let Some(at) = at else {
                            // The kernel did not say which: every entry shares the failure.
                            failed.extend(
                                items.iter().map(|k| (global(*k), Failure::refused(errno))),
                            );
                            continue;
                        };
                        if let Some(k) = items.get(at) {
                            failed.push((global(*k), Failure::refused(errno)));
                        }
                        full |= is_add && errno == IPSET_ERR_HASH_FULL;
                        let rest = items.get(at + 1..).unwrap_or_default();
                        if full && is_add {
                            failed
                                .extend(rest.iter().map(|k| (global(*k), Failure::refused(errno))));
                        } else if let Some(n) = next.get_mut(msg.job) {
                            n.extend_from_slice(rest);
                        }
                    }
                    other => failed.extend(items.iter().map(|k| (global(*k), other.clone()))),
                }
            }
            if full {
                // A full set refuses every further add: fail them without a request each.
                for (job, (op, _)) in jobs.iter().enumerate() {
                    if *op == AdtOp::Add
                        && let Some(n) = next.get_mut(job)
                    {
                        let errno = IPSET_ERR_HASH_FULL;
                        failed.extend(n.drain(..).map(|k| {
                            (
                                offsets.get(job).copied().unwrap_or(0) + k,
                                Failure::refused(errno),
                            )
                        }));
                    }
                }
            }
            pending = next;
        }
        failed.sort_by_key(|(i, _)| *i);
        if full {
            tracing::warn!(
                set,
                "ipset is full: its remaining adds fail without being sent"
            );
        }
        Ok(BatchOutcome { failed })
    }

    /// Encodes the pending entries of every job as ADT messages into one buffer.
    fn encode_round(
        &self,
        set: &str,
        jobs: &[Job<'_, '_>],
        pending: &[Vec<usize>],
    ) -> Result<(Vec<u8>, Vec<AdtMessage>), IpsetError> {
        let mut buf = Vec::new();
        let mut scratch = Vec::new();
        let mut msgs = Vec::new();
        for (job, ((op, items), round)) in jobs.iter().zip(pending).enumerate() {
            let mut pos = 0usize;
            while pos < round.len() {
                let header = BatchHeader {
                    seq: 0,
                    protocol: self.protocol,
                    op: *op,
                    name: set,
                    exist_ok: true,
                    first_lineno: u32::try_from(pos + 1).unwrap_or(u32::MAX),
                };
                let mut iter = round
                    .get(pos..)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|k| items.get(*k).copied())
                    .peekable();
                let count = request::encode_batch(&mut scratch, header, &mut iter)
                    .map_err(|source| encode_error(adt_op(*op), set, source))?;
                let start = buf.len();
                buf.extend_from_slice(&scratch);
                msgs.push(AdtMessage {
                    bytes: start..buf.len(),
                    job,
                    entries: pos..pos + count,
                });
                pos += count;
            }
        }
        Ok((buf, msgs))
    }

    /// Brings `set` to exactly `wanted`: lists the kernel's members, then deletes and adds
    /// the difference in batches (deletes first, so a full set has room).
    pub async fn sync(
        &mut self,
        set: &str,
        wanted: &BTreeSet<Entry>,
    ) -> Result<SyncStats, IpsetError> {
        let listed = self.list(set).await?;
        if let Some(header) = &listed.header {
            for entry in wanted {
                request::check_entry(&header.set_type, entry)
                    .map_err(|source| encode_error(IpsetOp::Sync, set, source))?;
            }
        }
        let observed = listed.members.into_iter().map(|m| m.entry).collect();
        self.sync_from(set, &observed, wanted).await
    }

    /// Like [`IpsetClient::sync`] but against `observed`, the members the caller knows the
    /// set holds (e.g. from its last sync): the cost follows the change, not the set.
    pub async fn sync_from(
        &mut self,
        set: &str,
        observed: &BTreeSet<Entry>,
        wanted: &BTreeSet<Entry>,
    ) -> Result<SyncStats, IpsetError> {
        let normalized;
        // Only network entries can be unnormalized; every member of a set has one type.
        let has_nets = matches!(
            wanted.first(),
            Some(Entry::Net(_) | Entry::IpPortNet { .. })
        );
        let wanted = if has_nets && wanted.iter().any(|e| e.normalized() != *e) {
            normalized = wanted
                .iter()
                .map(|e| e.normalized())
                .collect::<BTreeSet<_>>();
            &normalized
        } else {
            wanted
        };
        let (add, del) = diff(observed, wanted);
        let stats = self.update(set, del, add).await?;
        tracing::debug!(
            set,
            added = stats.added,
            removed = stats.removed,
            "ipset sync"
        );
        Ok(stats)
    }

    /// Replaces the members of `set` atomically: fills a temporary set of the same type and
    /// family, SWAPs it with `set` (iptables references stay with the name) and destroys it.
    /// Packets never see a half-filled set.
    pub async fn replace(
        &mut self,
        set: &str,
        members: &BTreeSet<Entry>,
    ) -> Result<(), IpsetError> {
        let header = self.header(set).await?;
        let tmp = temp_name(set);
        let mut spec = header.create_spec(tmp.clone());
        if spec.set_type.is_hash() {
            let needed = u32::try_from(members.len()).unwrap_or(u32::MAX);
            spec.maxelem = Some(spec.maxelem.unwrap_or(65_536).max(needed));
        }
        // A temporary set left over by an interrupted replace is ours to remove.
        match self.destroy(&tmp).await {
            Ok(()) | Err(IpsetError::SetMissing { .. }) => {}
            Err(e) => return Err(e),
        }
        self.create(&spec).await?;
        let result = async {
            self.add_batch(&tmp, members).await?;
            self.swap(set, &tmp).await
        }
        .await;
        let cleanup = self.destroy(&tmp).await;
        result?;
        cleanup
    }

    /// Gives a hash set another `maxelem`, members kept, atomically: a temporary set of the
    /// same type, family and options but `maxelem` is filled and SWAPped in (iptables rules
    /// keep referring to the name), then destroyed. The kernel compares `maxelem` when
    /// `ipset create -exist` meets an existing set, which is how stock kube-proxy ensures its
    /// sets. Shrinking keeps the first `maxelem` members in order; returns how many did not fit.
    pub async fn resize(&mut self, set: &str, maxelem: u32) -> Result<usize, IpsetError> {
        let listed = self.list(set).await?;
        let header = listed.header.ok_or_else(|| IpsetError::Decode {
            op: IpsetOp::List,
            set: set.to_string(),
            source: DecodeError::Missing { what: "set header" },
        })?;
        let tmp = temp_name(set);
        let mut spec = header.create_spec(tmp.clone());
        spec.maxelem = Some(maxelem);
        let members: BTreeSet<Entry> = listed.members.into_iter().map(|m| m.entry).collect();
        let fit = usize::try_from(maxelem).unwrap_or(usize::MAX);
        let dropped = members.len().saturating_sub(fit);
        match self.destroy(&tmp).await {
            Ok(()) | Err(IpsetError::SetMissing { .. }) => {}
            Err(e) => return Err(e),
        }
        self.create(&spec).await?;
        let result = async {
            self.add_batch(&tmp, members.iter().take(fit)).await?;
            self.swap(set, &tmp).await
        }
        .await;
        let cleanup = self.destroy(&tmp).await;
        result?;
        cleanup.map(|()| dropped)
    }

    /// Sends `req` and waits for its acknowledgement.
    async fn request_ack(
        &mut self,
        op: IpsetOp,
        set: &str,
        req: &Request,
        entries: Option<&[String]>,
    ) -> Result<(), IpsetError> {
        let protocol = self.protocol;
        self.sock
            .request(
                0,
                |b| {
                    req.emit_into(b, 0, protocol)
                        .map_err(|source| Fail::Client(encode_error(op, set, source)))
                },
                |_| Ok::<_, Fail>(()),
            )
            .await
            .map_err(|f| f.into_error(op, set, entries.and_then(|e| e.first().cloned())))
    }

    /// Sends `req` and returns its (non-ack) reply.
    async fn request_reply(
        &mut self,
        op: IpsetOp,
        set: &str,
        req: &Request,
    ) -> Result<Reply, IpsetError> {
        let protocol = self.protocol;
        let mut got = None;
        self.sock
            .request(
                0,
                |b| {
                    req.emit_into(b, 0, protocol)
                        .map_err(|source| Fail::Client(encode_error(op, set, source)))
                },
                |m| {
                    let (_, reply) = reply::parse_reply(m.bytes)
                        .map_err(|source| Fail::Client(decode_error(op, set, source)))?;
                    if got.is_none() && !matches!(reply, Reply::Ack | Reply::Done) {
                        got = Some(reply);
                    }
                    Ok(())
                },
            )
            .await
            .map_err(|f| f.into_error(op, set, None))?;
        got.ok_or_else(|| {
            decode_error(
                op,
                set,
                DecodeError::Missing {
                    what: "reply message",
                },
            )
        })
    }

    /// Runs a LIST dump and merges its multipart messages. Each receive is bounded by the
    /// timeout (a large dump may take several).
    async fn dump(
        &mut self,
        name: Option<&str>,
        mode: ListMode,
    ) -> Result<Vec<ListedSet>, IpsetError> {
        let op = IpsetOp::List;
        let set = name.unwrap_or("");
        let req = Request::List {
            name: name.map(str::to_string),
            mode,
        };
        let protocol = self.protocol;
        let mut decoder = ListDecoder::new();
        self.sock
            .dump(
                |b| {
                    req.emit_into(b, 0, protocol)
                        .map_err(|source| Fail::Client(encode_error(op, set, source)))
                },
                |part| {
                    match part {
                        DumpPart::Message(m) => {
                            let (_, reply) = reply::parse_reply(m.bytes)
                                .map_err(|source| Fail::Client(decode_error(op, set, source)))?;
                            if reply == Reply::List {
                                decoder.feed(m.bytes).map_err(|source| {
                                    Fail::Client(decode_error(op, set, source))
                                })?;
                            }
                        }
                        DumpPart::Restart => decoder = ListDecoder::new(),
                    }
                    Ok(())
                },
            )
            .await
            .map_err(|f| f.into_error(op, set, None))?;
        Ok(decoder.finish())
    }
}

impl std::fmt::Debug for IpsetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpsetClient")
            .field("protocol", &self.protocol)
            .field("timeout", &self.sock.options().timeout)
            .finish_non_exhaustive()
    }
}

fn decode_error(op: IpsetOp, set: &str, source: DecodeError) -> IpsetError {
    IpsetError::Decode {
        op,
        set: set.to_string(),
        source,
    }
}

fn encode_error(op: IpsetOp, set: &str, source: EncodeError) -> IpsetError {
    IpsetError::Encode {
        op,
        set: set.to_string(),
        source,
    }
}

fn unexpected(op: IpsetOp, set: &str, reply: &Reply) -> IpsetError {
    decode_error(
        op,
        set,
        DecodeError::Invalid {
            what: "reply",
            detail: format!("unexpected {reply:?}"),
        },
    )
}

fn adt_op(op: AdtOp) -> IpsetOp {
    match op {
        AdtOp::Add => IpsetOp::Add,
        AdtOp::Del => IpsetOp::Del,
        AdtOp::Test => IpsetOp::Test,
    }
}

/// The protocol to speak with a kernel that speaks `kernel`: ours (7) or the kernel's if
/// older, down to 6 (the two differ only in LIST's INDEX attribute and GET_BY* commands,
/// which we do not rely on). `None` below 6.
pub(crate) fn negotiate(kernel: u8) -> Option<u8> {
    (kernel >= IPSET_PROTOCOL_MIN).then(|| kernel.min(IPSET_PROTOCOL))
}

/// A stable temporary name (<= 31 bytes) for replacing `set`.
pub fn temp_name(set: &str) -> String {
    // FNV-1a: stable across runs, so a leftover from a crash is found again.
    let hash = set.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("KIPVS-TMP-{hash:08x}")
}
