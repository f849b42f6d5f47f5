//! One errno type for every kernel client: the positive error number a netlink reply carries
//! (negated on the wire), including subsystem-private numbers such as ipset's 4097.. range,
//! which `nix`'s `Errno` cannot hold.

use std::fmt;

/// A positive errno from the kernel (or from a socket call).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Errno(i32);

macro_rules! errnos {
    ($($name:ident = $n:literal),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Errno = Errno($n);
            )*
        }
    };
}

// The numbers are the kernel's (`include/uapi/asm-generic/errno-base.h`, `errno.h`).
errnos! {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    EINVAL = 22,
    ERANGE = 34,
    EPROTO = 71,
    EMSGSIZE = 90,
    EPROTONOSUPPORT = 93,
    EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETDOWN = 100,
    ENOBUFS = 105,
    ETIMEDOUT = 110,
}

impl Errno {
    /// The errno `n` (positive).
    pub const fn new(n: i32) -> Self {
        Errno(n)
    }

    /// From the `error` field of an `NLMSG_ERROR` (a negative errno; 0 is an ACK, not an error).
    pub const fn from_wire(code: i32) -> Self {
        Errno(code.saturating_neg())
    }

    /// The number.
    pub const fn get(self) -> i32 {
        self.0
    }

    /// The libc name (`EEXIST`), when this is a libc errno.
    pub fn name(self) -> Option<String> {
        let e = nix::errno::Errno::from_raw(self.0);
        (e != nix::errno::Errno::UnknownErrno).then(|| format!("{e:?}"))
    }
}

impl fmt::Display for Errno {
    /// `EEXIST (File exists)`, or `errno 4352` for a number libc does not know.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = nix::errno::Errno::from_raw(self.0);
        if e == nix::errno::Errno::UnknownErrno {
            write!(f, "errno {}", self.0)
        } else {
            write!(f, "{e:?} ({})", e.desc())
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(&name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl From<nix::errno::Errno> for Errno {
    fn from(e: nix::errno::Errno) -> Self {
        Errno(e as i32)
    }
}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_libcs() {
        for (ours, theirs) in [
            (Errno::EPERM, nix::errno::Errno::EPERM),
            (Errno::ENOENT, nix::errno::Errno::ENOENT),
            (Errno::ESRCH, nix::errno::Errno::ESRCH),
            (Errno::EEXIST, nix::errno::Errno::EEXIST),
            (Errno::ENODEV, nix::errno::Errno::ENODEV),
            (Errno::EINVAL, nix::errno::Errno::EINVAL),
            (Errno::EPROTO, nix::errno::Errno::EPROTO),
            (Errno::EMSGSIZE, nix::errno::Errno::EMSGSIZE),
            (Errno::EOPNOTSUPP, nix::errno::Errno::EOPNOTSUPP),
            (Errno::EADDRNOTAVAIL, nix::errno::Errno::EADDRNOTAVAIL),
            (Errno::ENOBUFS, nix::errno::Errno::ENOBUFS),
            (Errno::ETIMEDOUT, nix::errno::Errno::ETIMEDOUT),
        ] {
            assert_eq!(ours, Errno::from(theirs));
        }
        assert_eq!(Errno::EEXIST.to_string(), "EEXIST (File exists)");
        assert_eq!(format!("{:?}", Errno::ENOBUFS), "ENOBUFS");
        assert_eq!(Errno::from_wire(-17), Errno::EEXIST);
        // ipset's private range: kept, printed by number.
        assert_eq!(Errno::new(4352).to_string(), "errno 4352");
        assert_eq!(Errno::new(4352).name(), None);
        assert_eq!(Errno::from_wire(i32::MIN).get(), i32::MAX);
    }
}
