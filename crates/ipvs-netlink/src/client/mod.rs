//! The async client: one netlink socket per [`Client`], no request waiting longer than a timeout
//! for the kernel's next message, rebuilt after a timeout or socket error.

mod batch;
mod conn;
mod error;
mod family;
mod op;
mod table;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

pub use error::Error;
pub use op::Op;
pub use table::{Table, TableService};

use crate::config::Timeouts;
use crate::daemon::Daemon;
use crate::destination::Destination;
use crate::frame::{FLAGS_ACK, FLAGS_DUMP, FLAGS_GET, ReplyBody, encode, replies};
use crate::info::Info;
use crate::message::{IpvsCmd, IpvsMessage};
use crate::procfs::{self, Snapshot};
use crate::service::{Service, ServiceKey};
use conn::Conn;

/// How a [`Client`] talks to the kernel.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Network namespace to open the socket in (e.g. `/run/netns/x`, `/proc/PID/ns/net`);
    /// `None` is the calling thread's namespace.
    pub netns: Option<PathBuf>,
    /// Bound on each wait for the kernel: a request's answer, the next part of a dump, progress
    /// of [`Client::apply`].
    pub timeout: Duration,
    /// Most requests [`Client::apply`] keeps unanswered at once.
    pub window: usize,
    /// Socket receive buffer in bytes (set with `SO_RCVBUFFORCE` when permitted). Each pending
    /// acknowledgement costs about 1 KiB of it.
    pub rcvbuf: usize,
    /// Ask for an acknowledgement of every operation in [`Client::apply`] (`true`), or only of
    /// the last one per datagram, errors still being reported per operation (`false`: fewer
    /// syscalls; the kernel executes a datagram's requests in order, so the last ACK proves the
    /// earlier ones done).
    pub ack_every_op: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            netns: None,
            timeout: Duration::from_secs(10),
            window: 1024,
            rcvbuf: 32 << 20,
            ack_every_op: true,
        }
    }
}

/// A connection to the IPVS of one network namespace.
///
/// Requests run one at a time (`&mut self`); [`Client::apply`] pipelines many. After a timeout
/// or a socket error the socket is dropped and the next request opens a new one.
#[derive(Debug)]
pub struct Client {
    opts: ClientOptions,
    conn: Option<Conn>,
    family_id: u16,
    seq: u32,
    proc_table: Option<File>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

/// Outcome of one exchange before it is mapped to an operation's error.
enum Failure {
    Errno(i32),
    Other(Error),
}

impl Client {
    /// Connect in the calling thread's namespace with default options.
    pub async fn connect() -> Result<Self, Error> {
        Self::with_options(ClientOptions::default()).await
    }

    /// Connect with `opts` (namespace, timeout, window, receive buffer).
    pub async fn with_options(opts: ClientOptions) -> Result<Self, Error> {
        let mut client = Self {
            opts,
            conn: None,
            family_id: 0,
            seq: 0,
            proc_table: None,
        };
        client.reconnect().await?;
        Ok(client)
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    async fn reconnect(&mut self) -> Result<(), Error> {
        self.conn = None;
        let opened = conn::open(self.opts.netns.as_deref(), self.opts.rcvbuf)
            .await
            .map_err(|source| Error::Io {
                op: "open netlink socket",
                source,
            })?;
        let mut conn = Conn::new(opened.socket);
        let seq = self.next_seqs(1);
        let id = tokio::time::timeout(self.opts.timeout, family::resolve(&mut conn, seq))
            .await
            .map_err(|_| Error::Timeout {
                op: "resolve IPVS family",
                after: self.opts.timeout,
            })??;
        self.family_id = id;
        self.proc_table = opened.proc_table;
        self.conn = Some(conn);
        Ok(())
    }

    /// Reserve `n` consecutive sequence numbers, returning the first.
    fn next_seqs(&mut self, n: usize) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(u32::try_from(n).unwrap_or(u32::MAX));
        first
    }

    /// Send one request and collect its reply messages until ACK, DONE or an error.
    async fn exchange(
        &mut self,
        op: &'static str,
        msg: &IpvsMessage,
        flags: u16,
    ) -> Result<Vec<IpvsMessage>, Failure> {
        let mut out = Vec::new();
        self.exchange_each(op, msg, flags, &mut |m| {
            out.push(m);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Send one request and hand each reply message to `each` as it arrives, until ACK, DONE
    /// or an error (from the kernel, or from `each`, which ends the exchange).
    async fn exchange_each(
        &mut self,
        op: &'static str,
        msg: &IpvsMessage,
        flags: u16,
        each: &mut (dyn FnMut(IpvsMessage) -> Result<(), Error> + Send),
    ) -> Result<(), Failure> {
        if self.conn.is_none() {
            self.reconnect().await.map_err(Failure::Other)?;
        }
        let seq = self.next_seqs(1);
        let mut buf = Vec::with_capacity(256);
        encode(&mut buf, self.family_id, flags, seq, msg).map_err(|e| {
            Failure::Other(Error::InvalidArgument {
                op,
                target: String::new(),
                reason: e.to_string(),
            })
        })?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Other(Error::Io {
                op,
                source: std::io::Error::other("not connected"),
            }));
        };
        match exchange_on(conn, op, &buf, seq, self.opts.timeout, each).await {
            Ok(out) => out,
            Err(e) => {
                // The rest of the answer may still be queued: start over on a fresh socket.
                self.conn = None;
                Err(Failure::Other(e))
            }
        }
    }

    /// Run one operation and wait for its acknowledgement.
    async fn run(&mut self, op: &Op) -> Result<(), Error> {
        op.validate()?;
        match self.exchange(op.name(), &op.message(), FLAGS_ACK).await {
            Ok(_) => Ok(()),
            Err(Failure::Errno(e)) => Err(op.error(e)),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    async fn query(
        &mut self,
        op: &'static str,
        msg: &IpvsMessage,
        flags: u16,
    ) -> Result<Vec<IpvsMessage>, Error> {
        let mut out = Vec::new();
        self.query_each(op, msg, flags, &mut |m| {
            out.push(m);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// [`Client::query`], handing each reply message to `each` as it arrives.
    async fn query_each(
        &mut self,
        op: &'static str,
        msg: &IpvsMessage,
        flags: u16,
        each: &mut (dyn FnMut(IpvsMessage) -> Result<(), Error> + Send),
    ) -> Result<(), Error> {
        match self.exchange_each(op, msg, flags, each).await {
            Ok(()) => Ok(()),
            Err(Failure::Errno(e)) => Err(query_error(op, e)),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// `ipvsadm -A`.
    pub async fn add_service(&mut self, service: &Service) -> Result<(), Error> {
        self.run(&Op::AddService(service.clone())).await
    }

    /// `ipvsadm -E`: replace scheduler, flags, timeout, netmask, persistence engine.
    pub async fn update_service(&mut self, service: &Service) -> Result<(), Error> {
        self.run(&Op::UpdateService(service.clone())).await
    }

    /// `ipvsadm -D`.
    pub async fn delete_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        self.run(&Op::DeleteService(*key)).await
    }

    /// `ipvsadm -a`.
    pub async fn add_destination(
        &mut self,
        service: &ServiceKey,
        dest: &Destination,
    ) -> Result<(), Error> {
        self.run(&Op::AddDestination(*service, dest.clone())).await
    }

    /// `ipvsadm -e`.
    pub async fn update_destination(
        &mut self,
        service: &ServiceKey,
        dest: &Destination,
    ) -> Result<(), Error> {
        self.run(&Op::UpdateDestination(*service, dest.clone()))
            .await
    }

    /// `ipvsadm -d`.
    pub async fn delete_destination(
        &mut self,
        service: &ServiceKey,
        addr: std::net::IpAddr,
        port: u16,
    ) -> Result<(), Error> {
        self.run(&Op::DeleteDestination {
            service: *service,
            addr,
            port,
        })
        .await
    }

    /// `ipvsadm -C`: delete every service of the namespace.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.run(&Op::Flush).await
    }

    /// `ipvsadm -Z [service]`: zero counters of one service, or of all with `None`.
    pub async fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), Error> {
        self.run(&Op::Zero(service.copied())).await
    }

    /// `ipvsadm --set tcp tcpfin udp` (0 leaves a value unchanged).
    pub async fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), Error> {
        self.run(&Op::SetTimeouts(*timeouts)).await
    }

    /// `ipvsadm -L --timeout`.
    pub async fn timeouts(&mut self) -> Result<Timeouts, Error> {
        let msgs = self
            .query("get timeouts", &IpvsMessage::get_config(), FLAGS_GET)
            .await?;
        expect_one("get timeouts", msgs, IpvsCmd::SetConfig).map(|m| m.timeouts())
    }

    /// Version and connection table size (`ipvsadm -L` header line).
    pub async fn info(&mut self) -> Result<Info, Error> {
        let msgs = self
            .query("get info", &IpvsMessage::get_info(), FLAGS_GET)
            .await?;
        let m = expect_one("get info", msgs, IpvsCmd::SetInfo)?;
        m.info().map_err(|source| Error::Decode {
            op: "get info",
            source,
        })
    }

    /// `ipvsadm -L --daemon`.
    pub async fn daemons(&mut self) -> Result<Vec<Daemon>, Error> {
        let msgs = self
            .query("list daemons", &IpvsMessage::dump_daemons(), FLAGS_DUMP)
            .await?;
        msgs.iter()
            .map(|m| {
                m.daemon().map_err(|source| Error::Decode {
                    op: "list daemons",
                    source,
                })
            })
            .collect()
    }

    /// All services (GET_SERVICE dump), in kernel order.
    pub async fn list_services(&mut self) -> Result<Vec<Service>, Error> {
        let mut out = Vec::new();
        self.visit_services(|s| out.push(s)).await?;
        Ok(out)
    }

    /// All services (GET_SERVICE dump), in kernel order, each handed to `f` as soon as its
    /// message is decoded: the dump keeps nothing but what `f` keeps (the decoded messages of a
    /// 100,000-service dump, held until its end, take ~160 MiB).
    pub async fn visit_services(&mut self, mut f: impl FnMut(Service) + Send) -> Result<(), Error> {
        const OP: &str = "list services";
        let mut each = |m: IpvsMessage| {
            f(m.service()
                .map_err(|source| Error::Decode { op: OP, source })?);
            Ok(())
        };
        self.query_each(OP, &IpvsMessage::dump_services(), FLAGS_DUMP, &mut each)
            .await
    }

    /// One service (`NoSuchService` if absent).
    pub async fn get_service(&mut self, key: &ServiceKey) -> Result<Service, Error> {
        const OP: &str = "get service";
        match self
            .exchange(OP, &IpvsMessage::get_service(key), FLAGS_GET)
            .await
        {
            Ok(msgs) => expect_one(OP, msgs, IpvsCmd::NewService)?
                .service()
                .map_err(|source| Error::Decode { op: OP, source }),
            Err(Failure::Errno(e)) => Err(Op::DeleteService(*key).error(e).renamed(OP)),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// A service's destinations (GET_DEST dump). The kernel answers an empty list for a
    /// service that does not exist.
    pub async fn list_destinations(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<Destination>, Error> {
        const OP: &str = "list destinations";
        let family = service.family();
        let msgs = self
            .query(OP, &IpvsMessage::dump_dests(service), FLAGS_DUMP)
            .await?;
        msgs.iter()
            .map(|m| {
                m.destination(family)
                    .map_err(|source| Error::Decode { op: OP, source })
            })
            .collect()
    }

    /// Every service with its destinations, complete (stats, thresholds, persistent
    /// connections, tunnel parameters): one GET_SERVICE dump plus one GET_DEST dump per service.
    /// For a fast read of weights and connection counts see [`Client::snapshot`].
    pub async fn table(&mut self) -> Result<Table, Error> {
        let services = self.list_services().await?;
        let mut table = Table::default();
        for service in services {
            let destinations = self.list_destinations(&service.key).await?;
            // One request per service, each usually answered at once: without a yield the task
            // runs a whole cooperative budget of requests (over 100 ms on a slow machine) before
            // anything else on its thread, such as the caller's change syncs, gets a turn.
            tokio::task::yield_now().await;
            table.services.insert(
                service.key,
                TableService {
                    service,
                    destinations,
                },
            );
        }
        Ok(table)
    }

    /// The whole table from `/proc/net/ip_vs` of the client's namespace, in one read: services
    /// with scheduler and flags, destinations with method, weight and active/inactive
    /// connections. Much faster than [`Client::table`] on large tables.
    ///
    /// Only trustworthy while no other network namespace on the host has IPVS services: the
    /// kernel's `ip_vs_info_seq_next` walks the global service hash without checking the
    /// namespace (only `seq_start`, re-run on every ~4 KiB read, does), so this text then omits
    /// some of ours and includes theirs (seen on 6.1 with two namespaces of 500 services: 251
    /// read back). Use [`Client::table`] where that cannot be ruled out.
    pub async fn snapshot(&mut self) -> Result<Snapshot, Error> {
        const OP: &str = "read /proc/net/ip_vs";
        if self.proc_table.is_none() {
            self.reconnect().await?;
        }
        let file = self
            .proc_table
            .as_ref()
            .ok_or_else(|| Error::Io {
                op: OP,
                source: std::io::Error::other("/proc/net/ip_vs is missing (is ip_vs loaded?)"),
            })?
            .try_clone()
            .map_err(|source| Error::Io { op: OP, source })?;
        let text = tokio::task::spawn_blocking(move || read_all(file))
            .await
            .map_err(|e| Error::Io {
                op: OP,
                source: std::io::Error::other(e),
            })?
            .map_err(|source| Error::Io { op: OP, source })?;
        procfs::parse(&text).map_err(|source| Error::Decode { op: OP, source })
    }

    /// Apply many operations pipelined (the fast path, `ipvsadm -R` done right): see
    /// [`ClientOptions::window`] and [`ClientOptions::ack_every_op`]. Returns one result per
    /// operation, in order; a failed operation does not stop the others.
    pub async fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), Error>> {
        batch::apply(self, ops).await
    }
}

fn read_all(mut file: File) -> std::io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::with_capacity(1 << 20);
    file.read_to_string(&mut text)?;
    Ok(text)
}

impl Error {
    /// The same error attributed to another operation name.
    fn renamed(self, new: &'static str) -> Self {
        match self {
            Self::NoSuchService { target, .. } => Self::NoSuchService { op: new, target },
            Self::Errno { target, errno, .. } => Self::Errno {
                op: new,
                target,
                errno,
            },
            Self::InvalidArgument { target, reason, .. } => Self::InvalidArgument {
                op: new,
                target,
                reason,
            },
            Self::PermissionDenied { .. } => Self::PermissionDenied { op: new },
            other => other,
        }
    }
}

fn query_error(op: &'static str, errno: i32) -> Error {
    let errno = nix::errno::Errno::from_raw(errno);
    match errno {
        nix::errno::Errno::EPERM | nix::errno::Errno::EACCES => Error::PermissionDenied { op },
        nix::errno::Errno::ESRCH => Error::NoSuchService {
            op,
            target: String::new(),
        },
        _ => Error::Errno {
            op,
            target: String::new(),
            errno,
        },
    }
}

fn expect_one(
    op: &'static str,
    msgs: Vec<IpvsMessage>,
    cmd: IpvsCmd,
) -> Result<IpvsMessage, Error> {
    let n = msgs.len();
    msgs.into_iter()
        .find(|m| m.cmd == cmd)
        .ok_or_else(|| Error::Decode {
            op,
            source: crate::DecodeError::Unexpected(format!(
                "expected a {cmd:?} message, got {n} other message(s)"
            )),
        })
}

/// Sends `buf` (one request, sequence `seq`) and hands each message of its answer to `each`
/// until the terminating reply. `timeout` bounds the send and each wait for the kernel's next
/// message, not the whole exchange: a dump of 100,000 services takes as long as it takes, a
/// kernel that stops answering fails it.
async fn exchange_on(
    conn: &mut Conn,
    op: &'static str,
    buf: &[u8],
    seq: u32,
    timeout: Duration,
    each: &mut (dyn FnMut(IpvsMessage) -> Result<(), Error> + Send),
) -> Result<Result<(), Failure>, Error> {
    let timed_out = |_| Error::Timeout { op, after: timeout };
    tokio::time::timeout(timeout, conn.send(buf))
        .await
        .map_err(timed_out)?
        .map_err(|source| Error::Io { op, source })?;
    loop {
        let data = tokio::time::timeout(timeout, conn.recv())
            .await
            .map_err(timed_out)?
            .map_err(|source| Error::Io { op, source })?;
        for reply in replies(data) {
            let reply = match reply {
                Ok(r) => r,
                Err(e) if e.seq.is_some_and(|s| s != seq) => continue,
                Err(e) => {
                    return Err(Error::Decode {
                        op,
                        source: e.error,
                    });
                }
            };
            if reply.seq != seq {
                // A late answer to an earlier request; not ours.
                continue;
            }
            match reply.body {
                ReplyBody::Message(m) => each(m)?,
                ReplyBody::Ack | ReplyBody::Done => return Ok(Ok(())),
                ReplyBody::Error(errno) => return Ok(Err(Failure::Errno(errno))),
                ReplyBody::Noise => {}
            }
        }
    }
}
