//! The async client: one netlink socket per [`Client`] through the shared transport
//! (`netlink-transport`): no request waits longer than a timeout for the kernel's next message,
//! and the socket is rebuilt after a timeout, lost replies or a socket error.

mod error;
mod op;
mod table;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use netlink_transport::{
    Ack, BatchOptions, BatchOutcome, DumpPart, Failure, Faults, NETLINK_GENERIC, Transport,
};

pub use error::Error;
pub use op::IpvsOp;
pub use table::{Table, TableService};

use crate::config::Timeouts;
use crate::daemon::Daemon;
use crate::destination::Destination;
use crate::frame;
use crate::info::Info;
use crate::message::{IPVS_GENL_NAME, IpvsCmd, IpvsMessage};
use crate::procfs::{self, Snapshot};
use crate::service::{Service, VirtualServiceKey};

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
    /// replies; the kernel executes a datagram's requests in order, so the last ACK proves the
    /// earlier ones done).
    pub ack_every_op: bool,
    /// The fault-injecting layer under the socket (tests).
    pub faults: Option<Faults>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            netns: None,
            timeout: Duration::from_secs(10),
            window: 1024,
            rcvbuf: 32 << 20,
            ack_every_op: true,
            faults: None,
        }
    }
}

/// Requests per datagram of [`Client::apply`]: well under the default socket send buffer.
const MAX_SEND: usize = 48 * 1024;

/// A connection to the IPVS of one network namespace.
///
/// Requests run one at a time (`&mut self`); [`Client::apply`] pipelines many. After a timeout
/// or a socket error the socket is dropped and the next request opens a new one.
#[derive(Debug)]
pub struct Client {
    opts: ClientOptions,
    transport: Transport,
    proc_table: Option<File>,
}

/// A failure inside an exchange: the transport's, or ours (decoding the answer).
enum Fail {
    Transport(netlink_transport::Error),
    Client(Error),
}

impl From<netlink_transport::Error> for Fail {
    fn from(e: netlink_transport::Error) -> Self {
        Fail::Transport(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Client(e)
    }
}

/// Appends `msg` as one request (the transport sets the family id, sequence number and flags).
fn put(buf: &mut Vec<u8>, msg: &IpvsMessage) -> Result<(), frame::EncodeError> {
    frame::encode(buf, 0, 0, 0, msg)
}

/// `/proc/net/ip_vs` of the namespace (opened there: `thread-self` is the opening thread's).
async fn open_proc_table(netns: Option<&std::path::Path>) -> Option<File> {
    let open = || File::open("/proc/thread-self/net/ip_vs").ok();
    match netns {
        None => open(),
        Some(_) => netlink_transport::netns::run_in(netns, open)
            .await
            .ok()
            .flatten(),
    }
}

impl Client {
    /// Connect in the calling thread's namespace with default options.
    pub async fn connect() -> Result<Self, Error> {
        Self::with_options(ClientOptions::default()).await
    }

    /// Connect with `opts` (namespace, timeout, window, receive buffer).
    pub async fn with_options(opts: ClientOptions) -> Result<Self, Error> {
        let transport = Transport::connect(netlink_transport::Options {
            netns: opts.netns.clone(),
            timeout: opts.timeout,
            rcvbuf: opts.rcvbuf,
            genl_family: Some(IPVS_GENL_NAME),
            faults: opts.faults.clone(),
            ..netlink_transport::Options::new(NETLINK_GENERIC)
        })
        .await
        .map_err(|e| Error::transport("connect", String::new(), e))?;
        let proc_table = open_proc_table(opts.netns.as_deref()).await;
        Ok(Self {
            opts,
            transport,
            proc_table,
        })
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Run one operation and wait for its acknowledgement.
    async fn run(&mut self, op: &IpvsOp) -> Result<(), Error> {
        op.validate()?;
        let msg = op.message();
        let res = self
            .transport
            .request(
                0,
                |b| put(b, &msg).map_err(|e| Fail::Client(op.invalid(e.to_string()))),
                |_| Ok::<_, Fail>(()),
            )
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(Fail::Transport(netlink_transport::Error::Kernel(errno))) => Err(op.error(errno)),
            Err(Fail::Transport(e)) => Err(Error::transport(op.name(), op.target(), e)),
            Err(Fail::Client(e)) => Err(e),
        }
    }

    /// One "do" request answered by one message.
    async fn get(
        &mut self,
        op: &'static str,
        msg: &IpvsMessage,
        cmd: IpvsCmd,
    ) -> Result<IpvsMessage, Fail> {
        let mut got = None;
        self.transport
            .request(
                0,
                |b| put(b, msg).map_err(|e| Fail::Client(Error::encode(op, &e))),
                |m| {
                    let m = frame::decode(&m).map_err(|source| Error::Decode { op, source })?;
                    if m.cmd == cmd {
                        got = Some(m);
                    }
                    Ok::<_, Fail>(())
                },
            )
            .await?;
        got.ok_or_else(|| {
            Fail::Client(Error::Decode {
                op,
                source: crate::DecodeError::Unexpected(format!(
                    "expected a {cmd:?} message, got none"
                )),
            })
        })
    }

    /// A dump, each message decoded and handed to `each` as it arrives. IPVS dumps are never
    /// flagged interrupted (ip_vs keeps no dump generation), so a restart is refused rather than
    /// replayed into `each`.
    async fn dump_each(
        &mut self,
        op: &'static str,
        msg: &IpvsMessage,
        each: &mut (dyn FnMut(IpvsMessage) -> Result<(), Error> + Send),
    ) -> Result<(), Error> {
        let res = self
            .transport
            .dump(
                |b| put(b, msg).map_err(|e| Fail::Client(Error::encode(op, &e))),
                |part| match part {
                    DumpPart::Message(m) => {
                        each(frame::decode(&m).map_err(|source| Error::Decode { op, source })?)?;
                        Ok(())
                    }
                    DumpPart::Restart => Err(Fail::Transport(
                        netlink_transport::Error::DumpInterrupted(1),
                    )),
                },
            )
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(Fail::Transport(e)) => Err(Error::transport(op, String::new(), e)),
            Err(Fail::Client(e)) => Err(e),
        }
    }

    /// A dump's messages, decoded.
    async fn dump(
        &mut self,
        op: &'static str,
        msg: &IpvsMessage,
    ) -> Result<Vec<IpvsMessage>, Error> {
        let mut out = Vec::new();
        self.dump_each(op, msg, &mut |m| {
            out.push(m);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// `ipvsadm -A`.
    pub async fn add_service(&mut self, service: &Service) -> Result<(), Error> {
        self.run(&IpvsOp::AddService(service.clone())).await
    }

    /// `ipvsadm -E`: replace scheduler, flags, timeout, netmask, persistence engine.
    pub async fn update_service(&mut self, service: &Service) -> Result<(), Error> {
        self.run(&IpvsOp::UpdateService(service.clone())).await
    }

    /// `ipvsadm -D`.
    pub async fn delete_service(&mut self, key: &VirtualServiceKey) -> Result<(), Error> {
        self.run(&IpvsOp::DeleteService(*key)).await
    }

    /// `ipvsadm -a`.
    pub async fn add_destination(
        &mut self,
        service: &VirtualServiceKey,
        dest: &Destination,
    ) -> Result<(), Error> {
        self.run(&IpvsOp::AddDestination(*service, dest.clone()))
            .await
    }

    /// `ipvsadm -e`.
    pub async fn update_destination(
        &mut self,
        service: &VirtualServiceKey,
        dest: &Destination,
    ) -> Result<(), Error> {
        self.run(&IpvsOp::UpdateDestination(*service, dest.clone()))
            .await
    }

    /// `ipvsadm -d`.
    pub async fn delete_destination(
        &mut self,
        service: &VirtualServiceKey,
        addr: std::net::IpAddr,
        port: u16,
    ) -> Result<(), Error> {
        self.run(&IpvsOp::DeleteDestination {
            service: *service,
            addr,
            port,
        })
        .await
    }

    /// `ipvsadm -C`: delete every service of the namespace.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.run(&IpvsOp::Flush).await
    }

    /// `ipvsadm -Z [service]`: zero counters of one service, or of all with `None`.
    pub async fn zero(&mut self, service: Option<&VirtualServiceKey>) -> Result<(), Error> {
        self.run(&IpvsOp::Zero(service.copied())).await
    }

    /// `ipvsadm --set tcp tcpfin udp` (0 leaves a value unchanged).
    pub async fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), Error> {
        self.run(&IpvsOp::SetTimeouts(*timeouts)).await
    }

    fn query<T>(op: &'static str, res: Result<T, Fail>) -> Result<T, Error> {
        res.map_err(|f| match f {
            Fail::Transport(e) => Error::transport(op, String::new(), e),
            Fail::Client(e) => e,
        })
    }

    /// `ipvsadm -L --timeout`.
    pub async fn timeouts(&mut self) -> Result<Timeouts, Error> {
        const OP: &str = "get timeouts";
        let res = self
            .get(OP, &IpvsMessage::get_config(), IpvsCmd::SetConfig)
            .await;
        Self::query(OP, res).map(|m| m.timeouts())
    }

    /// Version and connection table size (`ipvsadm -L` header line).
    pub async fn info(&mut self) -> Result<Info, Error> {
        const OP: &str = "get info";
        let res = self
            .get(OP, &IpvsMessage::get_info(), IpvsCmd::SetInfo)
            .await;
        Self::query(OP, res)?
            .info()
            .map_err(|source| Error::Decode { op: OP, source })
    }

    /// `ipvsadm -L --daemon`.
    pub async fn daemons(&mut self) -> Result<Vec<Daemon>, Error> {
        const OP: &str = "list daemons";
        self.dump(OP, &IpvsMessage::dump_daemons())
            .await?
            .iter()
            .map(|m| {
                m.daemon()
                    .map_err(|source| Error::Decode { op: OP, source })
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
    /// message is decoded: the dump keeps nothing but what `f` keeps (holding every decoded
    /// message to the end costs memory in proportion to the table: docs/benchmarks.md).
    pub async fn visit_services(&mut self, mut f: impl FnMut(Service) + Send) -> Result<(), Error> {
        const OP: &str = "list services";
        let mut each = |m: IpvsMessage| {
            f(m.service()
                .map_err(|source| Error::Decode { op: OP, source })?);
            Ok(())
        };
        self.dump_each(OP, &IpvsMessage::dump_services(), &mut each)
            .await
    }

    /// One service (`NoSuchService` if absent).
    pub async fn get_service(&mut self, key: &VirtualServiceKey) -> Result<Service, Error> {
        const OP: &str = "get service";
        match self
            .get(OP, &IpvsMessage::get_service(key), IpvsCmd::NewService)
            .await
        {
            Ok(m) => m
                .service()
                .map_err(|source| Error::Decode { op: OP, source }),
            Err(Fail::Transport(netlink_transport::Error::Kernel(errno))) => {
                Err(IpvsOp::DeleteService(*key).error(errno).renamed(OP))
            }
            Err(Fail::Transport(e)) => Err(Error::transport(OP, key.to_string(), e)),
            Err(Fail::Client(e)) => Err(e),
        }
    }

    /// A service's destinations (GET_DEST dump). The kernel answers an empty list for a
    /// service that does not exist.
    pub async fn list_destinations(
        &mut self,
        service: &VirtualServiceKey,
    ) -> Result<Vec<Destination>, Error> {
        const OP: &str = "list destinations";
        let family = service.family();
        self.dump(OP, &IpvsMessage::dump_dests(service))
            .await?
            .iter()
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
            // runs a whole cooperative budget of requests before anything else on its thread,
            // such as the caller's change syncs, gets a turn (docs/benchmarks.md).
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
    /// some of ours and includes theirs (docs/benchmarks.md has the lab case). Use
    /// [`Client::table`] where that cannot be ruled out.
    pub async fn snapshot(&mut self) -> Result<Snapshot, Error> {
        const OP: &str = "read /proc/net/ip_vs";
        if self.proc_table.is_none() {
            self.proc_table = open_proc_table(self.opts.netns.as_deref()).await;
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
    pub async fn apply(&mut self, ops: &[IpvsOp]) -> Vec<Result<(), Error>> {
        let outcome = self.apply_batch(ops).await;
        let mut results: Vec<Result<(), Error>> = ops.iter().map(|_| Ok(())).collect();
        for (i, failure) in outcome.failed {
            if let (Some(slot), Some(op)) = (results.get_mut(i), ops.get(i)) {
                *slot = Err(Error::from_failure(op, failure));
            }
        }
        results
    }

    /// [`Client::apply`], answered as the transport's [`BatchOutcome`]: the index of every
    /// operation that failed, and why (the kernel's errno, a lost answer, not sent). An
    /// operation refused before sending fails as not sent, with its [`Error`] as the cause.
    pub async fn apply_batch(&mut self, ops: &[IpvsOp]) -> BatchOutcome {
        let opts = BatchOptions {
            window: self.opts.window,
            ack: if self.opts.ack_every_op {
                Ack::Every
            } else {
                Ack::LastPerDatagram
            },
            max_datagram: MAX_SEND,
            keep_echo: false,
        };
        self.transport
            .batch(ops.len(), &opts, |i, buf| {
                let Some(op) = ops.get(i) else {
                    return Err(Error::InvalidArgument {
                        op: "apply",
                        target: String::new(),
                        reason: format!("no operation {i}"),
                    });
                };
                op.validate()?;
                put(buf, &op.message()).map_err(|e| op.invalid(e.to_string()))
            })
            .await
    }
}

impl Error {
    /// The error of `op` that failed in a batch.
    pub fn from_failure(op: &IpvsOp, failure: Failure) -> Self {
        match failure {
            Failure::Refused { errno, .. } => op.error(errno),
            Failure::Lost(e) | Failure::NotSent(e) => Error::transport(op.name(), op.target(), e),
        }
    }
}

fn read_all(mut file: File) -> std::io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::with_capacity(1 << 20);
    file.read_to_string(&mut text)?;
    Ok(text)
}
