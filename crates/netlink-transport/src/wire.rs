//! Netlink framing, no I/O: the 16-byte message header, splitting a datagram into messages, and
//! what a reply message says (data, ACK, error, end of dump). Total: any bytes give messages or a
//! [`FrameError`], never a panic.
//!
//! ```text
//! nlmsghdr { len u32, type u16, flags u16, seq u32, pid u32 }   (native byte order)
//! NLMSG_ERROR payload: { error i32 (0 = ACK, else -errno), the request's nlmsghdr [+ its payload] }
//! NLMSG_DONE payload:  { i32: 0, or -errno when the dump failed }
//! ```

use crate::errno::Errno;

pub use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL,
    NLM_F_MULTIPART, NLM_F_REPLACE, NLM_F_REQUEST,
};

/// Length of the netlink message header.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_NOOP`.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an ACK (error 0) or an error.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`.
pub const NLMSG_OVERRUN: u16 = 4;
/// `NLM_F_CAPPED` on an error: the echoed request is its header only.
pub const NLM_F_CAPPED: u16 = 0x100;

/// Bytes that do not frame as netlink messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than a header.
    #[error("{have} trailing bytes, no netlink header")]
    Header {
        /// Bytes left.
        have: usize,
    },
    /// A length field that does not fit the datagram.
    #[error("netlink length {len} does not fit the {have} bytes left of the datagram")]
    Length {
        /// The message's length field.
        len: u32,
        /// Bytes left.
        have: usize,
    },
    /// An `NLMSG_ERROR` too short for its error code.
    #[error("NLMSG_ERROR shorter than its error code")]
    ShortError,
    /// A message longer than a netlink length can say.
    #[error("a message of {len} bytes exceeds the netlink length field")]
    TooLarge {
        /// Its length.
        len: usize,
    },
}

/// The header of one netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Length of the message, header included.
    pub len: u32,
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Port id of the sender (0: the kernel).
    pub pid: u32,
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_ne_bytes)
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    buf.get(at..at + 2)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map_or(0, u16::from_ne_bytes)
}

impl Header {
    /// The header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, FrameError> {
        if buf.len() < NLMSG_HDRLEN {
            return Err(FrameError::Header { have: buf.len() });
        }
        Ok(Header {
            len: u32_at(buf, 0),
            kind: u16_at(buf, 4),
            flags: u16_at(buf, 6),
            seq: u32_at(buf, 8),
            pid: u32_at(buf, 12),
        })
    }

    /// Appends the header's 16 bytes.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.len.to_ne_bytes());
        buf.extend_from_slice(&self.kind.to_ne_bytes());
        buf.extend_from_slice(&self.flags.to_ne_bytes());
        buf.extend_from_slice(&self.seq.to_ne_bytes());
        buf.extend_from_slice(&self.pid.to_ne_bytes());
    }
}

/// One message of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Its header.
    pub header: Header,
    /// The whole message, header included (`header.len` bytes).
    pub bytes: &'a [u8],
}

/// What a reply message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A message of the protocol (a dump entry, the answer of a "get").
    Data,
    /// `NLMSG_ERROR` with error 0.
    Ack,
    /// `NLMSG_ERROR` with an errno; `echo` is what follows the error code (the request's header,
    /// and its payload unless capped).
    Error {
        /// The errno.
        errno: Errno,
        /// The echoed request.
        echo: &'a [u8],
    },
    /// `NLMSG_DONE` (a dump ended; with `Some` errno when it failed).
    Done(Option<Errno>),
    /// `NLMSG_NOOP` or `NLMSG_OVERRUN`: nothing to act on.
    Noise,
}

impl<'a> Message<'a> {
    /// The payload after the header.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(NLMSG_HDRLEN..).unwrap_or_default()
    }

    /// Whether the kernel flagged this dump message as part of a dump interrupted by a change
    /// (`NLM_F_DUMP_INTR`: the dump may be inconsistent and should be redone).
    pub fn dump_interrupted(&self) -> bool {
        self.header.flags & NLM_F_DUMP_INTR != 0
    }

    /// What the message says.
    pub fn reply(&self) -> Result<Reply<'a>, FrameError> {
        let payload = self.payload();
        let code = || {
            payload
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(i32::from_ne_bytes)
        };
        Ok(match self.header.kind {
            NLMSG_ERROR => match code().ok_or(FrameError::ShortError)? {
                0 => Reply::Ack,
                c => Reply::Error {
                    errno: Errno::from_wire(c),
                    echo: payload.get(4..).unwrap_or_default(),
                },
            },
            NLMSG_DONE => Reply::Done(code().filter(|c| *c < 0).map(Errno::from_wire)),
            NLMSG_NOOP | NLMSG_OVERRUN => Reply::Noise,
            _ => Reply::Data,
        })
    }
}

/// The messages of one datagram, in order. Stops after a broken header (what follows cannot be
/// framed).
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

/// Iterator returned by [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let buf = self.rest;
        let header = match Header::parse(buf) {
            Ok(h) => h,
            Err(e) => {
                self.rest = &[];
                return Some(Err(e));
            }
        };
        let len = usize::try_from(header.len).unwrap_or(usize::MAX);
        let Some(bytes) = buf.get(..len).filter(|_| len >= NLMSG_HDRLEN) else {
            self.rest = &[];
            return Some(Err(FrameError::Length {
                len: header.len,
                have: buf.len(),
            }));
        };
        // Messages start on 4-byte boundaries.
        self.rest = buf.get(len.saturating_add(3) & !3..).unwrap_or_default();
        Some(Ok(Message { header, bytes }))
    }
}

/// Sets the length field of the message that starts at `start` in `buf` to what follows it.
pub fn finish(buf: &mut [u8], start: usize) -> Result<(), FrameError> {
    let len = buf.len().saturating_sub(start);
    let field = u32::try_from(len).map_err(|_| FrameError::TooLarge { len })?;
    if let Some(slot) = buf.get_mut(start..start + 4) {
        slot.copy_from_slice(&field.to_ne_bytes());
    }
    Ok(())
}

/// Overwrites the type, flags and sequence number of the message header at `start`.
pub(crate) fn patch(buf: &mut [u8], start: usize, kind: Option<u16>, flags: u16, seq: u32) {
    if let Some(k) = kind
        && let Some(slot) = buf.get_mut(start + 4..start + 6)
    {
        slot.copy_from_slice(&k.to_ne_bytes());
    }
    if let Some(slot) = buf.get_mut(start + 6..start + 8) {
        slot.copy_from_slice(&flags.to_ne_bytes());
    }
    if let Some(slot) = buf.get_mut(start + 8..start + 12) {
        slot.copy_from_slice(&seq.to_ne_bytes());
    }
}

/// The flags of the message header at `start`.
pub(crate) fn flags_at(buf: &[u8], start: usize) -> u16 {
    u16_at(buf, start + 6)
}

/// Appends a reply the kernel would send: `NLMSG_ERROR` answering `request` with `errno` (`None`
/// for an ACK), capped (the request's header only). For scripted kernels in tests.
pub fn push_ack(buf: &mut Vec<u8>, request: &Header, errno: Option<Errno>) {
    let start = buf.len();
    Header {
        len: 0,
        kind: NLMSG_ERROR,
        flags: if errno.is_some() { NLM_F_CAPPED } else { 0 },
        seq: request.seq,
        pid: request.pid,
    }
    .emit(buf);
    buf.extend_from_slice(&errno.map_or(0, |e| e.get().saturating_neg()).to_ne_bytes());
    request.emit(buf);
    let _ = finish(buf, start);
}

/// Appends `NLMSG_DONE` for the dump `request` (flags `NLM_F_MULTIPART`). For scripted kernels.
pub fn push_done(buf: &mut Vec<u8>, request: &Header) {
    let start = buf.len();
    Header {
        len: 0,
        kind: NLMSG_DONE,
        flags: NLM_F_MULTIPART,
        seq: request.seq,
        pid: request.pid,
    }
    .emit(buf);
    buf.extend_from_slice(&0i32.to_ne_bytes());
    let _ = finish(buf, start);
}

/// Appends a data message of type `kind` answering `request` with `payload`. For scripted kernels.
pub fn push_data(buf: &mut Vec<u8>, request: &Header, kind: u16, flags: u16, payload: &[u8]) {
    let start = buf.len();
    Header {
        len: 0,
        kind,
        flags,
        seq: request.seq,
        pid: request.pid,
    }
    .emit(buf);
    buf.extend_from_slice(payload);
    let _ = finish(buf, start);
    buf.resize(buf.len().saturating_add(3) & !3, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_classifies_and_survives_every_truncation() {
        let req = Header {
            len: 20,
            kind: 0x24,
            flags: NLM_F_REQUEST | NLM_F_ACK,
            seq: 7,
            pid: 0,
        };
        let mut dgram = Vec::new();
        push_data(&mut dgram, &req, 0x24, NLM_F_MULTIPART, &[1, 2, 3]);
        push_ack(&mut dgram, &req, Some(Errno::EEXIST));
        push_ack(&mut dgram, &req, None);
        push_done(&mut dgram, &req);
        let got: Vec<Reply> = messages(&dgram)
            .map(|m| m.unwrap().reply().unwrap())
            .collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Reply::Data);
        assert!(matches!(got[1], Reply::Error { errno: Errno::EEXIST, echo } if echo.len() == 16));
        assert_eq!(got[2], Reply::Ack);
        assert_eq!(got[3], Reply::Done(None));
        let first = messages(&dgram).next().unwrap().unwrap();
        assert_eq!(first.payload(), &[1, 2, 3]);
        assert_eq!(first.header.seq, 7);
        // Any cut ends in an error or fewer messages, never a panic or a loop.
        for cut in 0..dgram.len() {
            let n = messages(&dgram[..cut]).count();
            assert!(n <= 4);
        }
        // A zero length does not loop forever.
        let mut zero = dgram.clone();
        zero[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(matches!(
            messages(&zero).collect::<Vec<_>>().as_slice(),
            [Err(FrameError::Length { len: 0, .. })]
        ));
    }

    #[test]
    fn a_failed_dump_ends_with_its_errno() {
        let req = Header::default();
        let mut buf = Vec::new();
        Header {
            len: 20,
            kind: NLMSG_DONE,
            ..Header::default()
        }
        .emit(&mut buf);
        buf.extend_from_slice(&(-16i32).to_ne_bytes());
        let m = messages(&buf).next().unwrap().unwrap();
        assert_eq!(m.reply().unwrap(), Reply::Done(Some(Errno::EBUSY)));
        let mut short = Vec::new();
        push_ack(&mut short, &req, None);
        short.truncate(18);
        finish(&mut short, 0).unwrap();
        let m = messages(&short).next().unwrap().unwrap();
        assert_eq!(m.reply(), Err(FrameError::ShortError));
    }
}
