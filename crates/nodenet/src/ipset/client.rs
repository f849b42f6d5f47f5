//! The ipset client: one NETLINK_NETFILTER socket, every request bounded by a timeout,
//! batches of many entries per message, and set-level `sync` and `replace`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

use super::constants::{IPSET_PROTOCOL, IPSET_PROTOCOL_MIN, NETLINK_NETFILTER};
use super::entry::{Entry, Family, Member, SetType};
use super::error::{DecodeError, EncodeError, IpsetError, Op};
use super::message::Messages;
use super::reply::{self, ListDecoder, ListedSet, Reply, SetHeader};
use super::request::{self, AdtOp, BatchHeader, CreateSpec, ListMode, Request};

/// Client settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bound on every request and on each receive of a dump.
    pub timeout: Duration,
    /// Receive buffer asked of the kernel (SO_RCVBUF).
    pub socket_rcvbuf: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(10),
            socket_rcvbuf: 4 << 20,
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
type Item<'a> = (&'a Entry, Option<&'a str>);
/// A batch operation over entries.
type Job<'a, 'b> = (AdtOp, &'b [Item<'a>]);

/// Most bytes packed into one `sendmsg` (three 64 KiB ADT messages). Netlink refuses a
/// datagram larger than the socket's send buffer minus 32, so the limit is lowered to fit
/// (the default buffer, 212992, holds three).
const SEND_LIMIT: usize = 200 << 10;

/// Receive buffer: a dump part is at most 32 KiB, an echoed failed batch about 64 KiB.
const RECV_BUF: usize = 256 << 10;

/// An ipset client bound to the caller's network namespace (the one of the thread that
/// called [`IpsetClient::connect`]).
pub struct IpsetClient {
    socket: TokioSocket,
    seq: u32,
    protocol: u8,
    timeout: Duration,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
    /// Bytes per `sendmsg` (at least one message always goes alone).
    send_limit: usize,
    revisions: BTreeMap<(SetType, Family), u8>,
}

impl IpsetClient {
    /// Opens the socket and negotiates the protocol (7, or 6 on older kernels).
    pub async fn connect() -> Result<Self, IpsetError> {
        Self::connect_with(Config::default()).await
    }

    pub async fn connect_with(config: Config) -> Result<Self, IpsetError> {
        let io = |source| IpsetError::Io {
            op: Op::Protocol,
            source,
        };
        let mut socket = TokioSocket::new(NETLINK_NETFILTER).map_err(io)?;
        socket.socket_mut().bind_auto().map_err(io)?;
        socket
            .socket_ref()
            .connect(&SocketAddr::new(0, 0))
            .map_err(io)?;
        // A small buffer only slows dumps down; not fatal.
        let _ = socket.socket_ref().set_rx_buf_sz(config.socket_rcvbuf);
        let sndbuf =
            nix::sys::socket::getsockopt(socket.socket_ref(), nix::sys::socket::sockopt::SndBuf)
                .unwrap_or(SEND_LIMIT);
        let send_limit = SEND_LIMIT.min(sndbuf.saturating_sub(1024));
        let mut client = IpsetClient {
            socket,
            seq: std::process::id().wrapping_mul(0x9E37_79B9),
            protocol: IPSET_PROTOCOL,
            timeout: config.timeout,
            send_buf: Vec::with_capacity(70 << 10),
            recv_buf: Vec::with_capacity(RECV_BUF),
            send_limit,
            revisions: BTreeMap::new(),
        };
        match client
            .request_reply(Op::Protocol, "", &Request::Protocol)
            .await?
        {
            Reply::Protocol { version, .. } => match negotiate(version) {
                Some(protocol) => {
                    client.protocol = protocol;
                    Ok(client)
                }
                None => Err(IpsetError::Unsupported {
                    op: Op::Protocol,
                    set: String::new(),
                    kernel: version,
                }),
            },
            other => Err(unexpected(Op::Protocol, "", &other)),
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
        self.request_ack(Op::Create, &spec.name, &req, None).await
    }

    /// The revision to create `set_type` with: the highest both we and the kernel know.
    async fn revision(
        &mut self,
        set_type: &SetType,
        family: Family,
        set: &str,
    ) -> Result<u8, IpsetError> {
        if let Some(rev) = self.revisions.get(&(set_type.clone(), family)) {
            return Ok(*rev);
        }
        let req = Request::Type {
            set_type: set_type.clone(),
            family,
        };
        match self.request_reply(Op::Type, set, &req).await? {
            Reply::Type {
                revision,
                revision_min,
                ..
            } => {
                let rev = revision.min(set_type.max_revision());
                if rev < revision_min {
                    return Err(IpsetError::UnsupportedRevision {
                        op: Op::Create,
                        set: set.to_string(),
                        set_type: set_type.to_string(),
                        kernel_min: revision_min,
                        ours: rev,
                    });
                }
                self.revisions.insert((set_type.clone(), family), rev);
                Ok(rev)
            }
            other => Err(unexpected(Op::Type, set, &other)),
        }
    }

    /// `ipset destroy NAME`.
    pub async fn destroy(&mut self, name: &str) -> Result<(), IpsetError> {
        self.request_ack(
            Op::Destroy,
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
            Op::Flush,
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
        self.request_ack(Op::Rename, from, &req, None).await
    }

    /// `ipset swap FROM TO`: atomically exchanges the contents behind two names; iptables
    /// references stay with the names.
    pub async fn swap(&mut self, from: &str, to: &str) -> Result<(), IpsetError> {
        let req = Request::Swap {
            from: from.to_string(),
            to: to.to_string(),
        };
        self.request_ack(Op::Swap, from, &req, None).await
    }

    /// `ipset list NAME`: header and members.
    pub async fn list(&mut self, name: &str) -> Result<ListedSet, IpsetError> {
        self.list_one(name, ListMode::Full).await
    }

    /// `ipset list -t NAME`: the header only.
    pub async fn header(&mut self, name: &str) -> Result<SetHeader, IpsetError> {
        let set = self.list_one(name, ListMode::Header).await?;
        set.header.ok_or_else(|| IpsetError::Decode {
            op: Op::List,
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
                op: Op::List,
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

    /// Encodes every job (op + entries) as ADT messages of up to 64 KiB, packs several
    /// messages per `sendmsg` (the kernel handles them in order within the call), and checks
    /// every acknowledgement. A failed entry is named from the LINENO the kernel echoes.
    async fn batch(&mut self, set: &str, jobs: &[Job<'_, '_>]) -> Result<(), IpsetError> {
        let mut chunk: Vec<u8> = Vec::new();
        let mut pending: Vec<(u32, usize)> = Vec::new();
        for (job, (op, items)) in jobs.iter().enumerate() {
            let mut pos = 0usize;
            while pos < items.len() {
                let rest = items.get(pos..).unwrap_or_default();
                let seq = self.next_seq();
                let header = BatchHeader {
                    seq,
                    protocol: self.protocol,
                    op: *op,
                    name: set,
                    exist_ok: true,
                    first_lineno: u32::try_from(pos + 1).unwrap_or(u32::MAX),
                };
                let mut buf = std::mem::take(&mut self.send_buf);
                // The iterator must not live across an await: the future would not be
                // provably Send (rustc's higher-ranked lifetime limits on `Copied`).
                let encoded = {
                    let mut iter = rest.iter().copied().peekable();
                    request::encode_batch(&mut buf, header, &mut iter)
                };
                let count = match encoded {
                    Ok(count) => count,
                    Err(source) => {
                        self.send_buf = buf;
                        return Err(encode_error(adt_op(*op), set, source));
                    }
                };
                if !chunk.is_empty() && chunk.len() + buf.len() > self.send_limit {
                    self.flush_batches(set, &mut chunk, &mut pending, jobs)
                        .await?;
                }
                chunk.extend_from_slice(&buf);
                self.send_buf = buf;
                pending.push((seq, job));
                pos += count;
            }
        }
        if !chunk.is_empty() {
            self.flush_batches(set, &mut chunk, &mut pending, jobs)
                .await?;
        }
        Ok(())
    }

    /// Sends the packed messages and waits for all their acks (bounded by the timeout);
    /// reports the first failure in message order.
    async fn flush_batches(
        &mut self,
        set: &str,
        chunk: &mut Vec<u8>,
        pending: &mut Vec<(u32, usize)>,
        jobs: &[Job<'_, '_>],
    ) -> Result<(), IpsetError> {
        let first_op = pending
            .first()
            .and_then(|(_, job)| jobs.get(*job))
            .map_or(Op::Add, |(op, _)| adt_op(*op));
        std::mem::swap(&mut self.send_buf, chunk);
        let sent = self.send(first_op, set).await;
        std::mem::swap(&mut self.send_buf, chunk);
        chunk.clear();
        sent?;
        let seqs: Vec<u32> = pending.iter().map(|(seq, _)| *seq).collect();
        let timeout = self.timeout;
        let waited = tokio::time::timeout(timeout, self.wait_acks(first_op, set, &seqs)).await;
        let failure = match waited {
            Ok(result) => result?,
            Err(_) => {
                return Err(IpsetError::Timeout {
                    op: first_op,
                    set: set.to_string(),
                    after: timeout,
                });
            }
        };
        let jobs_of: Vec<usize> = pending.iter().map(|(_, job)| *job).collect();
        pending.clear();
        if let Some((index, errno, lineno)) = failure {
            let (op, items) = jobs_of
                .get(index)
                .and_then(|job| jobs.get(*job))
                .copied()
                .unwrap_or((AdtOp::Add, &[]));
            let entry = lineno
                .and_then(|l| usize::try_from(l).ok())
                .and_then(|l| l.checked_sub(1))
                .and_then(|i| items.get(i))
                .map(|(e, _)| e.to_string());
            return Err(IpsetError::from_errno(adt_op(op), set, errno, entry));
        }
        Ok(())
    }

    /// Waits until every message in `seqs` is acknowledged; returns the first failure
    /// (index into `seqs`, errno, lineno).
    async fn wait_acks(
        &mut self,
        op: Op,
        set: &str,
        seqs: &[u32],
    ) -> Result<Option<(usize, i32, Option<u32>)>, IpsetError> {
        let mut answered = vec![false; seqs.len()];
        let mut left = seqs.len();
        let mut failure: Option<(usize, i32, Option<u32>)> = None;
        while left > 0 {
            self.recv(op, set).await?;
            for msg in Messages::new(&self.recv_buf) {
                let (hdr, msg) = msg.map_err(|source| decode_error(op, set, source))?;
                let Some(index) = seqs.iter().position(|s| *s == hdr.seq) else {
                    continue; // a late answer to an earlier, timed-out request
                };
                let reply =
                    reply::parse_reply(msg).map_err(|source| decode_error(op, set, source))?;
                let result = match reply.1 {
                    Reply::Ack => None,
                    Reply::Error { errno, lineno } => Some((index, errno, lineno)),
                    _ => continue,
                };
                if let Some(slot) = answered.get_mut(index).filter(|a| !**a) {
                    *slot = true;
                    left -= 1;
                    if let Some(fail) = result
                        && failure.is_none_or(|(i, _, _)| fail.0 < i)
                    {
                        failure = Some(fail);
                    }
                }
            }
        }
        Ok(failure)
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
                    .map_err(|source| encode_error(Op::Sync, set, source))?;
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
            op: Op::List,
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

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    async fn send(&mut self, op: Op, set: &str) -> Result<(), IpsetError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.socket.send(&self.send_buf)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(IpsetError::Io { op, source }),
            Err(_) => Err(IpsetError::Timeout {
                op,
                set: set.to_string(),
                after: timeout,
            }),
        }
    }

    async fn recv(&mut self, op: Op, set: &str) -> Result<(), IpsetError> {
        self.recv_buf.clear();
        if self.recv_buf.capacity() < RECV_BUF {
            self.recv_buf.reserve(RECV_BUF);
        }
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.socket.recv(&mut self.recv_buf)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(IpsetError::Io { op, source }),
            Err(_) => Err(IpsetError::Timeout {
                op,
                set: set.to_string(),
                after: timeout,
            }),
        }
    }

    fn encode(&mut self, op: Op, set: &str, req: &Request) -> Result<u32, IpsetError> {
        let seq = self.next_seq();
        let mut buf = std::mem::take(&mut self.send_buf);
        let result = req.emit_into(&mut buf, seq, self.protocol);
        self.send_buf = buf;
        result.map_err(|source| encode_error(op, set, source))?;
        Ok(seq)
    }

    /// Sends `req` and waits for its acknowledgement.
    async fn request_ack(
        &mut self,
        op: Op,
        set: &str,
        req: &Request,
        entries: Option<&[String]>,
    ) -> Result<(), IpsetError> {
        let seq = self.encode(op, set, req)?;
        self.send(op, set).await?;
        let overall = self.timeout;
        let entries = entries.unwrap_or_default();
        match tokio::time::timeout(overall, self.wait_ack(op, set, seq)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(WaitError::Kernel { errno, .. })) => Err(IpsetError::from_errno(
                op,
                set,
                errno,
                entries.first().cloned(),
            )),
            Ok(Err(WaitError::Other(e))) => Err(e),
            Err(_) => Err(IpsetError::Timeout {
                op,
                set: set.to_string(),
                after: overall,
            }),
        }
    }

    async fn wait_ack(&mut self, op: Op, set: &str, seq: u32) -> Result<(), WaitError> {
        loop {
            self.recv(op, set).await?;
            for msg in Messages::new(&self.recv_buf) {
                let (hdr, msg) = msg.map_err(|source| decode_error(op, set, source))?;
                if hdr.seq != seq {
                    continue; // a late answer to an earlier, timed-out request
                }
                match reply::parse_reply(msg).map_err(|source| decode_error(op, set, source))? {
                    (_, Reply::Ack) => return Ok(()),
                    (_, Reply::Error { errno, .. }) => {
                        return Err(WaitError::Kernel { errno });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends `req` and returns its (non-ack) reply.
    async fn request_reply(
        &mut self,
        op: Op,
        set: &str,
        req: &Request,
    ) -> Result<Reply, IpsetError> {
        let seq = self.encode(op, set, req)?;
        self.send(op, set).await?;
        let overall = self.timeout;
        let wait = async {
            loop {
                self.recv(op, set).await?;
                for msg in Messages::new(&self.recv_buf) {
                    let (hdr, msg) = msg.map_err(|source| IpsetError::Decode {
                        op,
                        set: set.to_string(),
                        source,
                    })?;
                    if hdr.seq != seq {
                        continue;
                    }
                    match reply::parse_reply(msg).map_err(|source| IpsetError::Decode {
                        op,
                        set: set.to_string(),
                        source,
                    })? {
                        (_, Reply::Ack) => {}
                        (_, Reply::Error { errno, .. }) => {
                            return Err(IpsetError::from_errno(op, set, errno, None));
                        }
                        (_, reply) => return Ok(reply),
                    }
                }
            }
        };
        match tokio::time::timeout(overall, wait).await {
            Ok(result) => result,
            Err(_) => Err(IpsetError::Timeout {
                op,
                set: set.to_string(),
                after: overall,
            }),
        }
    }

    /// Runs a LIST dump and merges its multipart messages. Each receive is bounded by the
    /// timeout (a large dump may take several).
    async fn dump(
        &mut self,
        name: Option<&str>,
        mode: ListMode,
    ) -> Result<Vec<ListedSet>, IpsetError> {
        let op = Op::List;
        let set = name.unwrap_or("");
        let req = Request::List {
            name: name.map(str::to_string),
            mode,
        };
        let seq = self.encode(op, set, &req)?;
        self.send(op, set).await?;
        let mut decoder = ListDecoder::new();
        loop {
            self.recv(op, set).await?;
            for msg in Messages::new(&self.recv_buf) {
                let (hdr, msg) = msg.map_err(|source| decode_error(op, set, source))?;
                if hdr.seq != seq {
                    continue;
                }
                match reply::parse_reply(msg).map_err(|source| decode_error(op, set, source))? {
                    (_, Reply::Done) => return Ok(decoder.finish()),
                    (_, Reply::Error { errno, .. }) => {
                        return Err(IpsetError::from_errno(op, set, errno, None));
                    }
                    (_, Reply::List) => decoder
                        .feed(msg)
                        .map_err(|source| decode_error(op, set, source))?,
                    _ => {}
                }
            }
        }
    }
}

impl std::fmt::Debug for IpsetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpsetClient")
            .field("protocol", &self.protocol)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

enum WaitError {
    Kernel { errno: i32 },
    Other(IpsetError),
}

impl From<IpsetError> for WaitError {
    fn from(e: IpsetError) -> Self {
        WaitError::Other(e)
    }
}

fn decode_error(op: Op, set: &str, source: DecodeError) -> IpsetError {
    IpsetError::Decode {
        op,
        set: set.to_string(),
        source,
    }
}

fn encode_error(op: Op, set: &str, source: EncodeError) -> IpsetError {
    IpsetError::Encode {
        op,
        set: set.to_string(),
        source,
    }
}

fn unexpected(op: Op, set: &str, reply: &Reply) -> IpsetError {
    decode_error(
        op,
        set,
        DecodeError::Invalid {
            what: "reply",
            detail: format!("unexpected {reply:?}"),
        },
    )
}

fn adt_op(op: AdtOp) -> Op {
    match op {
        AdtOp::Add => Op::Add,
        AdtOp::Del => Op::Del,
        AdtOp::Test => Op::Test,
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
